r"""Evaluate a trained workdir with the dataset's protocol.

    python training/evaluate.py --workdir=workdir/demo_attention
    python training/evaluate.py --workdir=W --test_frames=25 --eval_views=center_flip

Loads W/model.keras and W/config.json, scores the test split of the run's prepared records
(videos: the logits of --test_frames uniformly spaced frames and all views averaged per
video) and writes W/metrics.json and W/per_class.csv.
"""

import dataclasses
import json
import os

from absl import flags, logging

from keras_attnpool import cli
from keras_attnpool.cli import fail, fail_on_input_error, quiet_native_logs

_WORKDIR = flags.DEFINE_string("workdir", None, "A workdir written by training/fit.py.")
_TEST_FRAMES = flags.DEFINE_integer("test_frames", None, "Frames per video (default: run's).")
_EVAL_VIEWS = flags.DEFINE_string("eval_views", None, "Views per frame (default: run's).")
_RECORDS_DIR = flags.DEFINE_string("records_dir", None, "Records (default: the run's).")


def _load(workdir: str):
    with quiet_native_logs():
        from keras_attnpool.trainer.presets import ExperimentConfig

    paths = {name: os.path.join(workdir, name) for name in
             ("config.json", "model.keras", "labels.txt")}
    missing = [name for name, path in paths.items() if not os.path.exists(path)]
    if missing:
        fail(f"--workdir={workdir} has no {', '.join(missing)}: train it with "
             "training/fit.py first.")
    with open(paths["config.json"]) as f:
        config = ExperimentConfig(**json.load(f))
    with open(paths["labels.txt"]) as f:
        classes = [line.rstrip("\n") for line in f if line.strip()]
    return config, paths["model.keras"], classes


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}.")
    if not _WORKDIR.value:
        fail("--workdir is required.")
    logging.set_verbosity(logging.WARNING)
    workdir = os.path.abspath(os.path.expanduser(_WORKDIR.value))
    config, model_path, classes = _load(workdir)
    overrides = {k: v for k, v in {"test_frames": _TEST_FRAMES.value,
                                   "eval_views": _EVAL_VIEWS.value}.items() if v is not None}
    config = dataclasses.replace(config, **overrides)
    records_dir = _RECORDS_DIR.value or config.records_dir or os.path.join(
        config.data_dir or "", "prepared", f"split{config.split}")
    if config.dataset == "demo" and not (_RECORDS_DIR.value or config.records_dir):
        from keras_attnpool.data import demo
        records_dir = os.path.join(config.data_dir or demo.default_root(), "prepared",
                                   f"split{config.split}")

    with quiet_native_logs():
        import keras
        import tensorflow as tf

        import keras_attnpool  # noqa: F401  registers the layers
        from keras_attnpool.trainer import experiment

    model = keras.saving.load_model(model_path, safe_mode=True)
    try:
        metrics = experiment.evaluate(config, model, records_dir, classes, workdir)
    except (ValueError, FileNotFoundError) as error:
        fail(error)
    except tf.errors.OpError as error:
        fail_on_input_error(error)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    cli.run(main)
