"""HMDB51 as released: class folders of `.avi` files and the official 70/30 split files.

On disk (after unpacking `hmdb51_org.rar`, its 51 per-class rars, and `test_train_splits.rar`):

    <data_dir>/<class>/<video>.avi
    <data_dir>/testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt

Each split file line is `<video>.avi <0|1|2>` (1 train, 2 test, 0 unused), usually with a
trailing space. Video names contain characters such as `#`, `(`, `)`, `&`, `!`; a name is
everything before the last run of whitespace, so no character is special and no line is a
comment.

Class order (the integer labels): the class names taken from the split file names
(`<class>_test_split<N>.txt`, all three splits together), sorted by Python string order.
For the official 51 classes this is alphabetical: 0 brush_hair, 1 cartwheel, 2 catch,
3 chew, 4 clap, 5 climb, 6 climb_stairs, ..., 49 walk, 50 wave. The class is the split
file's, never parsed from the video name.

Problems with entries (a missing or empty file, a file that cannot be read such as a symbolic
link loop, a missing class folder, a malformed line, a duplicate, a name with a folder part
or `..`, a class without a split file for the chosen split) follow `on_error` (see
`common`); each bad entry is skipped on its own, the rest of its folder is read. Videos in
a class folder that its split file does not list are recorded in `skipped` (never raised):
the official files list every video.
"""

from __future__ import annotations

import dataclasses
import os
import re

from keras_attnpool.data.datasets.common import (
    Entry, Reporter, absolute, build_samples, check_split_number, drop_duplicates, entry_problem,
    info_counts, read_lines, require_dir, safe_relpath)
from keras_attnpool.data.datasets.records import DatasetError, DatasetSpec

SPLITS_FOLDER = "testTrainMulti_7030_splits"
_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<n>[123])\.txt$")
_VALUES = {"1": "train", "2": "test", "0": "unused"}


def find_split_files(splits_dir: str) -> dict[str, dict[int, str]]:
    """`{class: {split number: path}}` from the file names in `splits_dir`."""
    found: dict[str, dict[int, str]] = {}
    for name in sorted(os.listdir(splits_dir)):
        match = _SPLIT_FILE.match(name)
        if match:
            found.setdefault(match["cls"], {})[int(match["n"])] = os.path.join(splits_dir, name)
    return found


def parse_split_file(path: str, cls: str, label: int,
                     reporter: Reporter) -> tuple[list[Entry], set[str]]:
    """Entries of one `<class>_test_splitN.txt`, and every name it mentions."""
    entries, mentioned = [], set()
    for number, text in read_lines(path):
        parts = text.rsplit(None, 1)
        if len(parts) == 2:
            mentioned.add(parts[0])
        if len(parts) != 2 or parts[1] not in _VALUES:
            reporter.error(text, "malformed line, expected '<video>.avi <0|1|2>'", path, number,
                           label=label)
            continue
        name, split = parts[0], _VALUES[parts[1]]
        rel = safe_relpath(name)
        if rel is None:
            reporter.error(name, "path escapes the data directory", path, number,
                           split=split, label=label)
            continue
        if "/" in rel:
            reporter.error(name, "names a sub-folder; expected a bare file name in "
                                 f"the '{cls}' folder", path, number, split=split, label=label)
            continue
        entries.append(Entry(f"{cls}/{rel}", label, split, path, number))
    return entries, mentioned


def _report_unlisted(videos_dir: str, cls: str, mentioned: set[str], split_file: str,
                     reporter: Reporter) -> None:
    """Records the entries of a class folder that its split file does not name.

    Every entry that is not a folder counts, also one that cannot be examined (a symbolic
    link loop). A folder that cannot be listed is left to `build_samples`, which gives each
    of its listed videos that reason.
    """
    folder = os.path.join(videos_dir, cls)
    try:
        with os.scandir(folder) as it:
            entries = sorted((e.name, entry_problem(e)) for e in it)
    except OSError:
        return
    for name, problem in entries:
        if name not in mentioned and problem != "a folder, not a file":
            reason = "not listed in the split file" + (f"; {problem}" if problem else "")
            reporter.ignore(os.path.join(folder, name), reason, split_file)


def read_hmdb51(data_dir: str, split: int = 1, *, on_error: str = "skip",
                splits_dir: str | None = None, videos_dir: str | None = None,
                keypoints_dir: str | None = None) -> DatasetSpec:
    """Reads HMDB51 split `split` (1, 2 or 3) into a `DatasetSpec` with train and test.

    Args:
        data_dir: folder holding the class folders and `testTrainMulti_7030_splits/`.
        split: which official split (1, 2 or 3).
        on_error: "skip" (record problems in `skipped`) or "fail" (raise `DatasetError`).
        splits_dir: the split files' folder, if not `<data_dir>/testTrainMulti_7030_splits`.
        videos_dir: the class folders' parent, if not `data_dir`.
        keypoints_dir: OpenPose output, `<keypoints_dir>/<class>/<video stem>/` holding
            `*_<frame:012d>_keypoints.json` or the authors' `image_<frame:05d>.json`.
    """
    split = check_split_number(split)
    reporter = Reporter(on_error)
    data_dir = require_dir(absolute(data_dir), "HMDB51 data directory",
                           "pass the folder holding the class folders")
    videos_dir = absolute(videos_dir or data_dir)
    splits_dir = absolute(splits_dir or os.path.join(data_dir, SPLITS_FOLDER))
    require_dir(splits_dir, "HMDB51 split folder",
                "unpack test_train_splits.rar into the data directory or pass splits_dir")
    split_files = find_split_files(splits_dir)
    if not split_files:
        raise DatasetError(f"{splits_dir}: no '<class>_test_split<1|2|3>.txt' files; "
                           "unpack test_train_splits.rar there")
    classes = sorted(split_files)
    entries: list[Entry] = []
    for label, cls in enumerate(classes):
        path = split_files[cls].get(split)
        if path is None:
            missing = os.path.join(splits_dir, f"{cls}_test_split{split}.txt")
            reporter.error(missing, f"split file missing; class '{cls}' has no samples",
                           hint="restore the file from test_train_splits.rar", listed=False)
            continue
        found, mentioned = parse_split_file(path, cls, label, reporter)
        entries.extend(found)
        _report_unlisted(videos_dir, cls, mentioned, path, reporter)
    kept = drop_duplicates(entries, reporter)
    used = [e for e in kept if e.split != "unused"]
    samples = build_samples(used, videos_dir, ("train", "test"), reporter, keypoints_dir)
    info = {"split": split, "unused": len(kept) - len(used), **info_counts(samples)}
    # A value-0 line names no sample of this split: its problems count toward no split.
    skipped = [dataclasses.replace(s, split=None, listed=False) if s.split == "unused" else s
               for s in reporter.skipped]
    return DatasetSpec("hmdb51", data_dir, classes, samples, skipped, info=info)
