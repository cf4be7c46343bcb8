"""The experiment config: every setting of a run, checked and resolved in one place.

`resolve(config)` fills every value that is derived from others (the evaluation short side,
the records folder, the crop scales, the test frames, where augmentation runs, the heatmap
size, ...) and checks every field, raising `ConfigError` with one line that names the
setting (by its `training/fit.py` flag) and what to do. A resolved config is what a run
uses and what its workdir's `config.json` stores: evaluation, export and pictures read the
resolved values and never derive them again. `resolve` is idempotent, so a config.json read
back (even one written before a field existed) goes through the same function.

The number of steps for `epochs` depends on how many training records were prepared:
`with_epoch_steps(config, num_train)` sets it once that is known.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from typing import Optional, Tuple

from keras_attnpool.data.datasets import DATASETS as _READERS
from keras_attnpool.data.datasets import VIDEO_DATASETS as _VIDEO_READERS

# "demo" is the built-in dataset (made on first use, read as HMDB51).
DATASETS = ("demo",) + tuple(_READERS)
VIDEO_DATASETS = ("demo",) + tuple(sorted(_VIDEO_READERS))
OPTIMIZERS = ("sgd", "adam")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
RECIPES = ("paper", "from_scratch", "demo")  # trainer.presets chooses one
EXPORT_CHECKPOINTS = ("last", "best")
SPLITS = {"hmdb51": (1, 2, 3), "ucf101": (1, 2, 3)}
# TSN's evaluation: resize the short side to 256 for a 224 crop, the same ratio at any size.
EVAL_RESIZE_RATIO = 256 / 224


class ConfigError(ValueError):
    """A setting is invalid; the message names it and says what to do."""


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Everything a training run depends on; saved, resolved, as the workdir's config.json.

    Fields left None are derived by `resolve`.
    """

    dataset: str = "demo"
    workdir: Optional[str] = None
    data_dir: Optional[str] = None
    split: int = 1
    records_dir: Optional[str] = None
    backbone: str = "resnet101"
    head: str = "attention"
    rank: int = 1
    class_specific_bottom_up: bool = False
    weights: Optional[str] = None
    image_size: int = 224
    resize_short: Optional[int] = None
    num_segments: int = 3
    test_frames: Optional[int] = None
    eval_views: str = "center"
    flip: bool = True
    color_jitter: bool = False
    augment_on: str = "auto"
    crop_scales: Optional[Tuple[float, ...]] = None
    epochs: Optional[float] = None
    steps: int = 12000
    batch_size: int = 32
    accumulation_steps: int = 1
    optimizer: str = "sgd"
    learning_rate: float = 0.001
    lr_decay_steps: int = 5000
    lr_decay_rate: float = 0.33
    weight_decay: float = 5e-4
    dropout: float = 0.8
    pose_weight: float = 1.0
    heatmap_size: Optional[int] = None
    mixed_precision: bool = False
    strategy: str = "auto"
    seed: int = 42
    workers: Optional[int] = None
    short_side: Optional[int] = None
    log_every: int = 20
    checkpoint_every: int = 200
    data_service: Optional[str] = None
    recipe: str = "paper"
    eval_every: int = 0
    eval_clips: Optional[int] = None
    val_fraction: Optional[float] = None
    export_checkpoint: str = "last"

    @property
    def is_video(self) -> bool:
        return self.dataset in VIDEO_DATASETS

    @property
    def multi_label(self) -> bool:
        return self.dataset == "hico"

    def to_json(self) -> dict:
        """The config as config.json holds it (tuples as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_json(cls, values: dict, source: str = "config.json") -> "ExperimentConfig":
        """The config from config.json's object; ConfigError naming an unknown key."""
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: must hold a JSON object of settings.")
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"{source}: unknown setting {unknown[0]!r}; remove it (settings "
                              f"are the fields of ExperimentConfig: {', '.join(sorted(names))}).")
        if isinstance(values.get("crop_scales"), list):
            values = {**values, "crop_scales": tuple(values["crop_scales"])}
        return cls(**values)


def _fail(name: str, value, what: str) -> None:
    raise ConfigError(f"--{name}={value}: {what}")


def _check_ints(config: ExperimentConfig) -> None:
    minimum = {"split": 1, "rank": 1, "image_size": 1, "num_segments": 1, "steps": 1,
               "batch_size": 1, "accumulation_steps": 1, "lr_decay_steps": 0, "seed": 0,
               "log_every": 1, "checkpoint_every": 1, "eval_every": 0}
    optional = {"test_frames": 1, "resize_short": 1, "workers": 0, "short_side": 1,
                "heatmap_size": 1, "eval_clips": 1}
    for name, low in {**minimum, **optional}.items():
        value = getattr(config, name)
        if value is None and name in optional:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(name, value, f"must be an integer >= {low}.")
        if value < low:
            _fail(name, value, f"must be >= {low}.")


