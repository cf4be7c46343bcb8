"""Export a training workdir: what `training/export.py` and the end of `fit` call.

The workdir (`keras_attnpool.workdir`) gives the trained model, its class names and the
resolved config; the served preprocessing is the evaluation's (a larger image first shrunk
to the records' `config.short_side` as `prepare` did, then `config.resize_short` and the
centre crop), so what is served is what was evaluated. int8 calibration images come
from the config's `records_dir` `train-*.tfrecord` shards (the first frame of each record,
read from all shards in turn so that every class is seen).
"""

import glob
import logging
import os
from typing import Iterable, List, Optional

import numpy as np
import tensorflow as tf

from keras_attnpool.data.records import schema as record_format
from keras_attnpool.export.models_config import update_models_config
from keras_attnpool.export.saved_model import export_saved_model, next_version
from keras_attnpool.export.tflite import QUANTIZATIONS, export_tflite
from keras_attnpool.workdir import TrainedRun, Workdir, WorkdirError

TFLITE_CHOICES = ("none",) + QUANTIZATIONS
_LOG = logging.getLogger(__name__)


def load_workdir(workdir: str) -> TrainedRun:
    """Loads a workdir's model, labels and resolved config, checking that they agree."""
    return Workdir(workdir).load_run()


def calibration_images(records_dir: Optional[str], count: int = 300) -> List[np.ndarray]:
    """Up to `count` uint8 RGB images: the first frame of records in `train-*.tfrecord`."""
    if not records_dir or not os.path.isdir(records_dir):
        raise WorkdirError(
            f"int8 calibration needs training images, but records_dir={records_dir!r} is "
            "not a folder. Prepare records (training/prepare.py) and set records_dir in "
            "config.json, pass representative_data, or use --tflite=dynamic.")
    shards = sorted(glob.glob(os.path.join(records_dir, "train-*.tfrecord")))
    if not shards:
        raise WorkdirError(f"{records_dir} has no train-*.tfrecord shards for int8 calibration.")
    records = tf.data.Dataset.from_tensor_slices(shards).interleave(
        tf.data.TFRecordDataset, cycle_length=len(shards), block_length=1)
    first_frames = records.map(
        lambda serialized: tf.io.decode_jpeg(
            record_format.parse_example(serialized)["frames"][0], channels=3))
    images = [image.numpy() for image in first_frames.take(count)]
    if not images:
        raise WorkdirError(f"{records_dir}: the train shards hold no records.")
    return images


def export_workdir(workdir: str, export_dir: str, version: Optional[int] = None,
                   tflite: str = "none", overwrite: bool = False,
                   representative_data: Optional[Iterable[np.ndarray]] = None,
                   models_config: bool = True) -> dict:
    """Exports a workdir's model to `export_dir/<version>/` (and optionally TFLite).

    Args:
        workdir: the training workdir.
        export_dir: the TF Serving model base path, e.g. "savedmodels/NAME".
        version: integer version; None takes the next free one.
        tflite: "none", "float", "dynamic" or "int8"; the file goes to
            `export_dir/tflite/<version>/model_<tflite>.tflite` (TF Serving ignores that
            non-numeric folder).
        overwrite: replace an existing version.
        representative_data: int8 calibration images; default: from config's records_dir.
        models_config: add the model to `<parent of export_dir>/models.config`.

    Returns:
        {"saved_model", "version", "tflite" (path or None), "models_config" (path or None)}.
    """
    if tflite not in TFLITE_CHOICES:
        raise ValueError(f"`tflite` must be one of {TFLITE_CHOICES}; got {tflite!r}.")
    run = load_workdir(workdir)
    if tflite == "int8" and representative_data is None:
        # Before any writing: a missing dataset should not leave a half-done export.
        representative_data = calibration_images(run.config.records_dir)
    export_dir = os.path.abspath(export_dir)
    version = next_version(export_dir) if version is None else version
    saved_model = export_run(run, export_dir, version, overwrite=overwrite)
    result = {"saved_model": saved_model, "version": version, "tflite": None,
              "models_config": None}
    if models_config:
        result["models_config"] = _register(export_dir)
    if tflite != "none":
        path = os.path.join(export_dir, "tflite", str(version), f"model_{tflite}.tflite")
        result["tflite"] = export_tflite(saved_model, path, tflite, representative_data)
    return result


def export_run(run: TrainedRun, export_dir: str, version: Optional[int] = None,
               overwrite: bool = False) -> str:
    """The SavedModel of a trained run, served with the evaluation's preprocessing (the
    config's); refused when metrics.json was scored with another `resize_short`
    (`training/evaluate.py --resize_short`), which the export would not serve."""
    protocol = (run.workdir.read_metrics() or {}).get("protocol", {})
    scored = protocol.get("resize_short")
    if scored is not None and scored != run.config.resize_short:
        raise WorkdirError(
            f"{run.workdir.metrics_path} was scored at resize_short={scored}, but the "
            f"model serves its run's {run.config.resize_short}; evaluate it again without "
            "--resize_short (training/evaluate.py) before exporting")
    return export_saved_model(run.model, export_dir, run.class_names, version,
                              overwrite=overwrite, multi_label=run.config.multi_label,
                              resize_short=run.config.resize_short,
                              prepared_short_side=run.config.short_side)


def _register(export_dir: str) -> Optional[str]:
    name = os.path.basename(export_dir)
    config_path = os.path.join(os.path.dirname(export_dir), "models.config")
    try:
        return update_models_config(config_path, name, f"/models/{name}")
    except ImportError as error:
        _LOG.warning("models.config not updated: %s", error)
        return None
