"""A whole run: prepare the records, train, evaluate with the dataset's protocol, export.

Every setting comes resolved from `config.resolve` and every file of the workdir goes
through `keras_attnpool.workdir.Workdir`; the functions here only wire them together.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Callable, Optional, Sequence, Tuple

import keras
import tensorflow as tf

from keras_attnpool.data.input import augment, pipeline
from keras_attnpool.data.input.files import read_manifest, split_record_files
from keras_attnpool.models import build_action_model, get_head_spec
from keras_attnpool.trainer import evaluation, objectives, summaries
from keras_attnpool.trainer.config import ExperimentConfig, resolve, with_epoch_steps
from keras_attnpool.trainer.loop import TrainConfig, Trainer
from keras_attnpool.trainer.strategy import make_strategy
from keras_attnpool.workdir import TrainedRun, Workdir


def prepare_records(config: ExperimentConfig, log: Callable[[str], None] = print) -> dict:
    """Makes the demo data if needed, then prepares (or reuses) the records in the
    config's `records_dir`; returns the manifest."""
    from keras_attnpool.data.prepare.run import prepare_dataset
    from keras_attnpool.data.synthetic import demo

    from keras_attnpool.data.prepare.output import FORMAT, OutputDir

    dataset, reader_options, overwrite = config.dataset, {}, False
    if dataset == "demo":
        if not os.path.exists(os.path.join(config.data_dir, demo.COMPLETE)):
            log(f"Making the demo dataset in {config.data_dir}")
            demo.make_demo_dataset(config.data_dir)
        dataset = "hmdb51"
        reader_options["keypoints_dir"] = os.path.join(config.data_dir, demo.KEYPOINTS)
        # The demo's records are a cache: an earlier version's are written again.
        written = OutputDir(config.records_dir).written_format()
        overwrite = written is not None and written != FORMAT
        if overwrite:
            log(f"Preparing the demo records again in {config.records_dir} (they are of "
                f"format {written}, this version writes {FORMAT})")
    return prepare_dataset(dataset, config.data_dir, config.records_dir, split=config.split,
                           workers=config.workers, short_side=config.short_side,
                           overwrite=overwrite, **reader_options)


def build_model(config: ExperimentConfig, num_classes: int, clip: bool) -> keras.Model:
    """The model trained on clips of `num_segments` frames (clip=True) or the single-frame
    model that is evaluated and exported; both have the same weights, in the same order."""
    return build_action_model(
        num_classes, backbone=config.backbone, head=config.head,
        input_shape=(config.image_size, config.image_size, 3),
        num_frames=config.num_segments if clip and config.is_video else None,
        weights=config.weights, **get_head_spec(config.head).config_kwargs(config))


def _optimizer(config: ExperimentConfig) -> keras.optimizers.Optimizer:
    learning_rate = config.learning_rate
    if config.lr_decay_steps:
        learning_rate = keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate, config.lr_decay_steps, config.lr_decay_rate, staircase=True)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate)
    return keras.optimizers.SGD(learning_rate, momentum=0.9)


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """What the evaluations during training score: a split of the records, narrowed to
    `video_ids` (the slice of train held out with `val_fraction`) when given."""

    split: str
    video_ids: Optional[Tuple[str, ...]] = None

    def describe(self, config: ExperimentConfig) -> str:
        if self.video_ids is not None:
            return (f"{len(self.video_ids)} train clips held out (--val_fraction="
                    f"{config.val_fraction:g}, per class, seeded; held_out.txt)")
        what = f"the {self.split} split"
        if self.split == evaluation.final_split(config.dataset):
            what += (" (which the final evaluation scores too: a best checkpoint chosen on it "
                     "has an optimistic score; --val_fraction holds out train clips instead)")
        return what


def held_out(config: ExperimentConfig, manifest: dict) -> Optional[HeldOut]:
    """The held-out records of `config.eval_every`'s evaluations (None without them)."""
    from keras_attnpool.data.datasets.common import stratified_split

    if not config.eval_every:
        return None
    split = evaluation.held_out_split(config.dataset, list(manifest["splits"]),
                                      config.val_fraction)
    if split != "train":
        return HeldOut(split)
    by_class: dict = {}
    for video_id, label in pipeline.list_clips(split_record_files(config.records_dir,
                                                                  "train")):
        by_class.setdefault(label, []).append(video_id)
    return HeldOut(split, tuple(sorted(stratified_split(by_class, config.val_fraction,
                                                        config.seed))))


