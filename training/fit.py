r"""Train, evaluate and export an action-recognition model.

    python training/fit.py                      # the built-in demo: ~2.5 minutes on 2 CPU cores
    python training/fit.py --head=avg --workdir=workdir/demo_avg
    python training/fit.py --dataset=hmdb51 --data_dir=~/data/hmdb51 --workdir=workdir/hmdb51

Prepares the dataset's records if they are missing (as training/prepare.py does), trains with
the dataset's recipe (the paper's for real datasets; a CPU-sized one for the demo) on any
tf.distribute strategy, resumes from the workdir's last checkpoint when rerun, evaluates with
the dataset's protocol (videos: 25 frames averaged) and exports a SavedModel. The README
lists what the workdir holds.
"""

import os

from absl import flags, logging

from keras_attnpool import cli
from keras_attnpool.cli import fail, fail_on_input_error, quiet_native_logs

with quiet_native_logs():
    import tensorflow as tf

    from keras_attnpool.trainer.presets import AUGMENT_ON, DATASETS, HEADS, OPTIMIZERS

_DATASET = flags.DEFINE_string("dataset", "demo", f"One of: {', '.join(DATASETS)}.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "The dataset's folder (demo: where to make it).")
_SPLIT = flags.DEFINE_integer("split", 1, "Official split (hmdb51, ucf101: 1, 2 or 3).")
_RECORDS_DIR = flags.DEFINE_string("records_dir", None,
                                   "Prepared records (default: DATA_DIR/prepared/splitN).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder (default: workdir/DATASET_HEAD).")
_BACKBONE = flags.DEFINE_string("backbone", None, "A name from list_backbones().")
_HEAD = flags.DEFINE_string("head", "attention", f"One of: {', '.join(HEADS)}.")
_RANK = flags.DEFINE_integer("rank", 1, "Rank of the attention (head=attention).")
_CLASS_SPECIFIC = flags.DEFINE_boolean("class_specific_bottom_up", False,
                                       "One bottom-up map per class (head=attention).")
_WEIGHTS = flags.DEFINE_string("weights", None, "Backbone weights: 'imagenet' or a file.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Model input side in pixels.")
_NUM_SEGMENTS = flags.DEFINE_integer("num_segments", None, "TSN segments per training clip.")
_TEST_FRAMES = flags.DEFINE_integer("test_frames", None, "Frames averaged per test video.")
_EVAL_VIEWS = flags.DEFINE_string("eval_views", None, "Test views: center, center_flip, ...")
_EPOCHS = flags.DEFINE_float("epochs", None, "Training length in epochs (or --steps).")
_STEPS = flags.DEFINE_integer("steps", None, "Training length in optimizer updates.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Global batch (clips or images).")
_ACCUMULATION = flags.DEFINE_integer("accumulation_steps", None, "Micro-batches per update.")
_OPTIMIZER = flags.DEFINE_string("optimizer", None, f"One of: {', '.join(OPTIMIZERS)}.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", None, "Initial learning rate.")
_LR_DECAY_STEPS = flags.DEFINE_integer("lr_decay_steps", None, "Decay every N steps (0: none).")
_LR_DECAY_RATE = flags.DEFINE_float("lr_decay_rate", None, "Learning-rate factor per decay.")
_WEIGHT_DECAY = flags.DEFINE_float("weight_decay", None, "L2 weight decay on kernels.")
_DROPOUT = flags.DEFINE_float("dropout", None, "Dropout on the head's input.")
_MIXED_PRECISION = flags.DEFINE_boolean("mixed_precision", False, "mixed_float16 training.")
_AUGMENT_ON = flags.DEFINE_enum(
    "augment_on", "auto", list(AUGMENT_ON),
    "Where training crops are resized: cpu (the input pipeline), device (the training "
    "step; the CPU only decodes), auto (device when a GPU is visible).")
_STRATEGY = flags.DEFINE_string("strategy", "auto", "auto, one_device, mirrored, multi_worker.")
_SEED = flags.DEFINE_integer("seed", None, "Seed of data order, augmentation and weights.")
_WORKERS = flags.DEFINE_integer("workers", None, "Processes that decode videos in prepare.")
_CHECKPOINT_EVERY = flags.DEFINE_integer("checkpoint_every", None, "Checkpoint every N steps.")
_EXPORT = flags.DEFINE_boolean("export", True, "Export a SavedModel at the end.")
_CPU_REPLICAS = flags.DEFINE_integer(
    "cpu_replicas", None, "Split the CPU into N logical devices, so that --strategy=mirrored "
    "runs N replicas without GPUs (for trying distribution on a laptop).")


def _config():
    from keras_attnpool.models import list_backbones
    from keras_attnpool.trainer.presets import make_config

    choices = {"dataset": (_DATASET.value, DATASETS), "head": (_HEAD.value, HEADS),
               "optimizer": (_OPTIMIZER.value, OPTIMIZERS + (None,)),
               "backbone": (_BACKBONE.value, tuple(list_backbones()) + (None,))}
    for name, (value, accepted) in choices.items():
        if value not in accepted:
            fail(f"--{name}={value}: accepted values are "
                 f"{', '.join(a for a in accepted if a)}.")
    if _DATASET.value in ("hmdb51", "ucf101") and _SPLIT.value not in (1, 2, 3):
        fail(f"--split={_SPLIT.value}: {_DATASET.value} has splits 1, 2 and 3.")
    if _DATASET.value != "demo":
        if not _DATA_DIR.value:
            fail(f"--data_dir is required for --dataset={_DATASET.value}.")
        if not os.path.isdir(os.path.expanduser(_DATA_DIR.value)):
            fail(f"--data_dir={_DATA_DIR.value}: no such folder.")
    if _EPOCHS.value is not None and _STEPS.value is not None:
        fail("give --epochs or --steps, not both.")
    for flag in (_STEPS, _BATCH_SIZE, _ACCUMULATION, _NUM_SEGMENTS, _TEST_FRAMES, _IMAGE_SIZE,
                 _RANK, _WORKERS, _CHECKPOINT_EVERY, _CPU_REPLICAS):
        if flag.value is not None and flag.value < (0 if flag is _WORKERS else 1):
            fail(f"--{flag.name}={flag.value}: must be >= 1.")
    workdir = _WORKDIR.value or os.path.join("workdir", f"{_DATASET.value}_{_HEAD.value}")
    return make_config(
        _DATASET.value, workdir=workdir, data_dir=_DATA_DIR.value and os.path.expanduser(
            _DATA_DIR.value), split=_SPLIT.value, records_dir=_RECORDS_DIR.value,
        backbone=_BACKBONE.value, head=_HEAD.value, rank=_RANK.value,
        class_specific_bottom_up=_CLASS_SPECIFIC.value, weights=_WEIGHTS.value,
        image_size=_IMAGE_SIZE.value, num_segments=_NUM_SEGMENTS.value,
        test_frames=_TEST_FRAMES.value, eval_views=_EVAL_VIEWS.value, steps=_STEPS.value,
        batch_size=_BATCH_SIZE.value, accumulation_steps=_ACCUMULATION.value,
        optimizer=_OPTIMIZER.value, learning_rate=_LEARNING_RATE.value,
        lr_decay_steps=_LR_DECAY_STEPS.value, lr_decay_rate=_LR_DECAY_RATE.value,
        weight_decay=_WEIGHT_DECAY.value, dropout=_DROPOUT.value,
        mixed_precision=_MIXED_PRECISION.value, strategy=_STRATEGY.value, seed=_SEED.value,
        workers=_WORKERS.value, checkpoint_every=_CHECKPOINT_EVERY.value,
        augment_on=_AUGMENT_ON.value)


def run(config) -> dict:
    """Prepare, train, evaluate, export; returns the test metrics."""
    from keras_attnpool.trainer import experiment
    from keras_attnpool.trainer.strategy import make_strategy

    with quiet_native_logs():  # the runtime starts here and probes for CUDA
        strategy = make_strategy(config.strategy)
    return experiment.run_experiment(config, strategy, epochs=_EPOCHS.value,
                                     export_model=_EXPORT.value)["metrics"]


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}; flags look like --steps=100.")
    config = _config()
    logging.set_verbosity(logging.WARNING)
    tf.get_logger().setLevel("ERROR")
    if _CPU_REPLICAS.value:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * _CPU_REPLICAS.value)
    from keras_attnpool.data.datasets import DatasetError
    from keras_attnpool.models import PretrainedWeightsError
    from keras_attnpool.trainer.loop import NonFiniteLossError

    try:
        run(config)
    except (ValueError, FileNotFoundError, DatasetError, PretrainedWeightsError) as error:
        fail(error)
    except NonFiniteLossError as error:
        fail(error, code=3)
    except tf.errors.OpError as error:
        fail_on_input_error(error)


if __name__ == "__main__":
    cli.run(main)
