"""Export a training workdir: the function `training/export.py` and the end of `fit` call.

A workdir holds
    model.keras   the trained single-frame image model
    labels.txt    class names, one per line, in index order
    config.json   the run's settings: {"backbone", "head", "num_classes", "image_size": [H, W]
                  or S, "records_dir": path or null, "dataset", ...}; "resize_short" (the
                  evaluation short side before the centre crop; null: the input size) and
                  "multi_label" (default: dataset == "hico") are read when present, and
                  num_classes / image_size are checked against labels.txt and the model
and int8 calibration images come from `records_dir`'s `train-*.tfrecord` shards (the first
frame of each record, read from all shards in turn so that every class is seen).
"""

import dataclasses
import glob
import json
import logging
import os
from typing import Iterable, List, Optional

import keras
import numpy as np
import tensorflow as tf

from keras_attnpool.data import record_format
from keras_attnpool.export.models_config import update_models_config
from keras_attnpool.export.saved_model import export_saved_model, next_version
from keras_attnpool.export.tflite import QUANTIZATIONS, export_tflite

TFLITE_CHOICES = ("none",) + QUANTIZATIONS
_LOG = logging.getLogger(__name__)


class WorkdirError(ValueError):
    """A workdir is missing a file or holds an unusable one; the message says which."""


@dataclasses.dataclass
class Workdir:
    """What a workdir holds, loaded."""

    path: str
    model: keras.Model
    class_names: List[str]
    config: dict

    @property
    def multi_label(self) -> bool:
        """HICO-style multi-label scores (sigmoid) instead of a softmax."""
        return bool(self.config.get("multi_label", self.config.get("dataset") == "hico"))


def _read_config(workdir: str) -> dict:
    path = os.path.join(workdir, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except FileNotFoundError:
        raise WorkdirError(f"{path} not found; is {workdir} a training workdir?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise WorkdirError(f"{path} is not valid JSON ({error}).") from None
    if not isinstance(config, dict):
        raise WorkdirError(f"{path} must hold a JSON object (the run's settings).")
    return config


def _read_labels(workdir: str) -> List[str]:
    path = os.path.join(workdir, "labels.txt")
    if not os.path.isfile(path):
        raise WorkdirError(f"{path} not found; write the class names there, one per line.")
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def _check_agreement(workdir: str, config: dict, names: List[str], model: keras.Model) -> None:
    """labels.txt, config.json and the model must describe the same classes and size."""
    logits = model.output["logits"] if isinstance(model.output, dict) else model.output
    num_classes = int(config.get("num_classes", logits.shape[-1]))
    if not len(names) == num_classes == logits.shape[-1]:
        raise WorkdirError(
            f"{workdir}: labels.txt has {len(names)} names, config.json num_classes is "
            f"{config.get('num_classes')} and model.keras has {logits.shape[-1]} outputs; "
            "they must agree (one name per class, in index order).")
    size = tuple(int(d) for d in model.inputs[0].shape[1:3])
    expected = config.get("image_size", size)
    expected = tuple(expected) if isinstance(expected, (list, tuple)) else (expected,) * 2
    if tuple(int(d) for d in expected) != size:
        raise WorkdirError(f"{workdir}/config.json image_size {config['image_size']} differs "
                           f"from the model's input size {list(size)}.")


def load_workdir(workdir: str) -> Workdir:
    """Loads a workdir's model, labels and config, checking that they agree."""
    workdir = os.fspath(workdir)
    if not os.path.isdir(workdir):
        raise WorkdirError(f"workdir {workdir} is not a directory; pass the folder fit wrote.")
    config = _read_config(workdir)
    names = _read_labels(workdir)
    model_path = os.path.join(workdir, "model.keras")
    if not os.path.isfile(model_path):
        raise WorkdirError(f"{model_path} not found; train first (training/fit.py).")
    try:
        model = keras.saving.load_model(model_path)
    except Exception as error:  # Keras raises many types for a bad archive
        raise WorkdirError(f"{model_path} could not be loaded ({type(error).__name__}: "
                           f"{error}); re-save it with model.save().") from error
    _check_agreement(workdir, config, names, model)
    return Workdir(workdir, model, names, config)


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
    loaded = load_workdir(workdir)
    if tflite == "int8" and representative_data is None:
        # Before any writing: a missing dataset should not leave a half-done export.
        representative_data = calibration_images(loaded.config.get("records_dir"))
    export_dir = os.path.abspath(export_dir)
    version = next_version(export_dir) if version is None else version
    saved_model = export_saved_model(loaded.model, export_dir, loaded.class_names, version,
                                     overwrite=overwrite, multi_label=loaded.multi_label,
                                     resize_short=loaded.config.get("resize_short"))
    result = {"saved_model": saved_model, "version": version, "tflite": None,
              "models_config": None}
    if models_config:
        result["models_config"] = _register(export_dir)
    if tflite != "none":
        path = os.path.join(export_dir, "tflite", str(version), f"model_{tflite}.tflite")
        result["tflite"] = export_tflite(saved_model, path, tflite, representative_data)
    return result


def _register(export_dir: str) -> Optional[str]:
    name = os.path.basename(export_dir)
    config_path = os.path.join(os.path.dirname(export_dir), "models.config")
    try:
        return update_models_config(config_path, name, f"/models/{name}")
    except ImportError as error:
        _LOG.warning("models.config not updated: %s", error)
        return None
