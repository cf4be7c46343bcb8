"""HICO (Humans Interacting with Common Objects) as released: `anno.mat` and `images/`.

Files (from `hico_20150920.tar.gz`):

    <data_dir>/anno.mat
    <data_dir>/images/train2015/HICO_train2015_00000001.jpg ...
    <data_dir>/images/test2015/HICO_test2015_00000001.jpg ...

`anno.mat` holds `anno_train` (600 x 38116) and `anno_test` (600 x 9658), one column per
image of `list_train` / `list_test` (cell arrays of file names), one row per entry of
`list_action` (a struct array with `vname` and `nname`, e.g. "ride", "bicycle").
Values: 1 positive, -1 negative, 0 ambiguous, NaN unknown (not annotated).

Multi-label: each sample's label is a read-only float32 vector of length 600 with those
values kept as they are (0 and NaN stay distinct: AP ignores ambiguous samples). Classes
are "<vname> <nname>" in `list_action` order (row k of anno is class k). Splits "train"
and "test"; `video_id` is "train2015/<name>" or "test2015/<name>".

A file that is not the release (missing variables, shapes that disagree with the lists)
always raises. A bad image entry (a value other than 1/-1/0/NaN, a `..` name, a duplicate,
a missing or empty image) follows `on_error`; `line` is the 1-based column of the image.
"""

from __future__ import annotations

import os

import numpy as np

from keras_attnpool.data.datasets import matlab
from keras_attnpool.data.datasets.common import (
    Entry, Reporter, absolute, build_samples, drop_duplicates, info_counts, safe_relpath)
from keras_attnpool.data.datasets.records import DatasetError, DatasetSpec

ANNOTATION_FILE = "anno.mat"
IMAGE_FOLDERS = {"train": "train2015", "test": "test2015"}
_REQUIRED = ("anno_train", "anno_test", "list_train", "list_test", "list_action")


def read_actions(list_action: object, path: str) -> list[str]:
    """Class names "<vname> <nname>" from `list_action`; raises DatasetError if malformed."""
    names = []
    for k, action in enumerate(matlab.as_list(list_action), start=1):
        vname = matlab.text(matlab.get(action, "vname"))
        nname = matlab.text(matlab.get(action, "nname"))
        if not vname or not nname:
            raise DatasetError(f"{path}: list_action({k}) has no vname/nname; this is not "
                               "the HICO anno.mat as released, download it again")
        names.append(f"{vname} {nname}")
    return names


def _label_matrix(anno: object, names: list[str], num_classes: int, variable: str,
                  path: str) -> np.ndarray:
    """(num_images, num_classes) float32 from the (num_classes, num_images) variable."""
    matrix = np.asarray(anno, dtype=np.float64)
    if matrix.ndim == 1 and num_classes == 1:
        matrix = matrix[None, :]
    elif matrix.ndim == 1 and len(names) == 1:
        matrix = matrix[:, None]
    expected = (num_classes, len(names))
    if matrix.shape != expected:
        raise DatasetError(f"{path}: {variable} has shape {matrix.shape}, expected {expected} "
                           "(classes x images of the list); download anno.mat again")
    labels = np.ascontiguousarray(matrix.T, dtype=np.float32)
    labels.setflags(write=False)
    return labels


def _split_entries(contents: dict, split: str, num_classes: int, path: str,
                   reporter: Reporter) -> list[Entry]:
    names = [matlab.text(n) for n in matlab.as_list(contents[f"list_{split}"])]
    labels = _label_matrix(contents[f"anno_{split}"], names, num_classes,
                           f"anno_{split}", path)
    allowed = np.isnan(labels) | np.isin(labels, (1.0, -1.0, 0.0))
    folder = IMAGE_FOLDERS[split]
    entries = []
    for column, name in enumerate(names):
        rel = safe_relpath(name) if name else None
        if rel is None or "/" in rel:
            reporter.error(str(name), f"image name in list_{split} is empty or escapes "
                                      "the images folder", path, column + 1, split=split)
        elif not allowed[column].all():
            k = int(np.argmin(allowed[column]))
            reporter.error(name, f"anno_{split} value {labels[column, k]} for class {k + 1} "
                                 "is not 1, -1, 0 or NaN", path, column + 1, split=split)
        else:
            entries.append(Entry(f"{folder}/{rel}", labels[column], split, path, column + 1))
    return entries


def read_hico(data_dir: str, *, on_error: str = "skip", annotation_file: str | None = None,
              keypoints_dir: str | None = None) -> DatasetSpec:
    """Reads HICO's multi-label train and test images.

    Args:
        data_dir: folder holding `anno.mat` and `images/`.
        on_error: "skip" (record problems in `skipped`) or "fail" (raise `DatasetError`).
        annotation_file: `anno.mat`, if not `<data_dir>/anno.mat`.
        keypoints_dir: OpenPose output, `<keypoints_dir>/train2015/<stem>_keypoints.json`
            or the authors' `<keypoints_dir>/train2015/<stem>/image_00001.json`.
    """
    reporter = Reporter(on_error)
    data_dir = absolute(data_dir)
    path = absolute(annotation_file or os.path.join(data_dir, ANNOTATION_FILE))
    contents = matlab.load_mat(path, _REQUIRED, "HICO anno.mat")
    classes = read_actions(contents["list_action"], path)
    entries = []
    for split in ("train", "test"):
        entries.extend(_split_entries(contents, split, len(classes), path, reporter))
    kept = drop_duplicates(entries, reporter)
    samples = build_samples(kept, os.path.join(data_dir, "images"), ("train", "test"),
                            reporter, keypoints_dir, video=False)
    info = {"annotation_file": path, **info_counts(samples)}
    return DatasetSpec("hico", data_dir, classes, samples, reporter.skipped,
                       multi_label=True, info=info)
