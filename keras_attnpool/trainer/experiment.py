"""A whole run: prepare the records, train, evaluate with the dataset's protocol, export.

    workdir/
      config.json        the ExperimentConfig of the run
      labels.txt         class names, one per line, in label order
      checkpoints/       tf.train.CheckpointManager checkpoints (resume)
      logs/train/        TensorBoard scalars and attention pictures
      model.keras        the trained single-frame model (raw RGB in [0, 255] -> logits)
      metrics.json       the test metrics; per_class.csv the per-class table
      export/            the SavedModel for TF Serving
"""

import dataclasses
import json
import math
import os
from typing import Callable, Optional

import keras
import tensorflow as tf

from keras_attnpool.data import augment, demo, pipeline
from keras_attnpool.data.prepare import prepare_dataset
from keras_attnpool.models import build_action_model, get_backbone_spec
from keras_attnpool.trainer import evaluation, objectives, summaries
from keras_attnpool.trainer.loop import TrainConfig, Trainer
from keras_attnpool.trainer.presets import AUGMENT_ON, RESUMABLE_CHANGES, ExperimentConfig
from keras_attnpool.trainer.strategy import make_strategy


class WorkdirConflictError(ValueError):
    """The workdir holds a run with different settings."""


def _write_text(path: str, text: str) -> None:
    temporary = path + ".tmp"
    with open(temporary, "w") as f:
        f.write(text)
    os.replace(temporary, path)


def claim_workdir(config: ExperimentConfig) -> str:
    """Creates the workdir, or checks that its config.json describes this same run."""
    workdir = config_workdir(config)
    path = os.path.join(workdir, "config.json")
    new = json.loads(json.dumps(dataclasses.asdict(config)))  # tuples as lists, as on disk
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        changed = sorted(k for k in set(old) | set(new)
                         if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
        if changed:
            detail = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:3])
            raise WorkdirConflictError(
                f"--workdir {workdir} holds a run with other settings ({detail}); use another "
                "--workdir, or delete that one to start again.")
    os.makedirs(workdir, exist_ok=True)
    _write_text(path, json.dumps(new, indent=2))
    return workdir


def config_workdir(config: ExperimentConfig) -> str:
    return os.path.abspath(os.path.expanduser(config.workdir))


def prepare_records(config: ExperimentConfig, log: Callable[[str], None] = print) -> dict:
    """Makes the demo data if needed, then prepares (or reuses) the records."""
    dataset, reader_options = config.dataset, {}
    data_dir = config.data_dir
    if dataset == "demo":
        data_dir = data_dir or demo.default_root()
        if not os.path.exists(os.path.join(data_dir, demo.COMPLETE)):
            log(f"Making the demo dataset in {data_dir}")
            demo.make_demo_dataset(data_dir)
        dataset = "hmdb51"
        reader_options["keypoints_dir"] = os.path.join(data_dir, "keypoints")
    records_dir = config.records_dir or os.path.join(data_dir, "prepared",
                                                     f"split{config.split}")
    manifest = prepare_dataset(dataset, data_dir, records_dir, split=config.split,
                               workers=config.workers, short_side=config.short_side,
                               **reader_options)
    manifest["records_dir"], manifest["data_dir"] = records_dir, data_dir
    return manifest


def _heatmap_size(config: ExperimentConfig) -> int:
    return get_backbone_spec(config.backbone).feature_size(config.image_size)


def _head_kwargs(config: ExperimentConfig) -> dict:
    kwargs = {"dropout": config.dropout}
    if config.head == "attention":
        kwargs["rank"] = config.rank
        kwargs["class_specific_bottom_up"] = config.class_specific_bottom_up
    if config.head == "second_order":
        kwargs["projection_dim"] = 256
    return kwargs


def build_model(config: ExperimentConfig, num_classes: int, clip: bool) -> keras.Model:
    """The model trained on clips of `num_segments` frames (clip=True) or the single-frame
    model that is evaluated and exported; both have the same weights, in the same order."""
    return build_action_model(
        num_classes, backbone=config.backbone, head=config.head,
        input_shape=(config.image_size, config.image_size, 3),
        num_frames=config.num_segments if clip and config.is_video else None,
        weights=config.weights, **_head_kwargs(config))


def _optimizer(config: ExperimentConfig) -> keras.optimizers.Optimizer:
    learning_rate = config.learning_rate
    if config.lr_decay_steps:
        learning_rate = keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate, config.lr_decay_steps, config.lr_decay_rate, staircase=True)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate)
    return keras.optimizers.SGD(learning_rate, momentum=0.9)


