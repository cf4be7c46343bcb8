"""Per-dataset defaults: the paper's recipe (PAPER.md) for the real datasets, and a CPU-sized
recipe for the built-in demo. Any flag given on the command line overrides these; values a
preset leaves out are derived by `config.resolve`.

The paper's recipe fine-tunes ImageNet features, so the real datasets start from
`weights="imagenet"` (a backbone without ImageNet weights, `tiny`, from random ones).
From random weights (`--weights=none`) that recipe stays at chance (momentum SGD at lr
0.001, dropout 0.8: loss flat at ln K on cluttered digits), so a random start takes the
recipe that learned there instead, `FROM_SCRATCH`: the demo's. `ExperimentConfig.recipe`
says which ran ("paper", "from_scratch", "demo").
"""

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


# Adam at 1e-3, no dropout, no weight decay, lr x0.3 after each third of the steps.
FROM_SCRATCH = {key: PRESETS["demo"][key] for key in (
    "optimizer", "learning_rate", "weight_decay", "dropout", "lr_decay_rate")}
FROM_SCRATCH_DECAYS = 3  # lr_decay_steps = steps // 3 (the demo's 200 of 600)


def make_config(dataset: str, **overrides) -> ExperimentConfig:
    """The dataset's preset with `overrides` (None values are ignored) applied, resolved
    (`config.resolve`: derived values filled in, every field checked); with a random
    start on a real dataset, `FROM_SCRATCH` for the settings not given."""
    from keras_attnpool.models import get_backbone_spec

    if dataset not in DATASETS:
        raise ValueError(f"--dataset={dataset}: accepted values are {', '.join(DATASETS)}.")
    given = {k: v for k, v in overrides.items() if v is not None}
    values = {**PRESETS[dataset], **given}
    recipe = "demo"
    if dataset != "demo":
        recipe = "paper"
        if "weights" not in values:
            try:
                pretrained = get_backbone_spec(values["backbone"]).has_imagenet_weights
            except ValueError:  # an unknown backbone: its check says so
                pretrained = True
            values["weights"] = "imagenet" if pretrained else "none"
        if values["weights"] == "none":
            recipe = "from_scratch"
            scratch = {**FROM_SCRATCH, "lr_decay_steps": from_scratch_decay_steps(
                values.get("steps", ExperimentConfig.steps))}
            values.update({k: v for k, v in scratch.items() if k not in given})
    return resolve(ExperimentConfig(dataset=dataset, recipe=recipe, **values))


def from_scratch_decay_steps(steps: int) -> int:
    return max(1, int(steps) // FROM_SCRATCH_DECAYS)
