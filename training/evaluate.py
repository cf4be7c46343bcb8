r"""Evaluate a trained workdir with the dataset's protocol.

    python training/evaluate.py --workdir=workdir/demo_attention
    python training/evaluate.py --workdir=W --test_frames=25 --eval_views=center_flip
    python training/evaluate.py --workdir=W --resize_short=64   # the whole 64-px frame

Loads W's model, labels and resolved config (`keras_attnpool.workdir`), scores the test
split of the run's prepared records (videos: the logits of --test_frames uniformly spaced
frames and all views averaged per video) and writes W/metrics.json and W/per_class.csv.
"""

import json

from absl import flags, logging

from keras_attnpool import cli
from keras_attnpool.cli import fail, fail_on_input_error, quiet_native_logs

_WORKDIR = flags.DEFINE_string("workdir", None, "A workdir written by training/fit.py.")
_TEST_FRAMES = flags.DEFINE_integer("test_frames", None, "Frames per video (default: run's).")
_EVAL_VIEWS = flags.DEFINE_string("eval_views", None, "Views per frame (default: run's).")
_RESIZE_SHORT = flags.DEFINE_integer(
    "resize_short", None, "Short side before the centre crop (default: run's).")
_RECORDS_DIR = flags.DEFINE_string("records_dir", None, "Records (default: the run's).")


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}.")
    if not _WORKDIR.value:
        fail("--workdir is required.")
    logging.set_verbosity(logging.WARNING)
    from keras_attnpool.workdir import Workdir, WorkdirError

    workdir = Workdir(_WORKDIR.value)
    try:  # before TensorFlow loads
        workdir.check_trained()
    except WorkdirError as error:
        fail(error)
    with quiet_native_logs():
        import tensorflow as tf

        from keras_attnpool.trainer import experiment

    config = None
    try:
        with quiet_native_logs():
            run = workdir.load_run()
        config = experiment.with_overrides(run.config, test_frames=_TEST_FRAMES.value,
                                           eval_views=_EVAL_VIEWS.value,
                                           resize_short=_RESIZE_SHORT.value,
                                           records_dir=_RECORDS_DIR.value)
        with cli.libjpeg_warnings_counted():
            # model.keras keeps the weights of the checkpoint the training run said.
            used = (workdir.read_metrics() or {}).get("checkpoint")
            metrics = experiment.evaluate(config, run.model, run.class_names, workdir,
                                          checkpoint=used)
    except (ValueError, FileNotFoundError) as error:
        fail(error)
    except tf.errors.OpError as error:
        fail_on_input_error(error, config.records_dir if config is not None else None)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    cli.run(main)