def eval_resize_short(config: ExperimentConfig) -> int:
    """The short side frames are resized to before the centre crop, at evaluation and in
    the exported model alike (TSN's 256 -> 224 when the preset does not say)."""
    return config.resize_short or int(round(config.image_size * 256 / 224))


def _crop_scales(config: ExperimentConfig) -> tuple:
    """Images: the paper's "resize to 480, random 450 crop"; videos: the preset's scales."""
    if not config.is_video and config.resize_short:
        return (config.image_size / config.resize_short,)
    return tuple(config.crop_scales)


def augment_on(config: ExperimentConfig) -> str:
    """Where training augmentation is finished: "device" (the training step resamples
    the decoded windows, `augment.device_augment`) or "cpu" (the pipeline does it all).
    "auto" picks "device" when TensorFlow sees a GPU: about a third less CPU time per clip
    (benchmarks/input_pipeline.py), the resampling moving to the GPU; on a CPU alone the
    pipeline's own resize is the cheaper."""
    if config.augment_on not in AUGMENT_ON:
        raise ValueError(f"--augment_on={config.augment_on}: use auto, cpu or device")
    if config.augment_on != "auto":
        return config.augment_on
    return "device" if tf.config.list_physical_devices("GPU") else "cpu"


def _train_data(config: ExperimentConfig, records_dir: str, batch_size: int, where: str):
    files = pipeline.split_record_files(records_dir, "train")
    pose = config.head == "pose_attention"

    def dataset_fn(start: int) -> tf.data.Dataset:
        ds = pipeline.train_dataset(
            files, num_segments=config.num_segments, image_size=config.image_size,
            batch_size=batch_size, seed=config.seed, image_mode=not config.is_video,
            with_keypoints=pose, heatmap_size=_heatmap_size(config) if pose else None,
            multi_label=config.multi_label, flip=config.flip, scales=_crop_scales(config),
            skip_batches=start, augment_on=where)
        return ds

    return dataset_fn


def train_config(config: ExperimentConfig, verbose: bool = True) -> TrainConfig:
    """The loop's settings; raises ValueError for inconsistent batch settings."""
    return TrainConfig(
        steps=config.steps, global_batch_size=config.batch_size,
        accumulation_steps=config.accumulation_steps, weight_decay=config.weight_decay,
        mixed_precision=config.mixed_precision, log_every=config.log_every,
        checkpoint_every=config.checkpoint_every, verbose=verbose)


def check_replicas(config: ExperimentConfig, strategy: tf.distribute.Strategy) -> None:
    """Fails early when the batch cannot be split over the strategy's replicas."""
    replicas = strategy.num_replicas_in_sync
    micro_batch = train_config(config).micro_batch_size
    if micro_batch % replicas:
        raise ValueError(
            f"--batch_size={config.batch_size} (/ --accumulation_steps="
            f"{config.accumulation_steps}) is not divisible by the {replicas} replicas of "
            f"--strategy={config.strategy}; use a multiple of "
            f"{replicas * config.accumulation_steps}.")


def _preprocess(config: ExperimentConfig, where: str):
    """The training step's input preprocessing: device augmentation, when chosen."""
    if where != "device":
        return None
    return lambda inputs: augment.device_augment(inputs, config.image_size)


def train(config: ExperimentConfig, workdir: str, records_dir: str, num_classes: int,
          strategy: tf.distribute.Strategy, verbose: bool = True) -> tuple:
    """Trains (resuming from the workdir's checkpoints) and returns (clip model, result)."""
    if config.mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    keras.utils.set_random_seed(config.seed)
    loop_config = train_config(config, verbose)
    where = augment_on(config)  # the pipeline and the training step must agree
    trainer = Trainer(strategy, lambda: build_model(config, num_classes, clip=True),
                      lambda: _optimizer(config),
                      objectives.make_loss("multi_label" if config.multi_label else
                                           "single_label",
                                           config.pose_weight if config.head ==
                                           "pose_attention" else 0.0),
                      workdir, loop_config, preprocess=_preprocess(config, where))
    pictures = summaries.attention_pictures(config, records_dir, trainer.model)
    result = trainer.fit(_train_data(config, records_dir, loop_config.micro_batch_size,
                                     where), on_log=pictures)
    return trainer.model, result


