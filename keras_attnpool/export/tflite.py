"""TFLite export of a served model: float32, dynamic-range or full-integer int8.

The converter reads the SavedModel's `classify_preprocessed` signature: TFLite has no image
decoder and no string tensors, so the phone resizes and crops (as described in the metadata)
and the `.tflite` file does the rest. Beside `model.tflite` the export writes

    model.json   metadata: input name, shape, dtype and range, the resize rule, the model's
                 normalisation (inside the graph), output names and shapes, quantization,
                 the label file
    labels.txt   one class name per line, in index order

Input: `pixels` float32 (1, H, W, 3), RGB in [0, 255]. Outputs: `logits` (1, K), `scores`
(1, K), `bottom_up_attention` (1, h, w). int8 models keep float32 inputs and outputs (a
quantize op in, dequantize ops out) so that every variant is a drop-in for the other; all
their inner ops are int8 (TFLITE_BUILTINS_INT8 only).
"""

import json
import os
import shutil
import warnings
from typing import Callable, Iterable, Iterator, Optional

import numpy as np
import tensorflow as tf

from keras_attnpool import files
from keras_attnpool.export.preprocessing import resize_and_centre_crop
from keras_attnpool.export.saved_model import LABELS_FILE, PREPROCESSING_FILE

QUANTIZATIONS = ("float", "dynamic", "int8")
TFLITE_SIGNATURE = "classify_preprocessed"
INPUT_NAME = "pixels"


def _read_export_info(saved_model_path: str) -> tuple:
    """(preprocessing info dict, class names) from the SavedModel's assets."""
    assets = os.path.join(saved_model_path, "assets")
    info_path = os.path.join(assets, PREPROCESSING_FILE)
    labels_path = os.path.join(assets, LABELS_FILE)
    if not (os.path.isfile(info_path) and os.path.isfile(labels_path)):
        raise FileNotFoundError(
            f"{saved_model_path}: not a SavedModel written by `export_saved_model` (no "
            f"assets/{PREPROCESSING_FILE} or assets/{LABELS_FILE}); export it with "
            "keras_attnpool.export.export_saved_model first.")
    with open(info_path, encoding="utf-8") as f:
        info = json.load(f)
    with open(labels_path, encoding="utf-8") as f:
        names = [line.rstrip("\n") for line in f if line.strip()]
    return info, names


def calibration_batches(images: Iterable[np.ndarray], size: tuple,
                        limit: Optional[int] = None,
                        resize_short: Optional[int] = None,
                        prepared_short_side: Optional[int] = None) -> Iterator[dict]:
    """Yields {"pixels": float32 (1, H, W, 3)} from images (each (h, w, 3) or batches).

    Images of any size are resized and centre-cropped as in serving, so calibration sees
    what the model sees.
    """
    count = 0
    for item in images:
        item = np.asarray(item)
        for image in (item if item.ndim == 4 else item[None]):
            if limit is not None and count >= limit:
                return
            pixels = resize_and_centre_crop(tf.convert_to_tensor(image), size, resize_short,
                                            prepared_short_side)
            yield {INPUT_NAME: pixels.numpy()[None].astype(np.float32)}
            count += 1


def _converter(saved_model_path: str, quantization: str,
               representative: Optional[Callable[[], Iterator[dict]]]):
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_path, signature_keys=[TFLITE_SIGNATURE])
    if quantization in ("dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "int8":
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter


def _metadata(info: dict, names: list, quantization: str, saved_model_path: str) -> dict:
    height, width = info["input_size"]
    return {
        "format": "keras_attnpool tflite metadata v1",
        "signature": TFLITE_SIGNATURE,
        "input": {"name": INPUT_NAME, "shape": [1, height, width, 3], "dtype": "float32",
                  "range": [0.0, 255.0], "color": "RGB",
                  "resize_short": info.get("resize_short", min(height, width)),
                  "prepared_short_side": info.get("prepared_short_side"),
                  "resize": f"{info['resize']} to {height}x{width} (done by the caller)",
                  "normalisation": "inside the model: pass raw pixels "
                                   f"(backbone preprocessing '{info['model_normalisation']}')"},
        "outputs": {"logits": [1, len(names)], "scores": [1, len(names)],
                    "bottom_up_attention": "[1, h, w] saliency of the head "
                                           f"'{info['head']}'"},
        "score": info["score"],
        "quantization": quantization,
        "num_classes": len(names),
        "labels_file": LABELS_FILE,
        "labels": names,
        "source_saved_model": os.path.abspath(saved_model_path),
    }


def export_tflite(saved_model_path: str, tflite_path: str, quantization: str = "float",
                  representative_data: Optional[Iterable[np.ndarray]] = None,
                  num_calibration: int = 300) -> str:
    """Converts an exported SavedModel to a `.tflite` file with metadata beside it.

    Args:
        saved_model_path: a version folder written by `export_saved_model`.
        tflite_path: where the `.tflite` file goes (its folder is created).
        quantization: "float" (float32), "dynamic" (int8 weights, float activations) or
            "int8" (full-integer, calibrated on `representative_data`).
        representative_data: for "int8": images (each (h, w, 3) or a batch (N, h, w, 3),
            uint8 or float RGB in [0, 255], any size) from the training distribution.
        num_calibration: at most this many calibration images are used.

    Returns:
        `tflite_path`. Also writes `<stem>.json` (metadata) and `labels.txt` beside it.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"`quantization` must be one of {QUANTIZATIONS}; got {quantization!r}.")
    info, names = _read_export_info(saved_model_path)
    representative = None
    if quantization == "int8":
        if representative_data is None:
            raise ValueError("quantization='int8' needs `representative_data`: a few hundred "
                             "training images to calibrate the activation ranges.")
        size = tuple(info["input_size"])
        representative = lambda: calibration_batches(  # noqa: E731
            representative_data, size, num_calibration, info.get("resize_short"),
            info.get("prepared_short_side"))
    with warnings.catch_warnings():
        # int8 calibration runs TF's own (deprecated) interpreter inside the converter; we
        # run models with ai_edge_litert, so its deprecation notice is not for our users.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        flatbuffer = _converter(saved_model_path, quantization, representative).convert()
    folder = os.path.dirname(os.path.abspath(tflite_path))
    os.makedirs(folder, exist_ok=True)
    files.write_bytes(tflite_path, flatbuffer)
    stem = os.path.splitext(tflite_path)[0]
    metadata = _metadata(info, names, quantization, saved_model_path)
    files.write_json(f"{stem}.json", metadata)
    shutil.copyfile(os.path.join(saved_model_path, "assets", LABELS_FILE),
                    os.path.join(folder, LABELS_FILE))
    return tflite_path


def load_interpreter(tflite_path: str, num_threads: Optional[int] = None):
    """An `ai_edge_litert` interpreter for the file, tensors allocated."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=os.fspath(tflite_path), num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


def run_tflite(interpreter, pixels: np.ndarray) -> dict:
    """Runs the `classify_preprocessed` signature on float32 pixels (N, H, W, 3), one by one.

    Returns:
        {"logits", "scores", "bottom_up_attention"} stacked over the N images.
    """
    runner = interpreter.get_signature_runner(TFLITE_SIGNATURE)
    outputs = [runner(**{INPUT_NAME: np.asarray(image, np.float32)[None]})
               for image in pixels]
    return {key: np.concatenate([out[key] for out in outputs]) for key in outputs[0]}
