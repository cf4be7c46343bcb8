"""UCF101 as released: `UCF-101/<Class>/v_<Class>_gXX_cYY.avi` and `ucfTrainTestlist/`.

Files (from `UCF101.rar` and `UCF101TrainTestSplits-RecognitionTask.zip`):

    UCF-101/<Class>/<video>.avi
    ucfTrainTestlist/classInd.txt      lines `1 ApplyEyeMakeup` (1-based index, class name)
    ucfTrainTestlist/trainlist0N.txt   lines `ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1`
    ucfTrainTestlist/testlist0N.txt    lines `ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi`

`data_dir` may be the folder that contains `UCF-101/`, or `UCF-101/` itself. The lists are
looked for in `<data_dir>/ucfTrainTestlist`, then `<videos>/ucfTrainTestlist`, then next to
`data_dir`; or pass `splits_dir`.

Class order (the integer labels): `classInd.txt`, label = index - 1. The class of a video is
its folder in the list line (the file name's spelling can differ, e.g. the folder
`HandstandPushups` holds `v_HandStandPushups_*.avi`); the index in a trainlist line must
agree with that folder, otherwise the line is rejected rather than trusting either.

`classInd.txt` problems always raise (every label depends on it). Problems with list entries
(missing or empty file, malformed line, unknown class, label/folder disagreement, duplicate,
a path with `..`) follow `on_error` (see `common`).
"""

from __future__ import annotations

import os

from keras_attnpool.data.datasets.common import (
    Entry, Reporter, absolute, build_samples, check_split_number, drop_duplicates, info_counts,
    read_lines, safe_relpath)
from keras_attnpool.data.datasets.records import DatasetError, DatasetSpec

LISTS_FOLDER = "ucfTrainTestlist"
VIDEOS_FOLDER = "UCF-101"


def read_class_index(path: str) -> list[str]:
    """Class names from `classInd.txt`, in index order; raises DatasetError on any problem."""
    by_index: dict[int, str] = {}
    for number, text in read_lines(path):
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DatasetError(f"{path}, line {number}: malformed line {text!r}, expected "
                               "'<index> <ClassName>'; restore the official classInd.txt")
        index, name = int(parts[0]), parts[1]
        if index in by_index or name in by_index.values():
            raise DatasetError(f"{path}, line {number}: duplicate class {text!r}; "
                               "restore the official classInd.txt")
        by_index[index] = name
    if sorted(by_index) != list(range(1, len(by_index) + 1)):
        raise DatasetError(f"{path}: class indices must run 1..N without gaps, got "
                           f"{sorted(by_index)[:5]}...; restore the official classInd.txt")
    return [by_index[i] for i in range(1, len(by_index) + 1)]


def _locate(data_dir: str, splits_dir: str | None) -> tuple[str, str]:
    """(videos root, lists folder) for the layouts documented above."""
    videos = os.path.join(data_dir, VIDEOS_FOLDER)
    videos = videos if os.path.isdir(videos) else data_dir
    if splits_dir is not None:
        candidates = [splits_dir]
    else:
        candidates = [os.path.join(d, LISTS_FOLDER)
                      for d in (data_dir, videos, os.path.dirname(data_dir))]
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, "classInd.txt")):
            return videos, absolute(candidate)
    raise DatasetError(f"{candidates[0]}: no classInd.txt found (also looked in "
                       f"{candidates[1:]}); unzip UCF101TrainTestSplits-RecognitionTask.zip "
                       "into the data directory or pass splits_dir")


def parse_list(path: str, split: str, classes: list[str], needs_label: bool,
               reporter: Reporter) -> list[Entry]:
    """Entries of a `trainlist0N.txt` (`needs_label`) or `testlist0N.txt`."""
    label_of = {name: i for i, name in enumerate(classes)}
    expected = "'<Class>/<video>.avi <index>'" if needs_label else "'<Class>/<video>.avi'"
    entries = []
    for number, text in read_lines(path):
        parts = text.split()
        given = parts[1] if len(parts) == 2 else None
        if len(parts) not in (1, 2) or (given is None and needs_label) or (
                given is not None and not given.isdigit()):
            reporter.error(text, f"malformed line, expected {expected}", path, number,
                           split=split)
            continue
        rel = safe_relpath(parts[0])
        if rel is None:
            reporter.error(parts[0], "path escapes the data directory", path, number,
                           split=split)
            continue
        if rel.count("/") != 1:
            reporter.error(parts[0], f"malformed path, expected {expected}", path, number,
                           split=split)
            continue
        cls = rel.split("/")[0]
        if cls not in label_of:
            reporter.error(parts[0], f"unknown class '{cls}' (not in classInd.txt)",
                           path, number, split=split)
            continue
        if given is not None and int(given) - 1 != label_of[cls]:
            other = classes[int(given) - 1] if 1 <= int(given) <= len(classes) else "none"
            reporter.error(parts[0], f"label {given} (class '{other}') disagrees with the "
                                     f"folder's class '{cls}'", path, number, split=split,
                           label=label_of[cls])
            continue
        entries.append(Entry(rel, label_of[cls], split, path, number))
    return entries


def read_ucf101(data_dir: str, split: int = 1, *, on_error: str = "skip",
                splits_dir: str | None = None,
                keypoints_dir: str | None = None) -> DatasetSpec:
    """Reads UCF101 split `split` (1, 2 or 3) into a `DatasetSpec` with train and test.

    Args:
        data_dir: the folder containing `UCF-101/`, or `UCF-101/` itself.
        split: which official split (1, 2 or 3): `trainlist0N.txt` and `testlist0N.txt`.
        on_error: "skip" (record problems in `skipped`) or "fail" (raise `DatasetError`).
        splits_dir: the folder of `classInd.txt` and the lists, if not found as documented.
        keypoints_dir: OpenPose output, `<keypoints_dir>/<Class>/<video stem>/`.
    """
    split = check_split_number(split)
    reporter = Reporter(on_error)
    data_dir = absolute(data_dir)
    if not os.path.isdir(data_dir):
        raise DatasetError(f"{data_dir}: UCF101 data directory not found; pass the folder "
                           "containing UCF-101/")
    videos, lists = _locate(data_dir, splits_dir)
    classes = read_class_index(os.path.join(lists, "classInd.txt"))
    entries = []
    for kind, needs_label in (("train", True), ("test", False)):
        path = os.path.join(lists, f"{kind}list0{split}.txt")
        if not os.path.isfile(path):
            raise DatasetError(f"{path}: split list not found; restore it from "
                               "UCF101TrainTestSplits-RecognitionTask.zip")
        entries.extend(parse_list(path, kind, classes, needs_label, reporter))
    kept = drop_duplicates(entries, reporter)
    samples = build_samples(kept, videos, ("train", "test"), reporter, keypoints_dir)
    info = {"split": split, "splits_dir": lists, **info_counts(samples)}
    return DatasetSpec("ucf101", data_dir, classes, samples, reporter.skipped, info=info)