def _train_data(config: ExperimentConfig, batch_size: int,
                leave_out: Optional[Sequence[str]] = None):
    files = split_record_files(config.records_dir, "train")
    keypoints = get_head_spec(config.head).keypoint_targets

    def dataset_fn(start: int) -> tf.data.Dataset:
        return pipeline.train_dataset(
            files, num_segments=config.num_segments, image_size=config.image_size,
            batch_size=batch_size, seed=config.seed, image_mode=not config.is_video,
            with_keypoints=keypoints, heatmap_size=config.heatmap_size,
            multi_label=config.multi_label, flip=config.flip, scales=config.crop_scales,
            color_jitter=config.color_jitter,
            skip_batches=start, augment_on=config.augment_on,
            data_service=config.data_service, leave_out=leave_out)

    return dataset_fn


def _recipe_line(config: ExperimentConfig) -> str:
    """What the log says of the recipe (config.json's `recipe` and the values)."""
    schedule = (f"{config.optimizer} at lr {config.learning_rate:g}"
                + (f" x{config.lr_decay_rate:g} every {config.lr_decay_steps} steps"
                   if config.lr_decay_steps else "")
                + f", dropout {config.dropout:g}, weight decay {config.weight_decay:g}")
    start = {None: "random weights", "imagenet": "ImageNet weights"}.get(
        config.weights, config.weights)
    what = {"paper": "the paper's (fine-tuning)",
            "from_scratch": "from scratch (the paper's fine-tuning recipe stays at chance "
                            "from random weights)",
            "demo": "the demo's"}[config.recipe]
    return f"Recipe: {what}: {schedule}; from {start}"


def train_config(config: ExperimentConfig, verbose: bool = True) -> TrainConfig:
    """The loop's settings."""
    return TrainConfig(
        steps=config.steps, global_batch_size=config.batch_size,
        accumulation_steps=config.accumulation_steps, weight_decay=config.weight_decay,
        mixed_precision=config.mixed_precision, log_every=config.log_every,
        checkpoint_every=config.checkpoint_every, verbose=verbose,
        eval_every=config.eval_every)


def _preprocess(config: ExperimentConfig):
    """The training step's input preprocessing: device augmentation, when chosen."""
    if config.augment_on != "device":
        return None
    return lambda inputs: augment.device_augment(inputs, config.image_size)


def _loss(config: ExperimentConfig):
    pose_weight = config.pose_weight if get_head_spec(config.head).keypoint_targets else 0.0
    return objectives.make_loss("multi_label" if config.multi_label else "single_label",
                                pose_weight)


def train(config: ExperimentConfig, class_names: Sequence[str],
          strategy: tf.distribute.Strategy, verbose: bool = True,
          held: Optional[HeldOut] = None) -> tuple:
    """Trains (resuming from the workdir's checkpoints), evaluating on `held` every
    `config.eval_every` steps; returns (clip model with the weights of the checkpoint
    `config.export_checkpoint` names, result with "checkpoint": {"used", "step", ...})."""
    num_classes = len(class_names)
    if config.mixed_precision:
        if not tf.config.list_physical_devices("GPU"):
            logging.warning("--mixed_precision without a GPU: float16 on a CPU is emulated "
                            "and much slower than float32; leave the flag out on a CPU.")
        keras.config.set_dtype_policy("mixed_float16")
    keras.utils.set_random_seed(config.seed)
    loop_config = train_config(config, verbose)
    trainer = Trainer(strategy, lambda: build_model(config, num_classes, clip=True),
                      lambda: _optimizer(config), _loss(config), Workdir(config.workdir),
                      loop_config, preprocess=_preprocess(config))
    pictures = summaries.attention_pictures(config, trainer.model)
    monitor = None if held is None else _monitor(config, held, class_names, trainer.model)
    result = trainer.fit(
        _train_data(config, loop_config.micro_batch_size, held and held.video_ids),
        on_log=pictures, evaluate=monitor, best_by=evaluation.dataset_metric(config.dataset))
    result["checkpoint"] = {"used": "last", "step": trainer.step}
    if config.export_checkpoint == "best":
        best = trainer.restore_best()
        if best is None:
            logging.warning("--export_checkpoint=best: no evaluation during training gave a "
                            "finite %s; using the last checkpoint.",
                            evaluation.dataset_metric(config.dataset))
        else:
            result["checkpoint"] = {"used": "best", "step": int(best["step"]),
                                    "held_out_" + best["metric"]: best["value"]}
    return trainer.model, result


