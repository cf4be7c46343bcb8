"""Per-dataset defaults: the paper's recipe (PAPER.md) for the real datasets, and a CPU-sized
recipe for the built-in demo. Any flag given on the command line overrides these."""

import dataclasses
from typing import Optional, Tuple

DATASETS = ("demo", "hmdb51", "ucf101", "mpii", "hico", "video_folder", "image_folder")
VIDEO_DATASETS = ("demo", "hmdb51", "ucf101", "video_folder")
HEADS = ("attention", "pose_attention", "avg", "second_order")
OPTIMIZERS = ("sgd", "adam")
# Where training augmentation is finished (`experiment.augment_on`).
AUGMENT_ON = ("auto", "cpu", "device")


@dataclasses.dataclass
class ExperimentConfig:
    """Everything a training run depends on; saved as the workdir's config.json."""

    dataset: str = "demo"
    workdir: str = "workdir"
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
    test_frames: int = 25
    eval_views: str = "center"
    flip: bool = True
    augment_on: str = "auto"
    crop_scales: Tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)
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
    mixed_precision: bool = False
    strategy: str = "auto"
    seed: int = 42
    workers: Optional[int] = None
    short_side: Optional[int] = None
    log_every: int = 20
    checkpoint_every: int = 200

    @property
    def is_video(self) -> bool:
        return self.dataset in VIDEO_DATASETS

    @property
    def multi_label(self) -> bool:
        return self.dataset == "hico"


# The paper's recipe: momentum SGD, lr 0.001 x0.33 every 5000 steps, 12000 steps, weight
# decay 5e-4, ResNet-101, top-down dropout 0.8 (keep_prob 0.2).
_VIDEO = dict(backbone="resnet101", image_size=224, num_segments=3, test_frames=25,
              batch_size=32)
_IMAGE = dict(backbone="resnet101", image_size=450, resize_short=480, num_segments=1,
              test_frames=1, batch_size=128)
PRESETS = {
    # CPU-sized: the tiny backbone from scratch with Adam; ~3 minutes of training on 2 cores.
    # Digits change under a mirror, and a 16 px digit in a 64 px frame must stay in the crop:
    # no flips, mild crops.
    "demo": dict(backbone="tiny", image_size=64, resize_short=64, num_segments=3,
                 test_frames=16, steps=600, batch_size=32, optimizer="adam",
                 learning_rate=0.001, lr_decay_steps=200, lr_decay_rate=0.3,
                 weight_decay=0.0, dropout=0.0, flip=False, crop_scales=(1.0, 0.875),
                 short_side=64, log_every=20, checkpoint_every=100),
    "hmdb51": _VIDEO,
    "ucf101": _VIDEO,
    "video_folder": _VIDEO,
    "mpii": _IMAGE,
    "hico": _IMAGE,
    "image_folder": _IMAGE,
}


def make_config(dataset: str, **overrides) -> ExperimentConfig:
    """The dataset's preset with `overrides` (None values are ignored) applied."""
    if dataset not in DATASETS:
        raise ValueError(f"Unknown `dataset`: {dataset!r}. Accepted values: "
                         f"{', '.join(DATASETS)}.")
    values = {**PRESETS[dataset], **{k: v for k, v in overrides.items() if v is not None}}
    return ExperimentConfig(dataset=dataset, **values)


# Settings that may change between runs in one workdir (resuming with more steps, for
# instance); any other difference means the workdir belongs to another experiment.
RESUMABLE_CHANGES = ("steps", "strategy", "workers", "log_every", "checkpoint_every",
                     "records_dir", "data_dir", "mixed_precision",
                     "augment_on")