def evaluate(config: ExperimentConfig, model: keras.Model, records_dir: str,
             class_names: list, workdir: Optional[str] = None, batch_size: int = 8) -> dict:
    """Scores the single-frame `model` on the test split; writes metrics.json and
    per_class.csv into `workdir` when given."""
    files = pipeline.split_record_files(records_dir, "test")
    data = pipeline.eval_dataset(files, image_size=config.image_size, batch_size=batch_size,
                                 test_frames=config.test_frames, views=config.eval_views,
                                 resize_short=eval_resize_short(config),
                                 image_mode=not config.is_video, fold_frames=True,
                                 multi_label=config.multi_label)
    _, logits, labels = evaluation.predict_per_video(model, data)
    result, rows = evaluation.score(logits, labels, class_names, config.multi_label)
    result["protocol"] = {"test_frames": config.test_frames if config.is_video else 1,
                          "views": config.eval_views, "split": config.split}
    if workdir:
        _write_text(os.path.join(workdir, "metrics.json"), json.dumps(result, indent=2))
        evaluation.write_per_class(os.path.join(workdir, "per_class.csv"), rows)
    return result


def single_frame_model(config: ExperimentConfig, clip_model: keras.Model,
                       num_classes: int) -> keras.Model:
    """The single-frame model with the trained weights (what is evaluated and exported)."""
    model = build_model(config, num_classes, clip=False)
    model.set_weights(clip_model.get_weights())
    return model


def save_model(model: keras.Model, path: str) -> str:
    """Saves a `.keras` file atomically (a reader never sees half a file)."""
    temporary = path + ".tmp.keras"
    model.save(temporary)
    os.replace(temporary, path)
    return path


def export(config: ExperimentConfig, model: keras.Model, classes: list, workdir: str) -> str:
    """The TF Serving SavedModel under `workdir/export/<version>/` (a new version per run)."""
    from keras_attnpool.export import export_saved_model

    return export_saved_model(model, os.path.join(workdir, "export"), classes,
                              multi_label=config.multi_label,
                              resize_short=eval_resize_short(config))


def run_experiment(config: ExperimentConfig, strategy: Optional[tf.distribute.Strategy] = None,
                   epochs: Optional[float] = None, export_model: bool = True,
                   log: Callable[[str], None] = print, verbose: bool = True) -> dict:
    """Prepare, train (resuming), evaluate and export one run.

    Returns:
        {"metrics", "workdir", "model", "export" (or None), "steps", "resumed_from"}.
    """
    strategy = strategy or make_strategy(config.strategy)
    check_replicas(config, strategy)
    workdir = claim_workdir(config)
    manifest = prepare_records(config, log)
    records_dir, classes = manifest["records_dir"], manifest["classes"]
    # Later tools (evaluate, export's int8 calibration) read where the records are.
    config = dataclasses.replace(config, records_dir=records_dir,
                                 data_dir=manifest.get("data_dir", config.data_dir))
    claim_workdir(config)
    log(f"Records: {records_dir} ({json.dumps(manifest['splits'])} clips, "
        f"{len(manifest.get('skipped', []))} skipped)")
    _write_text(os.path.join(workdir, "labels.txt"), "\n".join(classes) + "\n")
    if epochs is not None:
        steps = max(1, math.ceil(epochs * manifest["splits"]["train"] / config.batch_size))
        config = dataclasses.replace(config, steps=steps)
    log(f"Training {config.backbone} + {config.head} head for {config.steps} steps "
        f"(batch {config.batch_size}) in {workdir}")
    clip_model, result = train(config, workdir, records_dir, len(classes), strategy, verbose)
    if result["resumed_from"]:
        log(f"Resumed from {result['resumed_from']}")
    model = single_frame_model(config, clip_model, len(classes))
    model_path = save_model(model, os.path.join(workdir, "model.keras"))
    metrics = evaluate(config, model, records_dir, classes, workdir)
    log("Test: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                             if isinstance(v, float)) + f" ({metrics['num_examples']} videos)")
    exported = export(config, model, classes, workdir) if export_model else None
    if exported:
        log(f"Exported: {exported}")
    log(f"Workdir: {workdir} (model.keras, metrics.json, per_class.csv, labels.txt, "
        f"checkpoints/, logs/; tensorboard --logdir {os.path.join(workdir, 'logs')})")
    return {"metrics": metrics, "workdir": workdir, "model": model_path, "export": exported,
            "steps": config.steps, "resumed_from": result["resumed_from"]}
