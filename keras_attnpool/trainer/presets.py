"""Per-dataset defaults: the paper's recipe (PAPER.md) for the real datasets, and a CPU-sized
recipe for the built-in demo. Any flag given on the command line overrides these; values a
preset leaves out are derived by `config.resolve`."""

from keras_attnpool.trainer.config import DATASETS, ExperimentConfig, resolve

# The paper's recipe: momentum SGD, lr 0.001 x0.33 every 5000 steps, 12000 steps, weight
# decay 5e-4, ResNet-101, top-down dropout 0.8 (keep_prob 0.2).
_VIDEO = dict(backbone="resnet101", image_size=224, num_segments=3, batch_size=32)
_IMAGE = dict(backbone="resnet101", image_size=450, resize_short=480, num_segments=1,
              batch_size=128)
PRESETS = {
    # CPU-sized: the tiny backbone from scratch with Adam. Digits change under a mirror, and
    # a 16 px digit in a 64 px frame must stay in the crop: no flips, mild crops.
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
    """The dataset's preset with `overrides` (None values are ignored) applied, resolved
    (`config.resolve`: derived values filled in, every field checked)."""
    if dataset not in DATASETS:
        raise ValueError(f"--dataset={dataset}: accepted values are {', '.join(DATASETS)}.")
    values = {**PRESETS[dataset], **{k: v for k, v in overrides.items() if v is not None}}
    return resolve(ExperimentConfig(dataset=dataset, **values))