def _check_numbers(config: ExperimentConfig) -> None:
    rules = {"learning_rate": (lambda v: v > 0, "must be > 0."),
             "lr_decay_rate": (lambda v: 0 < v <= 1, "must be in (0, 1]."),
             "weight_decay": (lambda v: v >= 0, "must be >= 0."),
             "dropout": (lambda v: 0 <= v < 1, "must be in [0, 1)."),
             "pose_weight": (lambda v: v >= 0, "must be >= 0.")}
    for name, (ok, what) in rules.items():
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
            _fail(name, value, what)
    if config.epochs is not None and not (isinstance(config.epochs, (int, float))
                                          and math.isfinite(config.epochs)
                                          and config.epochs > 0):
        _fail("epochs", config.epochs, "must be > 0 (or leave it out and give --steps).")
    fraction = config.val_fraction
    if fraction is not None and (isinstance(fraction, bool) or not isinstance(
            fraction, (int, float)) or not 0 < fraction < 1):
        _fail("val_fraction", fraction, "must be in (0, 1): the fraction of each class's "
              "training clips held out for --eval_every.")
    scales = config.crop_scales
    if scales is not None and (not scales or not all(0 < s <= 1 for s in scales)):
        _fail("crop_scales", ",".join(map(str, scales)),
              "every scale must be in (0, 1] (the crop's side over the short side).")


def _check_choices(config: ExperimentConfig) -> None:
    from keras_attnpool.data.input import augment, pipeline
    from keras_attnpool.models import HEADS, list_backbones

    choices = {"dataset": DATASETS, "head": HEADS, "backbone": tuple(list_backbones()),
               "optimizer": OPTIMIZERS, "strategy": STRATEGIES, "recipe": RECIPES,
               "export_checkpoint": EXPORT_CHECKPOINTS,
               "eval_views": tuple(augment.VIEWS),
               "augment_on": ("auto",) + tuple(pipeline.AUGMENT_ON)}
    for name, accepted in choices.items():
        value = getattr(config, name)
        if value not in accepted:
            _fail(name, value, f"accepted values are {', '.join(accepted)}.")
    if config.dataset in SPLITS and config.split not in SPLITS[config.dataset]:
        *first, last = SPLITS[config.dataset]
        _fail("split", config.split, f"{config.dataset} has splits "
              f"{', '.join(map(str, first))} and {last}.")


def _check_paths(config: ExperimentConfig) -> None:
    if config.dataset != "demo":
        if not config.data_dir:
            raise ConfigError(f"--data_dir is required for --dataset={config.dataset}: the "
                              "dataset's folder, as released.")
        if not os.path.isdir(config.data_dir):
            _fail("data_dir", config.data_dir, "no such folder; pass the dataset's folder.")
    if config.weights not in (None, "imagenet", "none") and not os.path.isfile(config.weights):
        _fail("weights", config.weights, "file not found; pass imagenet, none, or the path "
              "of the backbone's keras.applications 'notop' weights file.")
    if config.records_dir and os.path.exists(config.records_dir) and not os.path.isdir(
            config.records_dir):
        _fail("records_dir", config.records_dir, "is a file; pass a folder.")
    if config.data_service is not None and not re.fullmatch(
            r"grpcs?://[^\s/:]+:\d+", config.data_service):
        _fail("data_service", config.data_service, "give the tf.data service dispatcher as "
              "grpc://HOST:PORT (training/data_service.py --role=dispatcher starts one).")


def _check_consistency(config: ExperimentConfig) -> None:
    from keras_attnpool.models import get_backbone_spec

    if config.batch_size % config.accumulation_steps:
        _fail("batch_size", config.batch_size, f"must be divisible by --accumulation_steps="
              f"{config.accumulation_steps}.")
    minimum = get_backbone_spec(config.backbone).min_size
    if config.image_size < minimum:
        _fail("image_size", config.image_size, f"backbone {config.backbone} needs >= "
              f"{minimum}.")
    if not config.eval_every:
        for name, value in (("val_fraction", config.val_fraction),
                            ("eval_clips", config.eval_clips)):
            if value is not None:
                _fail(name, value, "is for the evaluations during training; give "
                      "--eval_every=N (steps) as well.")
        if config.export_checkpoint == "best":
            _fail("export_checkpoint", "best", "the best checkpoint is kept by the "
                  "evaluations during training; give --eval_every=N (steps) as well.")
    if config.resize_short is not None and config.resize_short < config.image_size:
        _fail("resize_short", config.resize_short, f"must be >= --image_size="
              f"{config.image_size} (the crop is taken after the resize).")