def _monitor(config: ExperimentConfig, held: HeldOut, class_names: Sequence[str],
             clip_model: keras.Model) -> Callable[[int], dict]:
    """`Trainer.fit`'s `evaluate`: the single-frame model with the clip model's current
    weights, scored on the held-out records with the dataset's protocol (on the first
    `config.eval_clips` of them when set)."""
    model = build_model(config, len(class_names), clip=False)
    data = _eval_batches(config, held.split, only=held.video_ids, limit=config.eval_clips)

    def evaluate_at(step: int) -> dict:
        model.set_weights(clip_model.get_weights())
        _, logits, labels = evaluation.predict_per_video(model, data)
        return evaluation.score(logits, labels, class_names, config.multi_label)[0]

    return evaluate_at


def _eval_batches(config: ExperimentConfig, split: str, only: Optional[Sequence[str]] = None,
                  limit: Optional[int] = None, batch_size: int = 8) -> tf.data.Dataset:
    """The evaluation pipeline of `split` with the config's protocol (frames folded)."""
    return pipeline.eval_dataset(split_record_files(config.records_dir, split),
                                 image_size=config.image_size, batch_size=batch_size,
                                 test_frames=config.test_frames, views=config.eval_views,
                                 resize_short=config.resize_short,
                                 image_mode=not config.is_video, fold_frames=True,
                                 multi_label=config.multi_label, only=only, limit=limit)


def evaluate(config: ExperimentConfig, model: keras.Model, class_names: list,
             workdir: Optional[Workdir] = None, batch_size: int = 8,
             checkpoint: Optional[dict] = None) -> dict:
    """Scores the single-frame `model` on the test split of the config's records (MPII:
    val; `evaluation.final_split`) with the dataset's protocol; writes metrics.json,
    per_class.csv and predictions.csv into `workdir` when given; `checkpoint` (which one
    the model's weights are) goes into the result as "checkpoint".

    Raises:
        ValueError: the records' manifest lists other classes than `class_names` (scoring
            them would score every clip against the wrong label).
    """
    manifest = read_manifest(config.records_dir) or {}
    if "classes" in manifest and list(manifest["classes"]) != list(class_names):
        raise ValueError(
            f"--records_dir={config.records_dir} holds the classes {_listed(manifest['classes'])}"
            f" but the model was trained on {_listed(class_names)}; pass the records it was "
            "trained on (--records_dir).")
    split = evaluation.final_split(config.dataset)
    data = _eval_batches(config, split, batch_size=batch_size)
    video_ids, logits, labels = evaluation.predict_per_video(model, data)
    result, rows = evaluation.score(logits, labels, class_names, config.multi_label)
    result["protocol"] = {"test_frames": config.test_frames if config.is_video else 1,
                          "views": config.eval_views, "resize_short": config.resize_short,
                          "split": config.split, "records": split}
    if checkpoint is not None:
        result["checkpoint"] = checkpoint
    if workdir is not None:
        workdir.write_metrics(result, rows)
        workdir.write_predictions(video_ids, logits, labels, class_names)
    return result


def _listed(names) -> str:
    names = list(names)
    return f"[{', '.join(names[:4])}{', ...' if len(names) > 4 else ''}] ({len(names)})"


def single_frame_model(config: ExperimentConfig, clip_model: keras.Model,
                       num_classes: int) -> keras.Model:
    """The single-frame model with the trained weights (what is evaluated and exported)."""
    model = build_model(config, num_classes, clip=False)
    model.set_weights(clip_model.get_weights())
    return model


def export(run: TrainedRun) -> str:
    """The TF Serving SavedModel under `workdir/export/<version>/` (a new version per run),
    made as `training/export.py` makes it."""
    from keras_attnpool.export.workdir import export_run

    return export_run(run, run.workdir.export_dir)


