"""Versioned, atomic SavedModel export for TF Serving.

A TF Serving *model base path* holds one folder per integer version:

    savedmodels/NAME/
        1/  saved_model.pb  variables/  assets/labels.txt  assets/preprocessing.json
        2/  ...

TF Serving loads the highest version it finds. A version is first written to a hidden
temporary folder beside it and then renamed into place, so a server watching the base path
never sees half a model; an existing version is never replaced unless `overwrite=True`.
"""

import json
import os
import shutil
import tempfile
from typing import Optional, Sequence

import keras

from keras_attnpool.export.image_bytes import DEFAULT_MAX_PIXELS, FORMATS
from keras_attnpool.export.preprocessing import served_short_side
from keras_attnpool.export.serving import ServingGraph
from keras_attnpool.models.backbones import Preprocess

SIGNATURES = ("serving_default", "classify_images", "classify_video", "classify_preprocessed")
LABELS_FILE = "labels.txt"
PREPROCESSING_FILE = "preprocessing.json"


class VersionExistsError(FileExistsError):
    """The export version already exists and `overwrite` was not asked for."""


def existing_versions(export_dir: str) -> list:
    """Sorted integer versions under a model base path (folders named by digits only)."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(int(name) for name in os.listdir(export_dir)
                  if name.isdigit() and os.path.isdir(os.path.join(export_dir, name)))


def next_version(export_dir: str) -> int:
    """One more than the highest existing version, or 1."""
    versions = existing_versions(export_dir)
    return versions[-1] + 1 if versions else 1


def _preprocessing_info(model: keras.Model, graph: ServingGraph) -> dict:
    """What a client needs to feed the model itself (TFLite, `classify_preprocessed`)."""
    preprocess = [layer for layer in _all_layers(model) if isinstance(layer, Preprocess)]
    mode = getattr(preprocess[0], "mode", "unknown") if preprocess else "unknown"
    return {
        "input_size": list(graph.image_size),
        "input": "float32 RGB in [0, 255], (B, H, W, 3); normalisation is inside the model",
        "model_normalisation": mode,
        "resize_short": served_short_side(graph.image_size, graph.resize_short),
        "prepared_short_side": graph.prepared_short_side,
        "resize": "an image whose short side is above prepared_short_side (when null: above "
                  "resize_short) first shrunk to it, bilinear with antialiasing; then bilinear "
                  "without antialiasing to short side resize_short; then the centre crop at "
                  "offset round(free / 2), halves to even",
        "image_formats": list(FORMATS),
        "max_image_pixels": graph.max_pixels,
        "num_classes": graph.num_classes,
        "score": "sigmoid" if graph.multi_label else "softmax",
        "head": graph.head.name,
        "top_k": graph.top_k,
    }


def _all_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def _write_saved_model(model: keras.Model, path: str, graph: ServingGraph) -> None:
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, function in graph.functions().items():
        archive.add_endpoint(name, function)
    archive.write_out(path, verbose=False)
    assets = os.path.join(path, "assets")
    os.makedirs(assets, exist_ok=True)
    with open(os.path.join(assets, LABELS_FILE), "w", encoding="utf-8") as f:
        f.write("".join(f"{name}\n" for name in graph.class_names))
    with open(os.path.join(assets, PREPROCESSING_FILE), "w", encoding="utf-8") as f:
        json.dump(_preprocessing_info(model, graph), f, indent=2)


def _resolve_version(export_dir: str, version: Optional[int], overwrite: bool) -> int:
    if version is None:
        return next_version(export_dir)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"`version` must be a positive integer (a TF Serving version "
                         f"folder); got {version!r}.")
    target = os.path.join(export_dir, str(version))
    if os.path.exists(target) and not overwrite:
        raise VersionExistsError(
            f"{target} already exists; pass another version, leave it out to use "
            f"{next_version(export_dir)}, or overwrite it (overwrite=True / --overwrite).")
    return version


def export_saved_model(model: keras.Model, export_dir: str, class_names: Sequence[str],
                       version: Optional[int] = None, overwrite: bool = False,
                       top_k: int = 5, multi_label: bool = False,
                       resize_short: Optional[int] = None,
                       prepared_short_side: Optional[int] = None,
                       max_image_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """Exports a single-frame image model as `export_dir/<version>/` for TF Serving.

    Signatures (see `keras_attnpool.export.serving` for the outputs):
        serving_default:        image_bytes  string [B]  (JPEG, PNG, GIF or BMP files)
        classify_images:        images       uint8  [B, H, W, 3] (any H, W)
        classify_video:         frames       uint8  [B, T, H, W, 3]; scores averaged over T
        classify_preprocessed:  pixels       float32 [B, h, w, 3] at the model's input size,
                                also returning `logits` (what TFLite is converted from)

    Args:
        model: a single-frame model from `build_action_model` (input `image`, raw RGB).
        export_dir: the model base path, e.g. "savedmodels/hmdb51_attention".
        class_names: one name per class, in index order (written to assets/labels.txt).
        version: the integer version; None takes one more than the highest existing one.
        overwrite: replace an existing version (otherwise `VersionExistsError`).
        top_k: how many classes the top-k outputs list.
        multi_label: sigmoid scores (HICO) instead of softmax.
        resize_short: short side before the centre crop, as the evaluation pipeline does it
            (None: the model's input size).
        prepared_short_side: the short side the training records were stored at; larger
            images are first shrunk to it with antialiasing, as `prepare` shrank them.
        max_image_pixels: `serving_default` refuses files with more pixels (read from
            their header, before decoding).

    Returns:
        The path of the written version folder.
    """
    # Checks the model and arguments before anything is written.
    graph = ServingGraph(model, class_names, top_k=top_k, multi_label=multi_label,
                         resize_short=resize_short, prepared_short_side=prepared_short_side,
                         max_pixels=max_image_pixels)
    export_dir = os.path.abspath(os.fspath(export_dir))
    os.makedirs(export_dir, exist_ok=True)
    version = _resolve_version(export_dir, version, overwrite)
    target = os.path.join(export_dir, str(version))
    # Hidden (dot) names are not integer versions, so TF Serving ignores them.
    staging = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=export_dir)
    try:
        _write_saved_model(model, os.path.join(staging, "model"), graph)
        _move_into_place(os.path.join(staging, "model"), target, staging, overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _move_into_place(source: str, target: str, staging: str, overwrite: bool) -> None:
    """Renames `source` to `target`; an existing target is first moved into `staging`."""
    if os.path.exists(target):
        if not overwrite:  # another process exported this version meanwhile
            raise VersionExistsError(f"{target} appeared while exporting; not replacing it.")
        os.rename(target, os.path.join(staging, "replaced"))
    os.rename(source, target)