def validate(config: ExperimentConfig) -> ExperimentConfig:
    """Checks every field; returns `config` or raises ConfigError (one line)."""
    _check_ints(config)
    _check_numbers(config)
    _check_choices(config)
    _check_paths(config)
    _check_consistency(config)
    return config


def _expand(path: Optional[str]) -> Optional[str]:
    return os.path.abspath(os.path.expanduser(path)) if path else path


def _weights(weights: Optional[str]) -> Optional[str]:
    """None for a random start ("none", the flag's word for it, is stored as null),
    "imagenet", or the weights file's absolute path."""
    if weights in (None, "none"):
        return None
    return weights if weights == "imagenet" else _expand(weights)


def _derived(config: ExperimentConfig) -> dict:
    """The values `resolve` fills in: only those still None (or relative paths)."""
    from keras_attnpool.data.input import augment, sampling
    from keras_attnpool.data.prepare.plan import DEFAULT_SHORT_SIDE, default_records_dir
    from keras_attnpool.data.synthetic import demo
    from keras_attnpool.models import get_backbone_spec, get_head_spec

    data_dir = _expand(config.data_dir)
    if config.dataset == "demo" and not data_dir:
        data_dir = demo.default_root()
    resize_short = config.resize_short or int(round(config.image_size * EVAL_RESIZE_RATIO))
    if config.crop_scales is not None:
        scales = tuple(float(s) for s in config.crop_scales)
    elif config.is_video:
        scales = tuple(augment.MULTISCALE_SCALES)
    else:  # the paper's images: resize to resize_short, random image_size crop
        scales = (config.image_size / resize_short,)
    needs_heatmaps = get_head_spec(config.head).keypoint_targets
    spec = get_backbone_spec(config.backbone)
    return {
        "workdir": _expand(config.workdir or os.path.join(
            "workdir", f"{config.dataset}_{config.head}")),
        "data_dir": data_dir,
        "records_dir": _expand(config.records_dir) or (
            data_dir and default_records_dir(config.dataset, data_dir, config.split)),
        "weights": _weights(config.weights),
        "resize_short": resize_short,
        "crop_scales": scales,
        "test_frames": config.test_frames or (sampling.PAPER_TEST_FRAMES if config.is_video
                                              else 1),
        "short_side": config.short_side or DEFAULT_SHORT_SIDE[
            "video" if config.is_video else "image"],
        "augment_on": config.augment_on if config.augment_on != "auto" else _auto_augment_on(),
        "heatmap_size": config.heatmap_size or (spec.feature_size(config.image_size)
                                                if needs_heatmaps else None),
    }


def _auto_augment_on() -> str:
    """Device augmentation when TensorFlow sees a GPU (the CPU then only decodes); on a CPU
    alone the pipeline's own resize is the cheaper (benchmarks/input_pipeline.py)."""
    import tensorflow as tf

    return "device" if tf.config.list_physical_devices("GPU") else "cpu"


def resolve(config: ExperimentConfig) -> ExperimentConfig:
    """The config with every derived value filled in, checked (ConfigError otherwise)."""
    validate(config)
    return validate(dataclasses.replace(config, **_derived(config)))


def with_epoch_steps(config: ExperimentConfig, num_train: int) -> ExperimentConfig:
    """`steps` for `epochs` passes over `num_train` training records (unchanged without
    `epochs`)."""
    if config.epochs is None:
        return config
    steps = max(1, math.ceil(config.epochs * num_train / config.batch_size))
    changes = {"steps": steps}
    from keras_attnpool.trainer import presets
    if config.recipe == "from_scratch" and \
            config.lr_decay_steps == presets.from_scratch_decay_steps(config.steps):
        changes["lr_decay_steps"] = presets.from_scratch_decay_steps(steps)  # still a third
    return dataclasses.replace(config, **changes)


# Settings that may change between runs in one workdir (resuming with more steps, for
# instance); any other difference means the workdir belongs to another experiment.
RESUMABLE_CHANGES = ("workdir", "steps", "epochs", "strategy", "workers", "log_every",
                     "checkpoint_every", "records_dir", "data_dir", "mixed_precision",
                     "augment_on", "data_service", "recipe", "eval_every", "eval_clips",
                     "export_checkpoint")