def run_experiment(config: ExperimentConfig, strategy: Optional[tf.distribute.Strategy] = None,
                   export_model: bool = True, log: Callable[[str], None] = print,
                   verbose: bool = True) -> dict:
    """Prepare, train (resuming), evaluate and export one run.

    The workdir is checked first (a workdir holding another run is refused before any
    work) and claimed, config.json written, only when training starts.

    Returns:
        {"metrics", "workdir", "model", "export" (or None), "steps", "resumed_from"}.
    """
    config = resolve(config)
    workdir = Workdir(config.workdir)
    workdir.check_config(config)
    strategy = strategy or make_strategy(config.strategy)
    train_config(config).check_replicas(strategy.num_replicas_in_sync, config.strategy)
    manifest = prepare_records(config, log)
    _check_records(config, manifest)
    classes = manifest["classes"]
    log(f"Records: {config.records_dir} ({json.dumps(manifest['splits'])} clips, "
        f"{len(manifest.get('skipped', []))} skipped)")
    if config.data_service:
        log(f"Input: tf.data service at {config.data_service} (its workers make the "
            "batches, each clip once per epoch, in an order that is not reproducible; a "
            "resumed run starts a new stream)")
    held = held_out(config, manifest)
    held_ids = held.video_ids if held is not None else None
    config = with_epoch_steps(config, manifest["splits"]["train"] - len(held_ids or ()))
    log(_recipe_line(config))
    workdir.write_config(config)
    workdir.write_labels(classes)
    if held is not None:
        if held_ids is not None:
            workdir.write_held_out(held_ids)
        log(f"Evaluating every {config.eval_every} steps on "
            + (f"the first {config.eval_clips} clips of " if config.eval_clips else "")
            + f"{held.describe(config)}; the best checkpoint (by "
            f"{evaluation.dataset_metric(config.dataset)}) is kept in "
            f"{workdir.best_checkpoint_dir}")
    log(f"Training {config.backbone} + {config.head} head for {config.steps} steps "
        f"(batch {config.batch_size}) in {workdir.path}")
    clip_model, result = train(config, classes, strategy, verbose, held)
    if result["resumed_from"]:
        log(f"Resumed from {result['resumed_from']}")
    used = result["checkpoint"]
    log(f"Evaluating{' and exporting' if export_model else ''} the {used['used']} "
        f"checkpoint (step {used['step']}"
        + "".join(f", {k.replace('_', ' ')} {v:.4f}" for k, v in used.items()
                  if k.startswith("held_out_")) + ")")
    run = TrainedRun(workdir, single_frame_model(config, clip_model, len(classes)), config,
                     list(classes))
    workdir.save_model(run.model)
    metrics = evaluate(config, run.model, classes, workdir, checkpoint=used)
    log(f"{evaluation.final_split(config.dataset).capitalize()}: "
        + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        + f" ({metrics['num_examples']} videos)")
    exported = export(run) if export_model else None
    if exported:
        log(f"Exported: {exported}")
    log(f"Workdir: {workdir.path} (model.keras, metrics.json, per_class.csv, labels.txt, "
        f"checkpoints/, logs/; tensorboard --logdir {workdir.logs_dir('')})")
    return {"metrics": metrics, "workdir": workdir.path, "model": workdir.model_path,
            "export": exported, "steps": config.steps,
            "resumed_from": result["resumed_from"], "config": config}


def _check_records(config: ExperimentConfig, manifest: dict) -> None:
    """Records that prepare found not ok (samples or classes lost) are refused, as are
    records without keypoints for a head that trains on them."""
    if not manifest.get("ok", True):
        from keras_attnpool.data.prepare.accounting import not_ok_message

        raise ValueError(f"{config.records_dir}: " + not_ok_message(
            manifest, "fix those files, then prepare again (training/prepare.py "
            f"--output_dir={config.records_dir} --overwrite) and rerun"))
    counts = (manifest.get("keypoints") or {}).get("train")
    if get_head_spec(config.head).keypoint_targets and counts is not None \
            and counts["samples"] == 0:
        raise ValueError(
            f"--records_dir={config.records_dir}: no train record holds keypoints, and "
            f"--head={config.head} trains on them; prepare the records with the OpenPose "
            f"keypoints (training/prepare.py --output_dir={config.records_dir} "
            "--keypoints_dir=<their folder> --overwrite), or choose another --head")


def with_overrides(config: ExperimentConfig, **overrides) -> ExperimentConfig:
    """`config` with `overrides` (None values ignored), resolved again."""
    values = {k: v for k, v in overrides.items() if v is not None}
    return resolve(dataclasses.replace(config, **values))
