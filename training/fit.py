r"""Train, evaluate and export an action-recognition model.

    python training/fit.py                      # the built-in demo, minutes on a CPU
    python training/fit.py --head=avg --workdir=workdir/demo_avg
    python training/fit.py --dataset=hmdb51 --data_dir=~/data/hmdb51 --workdir=workdir/hmdb51

Prepares the dataset's records if they are missing (as training/prepare.py does), trains with
the dataset's recipe (the paper's for real datasets; a CPU-sized one for the demo) on any
tf.distribute strategy, resumes from the workdir's last checkpoint when rerun, evaluates with
the dataset's protocol (videos: 25 frames averaged) and exports a SavedModel. The README
lists what the workdir holds.
"""

from absl import flags, logging

from keras_attnpool import cli
from keras_attnpool.cli import fail, fail_on_input_error, quiet_native_logs
from keras_attnpool.trainer.config import DATASETS, OPTIMIZERS, STRATEGIES

_DATASET = flags.DEFINE_string("dataset", "demo", f"One of: {', '.join(DATASETS)}.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "The dataset's folder (demo: where to make it).")
_SPLIT = flags.DEFINE_integer("split", 1, "Official split (hmdb51, ucf101: 1, 2 or 3).")
_RECORDS_DIR = flags.DEFINE_string("records_dir", None,
                                   "Prepared records (default: DATA_DIR/prepared/splitN; for "
                                   "image_folder and video_folder DATA_DIR.prepared/splitN).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder (default: workdir/DATASET_HEAD).")
_BACKBONE = flags.DEFINE_string("backbone", None, "A name from list_backbones().")
_HEAD = flags.DEFINE_string("head", "attention", "Pooling head: a name of "
                            "keras_attnpool.models.HEADS (attention, avg, ...).")
_RANK = flags.DEFINE_integer("rank", 1, "Rank of the attention (head=attention).")
_CLASS_SPECIFIC = flags.DEFINE_boolean("class_specific_bottom_up", False,
                                       "One bottom-up map per class (head=attention).")
_WEIGHTS = flags.DEFINE_string(
    "weights", None, "Backbone weights: 'imagenet' (the default for real datasets, when the "
    "backbone has them), 'none' (random; the from-scratch recipe), or a weights file.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Model input side in pixels.")
_NUM_SEGMENTS = flags.DEFINE_integer("num_segments", None, "TSN segments per training clip.")
_TEST_FRAMES = flags.DEFINE_integer("test_frames", None, "Frames averaged per test video.")
_EVAL_VIEWS = flags.DEFINE_string("eval_views", None, "Test views: center, center_flip, ...")
_RESIZE_SHORT = flags.DEFINE_integer(
    "resize_short", None, "Short side the test frames are resized to before the centre "
    "crop (default: the dataset's; videos: image_size * 256 / 224); for images, also the "
    "frame the training crop is taken from.")
_FLIP = flags.DEFINE_boolean(
    "flip", None, "Random horizontal flips in training; --noflip for classes that a mirror "
    "image changes (digits, text, 'pushing left to right').")
_CROP_SCALES = flags.DEFINE_list(
    "crop_scales", None, "Multi-scale crop sides, as fractions of the short side "
    "(TSN's: 1,0.875,0.75,0.66; default: the dataset's).")
_COLOR_JITTER = flags.DEFINE_boolean(
    "color_jitter", None, "Brightness, contrast, saturation and hue jitter, one draw per clip.")
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
_AUGMENT_ON = flags.DEFINE_string(
    "augment_on", "auto", "Where training crops are resized: cpu (the input pipeline), "
    "device (the training step; the CPU only decodes), auto (device when a GPU is visible).")
_STRATEGY = flags.DEFINE_string("strategy", "auto", f"One of: {', '.join(STRATEGIES)}.")
_SEED = flags.DEFINE_integer("seed", None, "Seed of data order, augmentation and weights.")
_WORKERS = flags.DEFINE_integer("workers", None, "Processes that decode videos in prepare.")
_CHECKPOINT_EVERY = flags.DEFINE_integer("checkpoint_every", None, "Checkpoint every N steps.")
_EXPORT = flags.DEFINE_boolean("export", True, "Export a SavedModel at the end.")
_EVAL_EVERY = flags.DEFINE_integer(
    "eval_every", None, "Evaluate every N steps (and at the last) on the held-out records "
    "with the dataset's protocol: TensorBoard run 'eval', and the best checkpoint kept "
    "(0: only the final evaluation).")
_VAL_FRACTION = flags.DEFINE_float(
    "val_fraction", None, "With --eval_every: hold out this fraction of each class's train "
    "clips (seeded) and evaluate on them; default: the val split (MPII's val list), else "
    "the test split.")
_EVAL_CLIPS = flags.DEFINE_integer(
    "eval_clips", None, "With --eval_every: evaluate on only the first N held-out clips.")
_EXPORT_CHECKPOINT = flags.DEFINE_string(
    "export_checkpoint", None, "Which weights the final evaluation, model.keras and the "
    "export use: last, or best (by the evaluations of --eval_every).")
_DATA_SERVICE = flags.DEFINE_string(
    "data_service", None, "grpc://HOST:PORT of a tf.data service dispatcher: the training "
    "input pipeline runs on its workers (training/data_service.py starts them; README).")
_CPU_REPLICAS = flags.DEFINE_integer(
    "cpu_replicas", None, "Split the CPU into N logical devices, so that --strategy=mirrored "
    "runs N replicas without GPUs (for trying distribution on a laptop).")


# Flags named as the ExperimentConfig fields they set (None: the dataset's preset).
_CONFIG_FLAGS = (_WORKDIR, _DATA_DIR, _SPLIT, _RECORDS_DIR, _BACKBONE, _HEAD, _RANK,
                 _CLASS_SPECIFIC, _WEIGHTS, _IMAGE_SIZE, _NUM_SEGMENTS, _TEST_FRAMES,
                 _EVAL_VIEWS, _RESIZE_SHORT, _FLIP, _CROP_SCALES, _COLOR_JITTER, _EPOCHS, _STEPS,
                 _BATCH_SIZE, _ACCUMULATION, _OPTIMIZER, _LEARNING_RATE, _LR_DECAY_STEPS,
                 _LR_DECAY_RATE, _WEIGHT_DECAY, _DROPOUT, _MIXED_PRECISION, _AUGMENT_ON,
                 _STRATEGY, _SEED, _WORKERS, _CHECKPOINT_EVERY, _DATA_SERVICE, _EVAL_EVERY,
                 _VAL_FRACTION, _EVAL_CLIPS, _EXPORT_CHECKPOINT)


def _config():
    """The resolved config (`make_config`: preset, flags, derived values, every check)."""
    from keras_attnpool.trainer.presets import make_config

    if _EPOCHS.value is not None and _STEPS.value is not None:
        fail("give --epochs or --steps, not both.")
    if _CPU_REPLICAS.value is not None and _CPU_REPLICAS.value < 1:
        fail(f"--cpu_replicas={_CPU_REPLICAS.value}: must be >= 1.")
    values = {f.name: f.value for f in _CONFIG_FLAGS}
    if _CROP_SCALES.value is not None:
        try:
            values["crop_scales"] = tuple(float(s) for s in _CROP_SCALES.value)
        except ValueError:
            fail(f"--crop_scales={','.join(_CROP_SCALES.value)}: give comma-separated "
                 "fractions of the short side, such as 1,0.875,0.75,0.66.")
    with quiet_native_logs():  # the checks load TensorFlow (backbones, views)
        try:
            return make_config(_DATASET.value, **values)
        except ValueError as error:
            fail(error)


def run(config) -> dict:
    """Prepare, train, evaluate, export; returns the test metrics."""
    from keras_attnpool.trainer import experiment
    from keras_attnpool.trainer.strategy import make_strategy

    with quiet_native_logs():  # the runtime starts here and probes for CUDA
        strategy = make_strategy(config.strategy)
    return experiment.run_experiment(config, strategy, export_model=_EXPORT.value)["metrics"]


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}; flags look like --steps=100.")
    config = _config()
    logging.set_verbosity(logging.WARNING)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    if _CPU_REPLICAS.value:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * _CPU_REPLICAS.value)
    from keras_attnpool.models import PretrainedWeightsError
    from keras_attnpool.trainer.loop import NonFiniteLossError, TrainingInterrupted

    try:
        with cli.libjpeg_warnings_counted():
            run(config)
    except TrainingInterrupted as interrupted:
        fail(interrupted, code=130)
    except KeyboardInterrupt:
        fail("interrupted; rerun the same command to resume", code=130)
    except (ValueError, FileNotFoundError, PretrainedWeightsError) as error:
        fail(error)
    except NonFiniteLossError as error:
        fail(error, code=3)
    except tf.errors.OpError as error:
        fail_on_input_error(error, config.records_dir)


if __name__ == "__main__":
    cli.run(main)
