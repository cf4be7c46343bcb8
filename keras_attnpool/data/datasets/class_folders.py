"""A person's own data as class folders, shared by `video_folder` and `image_folder`.

Layout:

    <root>/<class>/<file>            (files may also sit in sub-folders of a class folder)
    <split_file> (optional)          lines `<class>/<file> <train|val|test>`

Classes: the sorted names of the non-hidden folders of `root` (Python string order), or the
`classes` argument, whose order is then the label order (each must be a folder of `root`).
A folder that holds prepared records (`.prepare/` or a prepare's `manifest.json`, also one
level or more below a top folder that holds nothing else) is never a class and never read,
so records kept next to the class folders cannot shift the labels. Hidden files and folders
(names starting with ".") are ignored; any other file whose extension is not accepted, a
file directly in `root` and the files of a folder that is not a class are listed in
`skipped` (never raised). Symbolic links are followed; an entry that cannot be read (a link
loop) is skipped with its reason on its own, and a folder that cannot be listed follows
`on_error`.

With a split file, every line names one file; a missing or empty file, an unknown class,
a malformed line, a duplicate and a path with `..` follow `on_error`; class-folder
files it does not list are recorded in `skipped`. A file name may contain
spaces: it is everything before the last run of whitespace.

Without a split file: a seeded stratified split. Per class, the files (sorted) are permuted
with `numpy.random.default_rng(seed)` and round(test_fraction * n) go to "test", at least
one and at most n - 1 when the class has two or more files (a class of one file is all
"train"). The default 0.3 is HMDB51's 70/30. Clips cut from one long video should stay on
one side: use a split file for that.
"""

from __future__ import annotations

import json
import os

from keras_attnpool.data.datasets.common import (
    Entry, Reporter, absolute, build_samples, drop_duplicates, info_counts, read_lines,
    require_dir, safe_relpath, stratified_split, walk_files)
from keras_attnpool.data.datasets.records import DatasetError, DatasetSpec

SPLIT_NAMES = ("train", "val", "test")
# What `prepare` leaves in a folder it writes into (prepare.output: STATE_DIR, FORMAT);
# spelled out here because the readers come before prepare in the import graph.
PREPARE_STATE_DIR = ".prepare"
PREPARED_FORMAT_PREFIX = "keras_attnpool.prepared/"
_RECORDS_REASON = "holds prepared records (.prepare/, manifest.json), not media: never a class"


def holds_prepared_records(folder: str) -> bool:
    """True for a folder that a prepare wrote into: it has `.prepare/` (made first, before
    any record) or a prepare's `manifest.json`."""
    if os.path.isdir(os.path.join(folder, PREPARE_STATE_DIR)):
        return True
    manifest = os.path.join(folder, "manifest.json")
    if not os.path.isfile(manifest):
        return False
    try:
        with open(manifest, encoding="utf-8") as f:
            found = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(found, dict) and str(found.get("format", "")).startswith(
        PREPARED_FORMAT_PREFIX)


def _class_files(root: str, cls: str, extensions: tuple[str, ...], reporter: Reporter,
                 ) -> tuple[list[str], list[tuple[str, str]], list[str]]:
    """(accepted relative paths, [(path, why not accepted)], folders of prepared records
    left out) under `<root>/<cls>`."""
    files, ignored, records = [], [], []

    def keep_dir(path: str) -> bool:
        if holds_prepared_records(path):
            records.append(path)
            return False
        return True

    top = os.path.join(root, cls)
    if not keep_dir(top):
        return files, ignored, records
    for path in walk_files(top, reporter, keep_dir):
        if os.path.splitext(path)[1].lower() in extensions:
            files.append(os.path.relpath(path, root).replace(os.sep, "/"))
        else:
            ignored.append((path, f"extension not accepted (accepted: {', '.join(extensions)})"))
    return files, ignored, records


def list_class_files(root: str, classes: list[str] | None, extensions: tuple[str, ...],
                     reporter: Reporter) -> tuple[list[str], dict[str, list[str]]]:
    """(classes, {class: [relative paths of accepted files]}) from walking `root`.

    A folder that holds prepared records (see `holds_prepared_records`), at the top or
    inside a class folder, is never read: a records folder kept among the class folders
    would otherwise become a class and shift every label after it.
    """
    folders = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if name.startswith("."):
            continue
        if os.path.isdir(path):
            folders.append(name)
        else:
            reporter.ignore(path, "not inside a class folder")
    if classes is not None:
        if len(set(classes)) != len(classes) or not classes:
            raise ValueError(f"classes must be distinct and non-empty, got {classes!r} "
                             f"for {root}")
        for name in classes:
            if name not in folders:
                raise DatasetError(f"{os.path.join(root, name)}: no folder for class "
                                   f"'{name}' given in classes; create it or remove the "
                                   "class from classes")
        for name in folders:
            if name not in classes:
                reporter.ignore(os.path.join(root, name), "folder is not one of the classes")
    chosen, files, records_only = [], {}, False
    for cls in (classes if classes is not None else folders):
        found, ignored, records = _class_files(root, cls, extensions, reporter)
        for path in records:
            reporter.ignore(path, _RECORDS_REASON)
        if records and not found:  # a records folder, not a class
            records_only = True
            if classes is not None:
                raise DatasetError(f"{os.path.join(root, cls)}: class '{cls}' given in "
                                   "classes holds prepared records, not media; remove it "
                                   "from classes")
            continue
        for path, reason in ignored:
            reporter.ignore(path, reason)
        chosen.append(cls)
        files[cls] = found
    if not chosen:
        only = " (only folders of prepared records)" if records_only else ""
        raise DatasetError(f"{root}: no class folders{only}; pass the folder that holds one "
                           "folder per class")
    return chosen, files


def parse_split_file(path: str, classes: list[str], reporter: Reporter,
                     ) -> tuple[list[Entry], set[str]]:
    """Entries of a `<class>/<file> <train|val|test>` split file, and every path it names."""
    label_of = {name: i for i, name in enumerate(classes)}
    entries, mentioned = [], set()
    for number, text in read_lines(path):
        parts = text.rsplit(None, 1)
        if len(parts) != 2 or parts[1] not in SPLIT_NAMES:
            reporter.error(text, "malformed line, expected '<class>/<file> <train|val|test>'",
                           path, number)
            continue
        rel, split = safe_relpath(parts[0]), parts[1]
        if rel is not None:
            mentioned.add(rel)
        if rel is None:
            reporter.error(parts[0], "path escapes the data directory", path, number,
                           split=split)
        elif "/" not in rel:
            reporter.error(parts[0], "malformed path, expected '<class>/<file>'", path, number,
                           split=split)
        elif rel.split("/")[0] not in label_of:
            reporter.error(parts[0], f"unknown class '{rel.split('/')[0]}' (no such class "
                                     "folder)", path, number, split=split)
        else:
            entries.append(Entry(rel, label_of[rel.split("/")[0]], parts[1], path, number))
    return entries, mentioned


def read_class_folders(name: str, root: str, extensions: tuple[str, ...], video: bool, *,
                       split_file: str | None, test_fraction: float, seed: int,
                       classes: list[str] | None, on_error: str,
                       keypoints_dir: str | None) -> DatasetSpec:
    """Reads `<root>/<class>/<file>` into train / test (/ val) samples; see the module doc."""
    reporter = Reporter(on_error)
    root = require_dir(absolute(root), "data directory",
                       "pass the folder that holds one folder per class")
    classes, files = list_class_files(root, classes, extensions, reporter)
    if split_file is not None:
        split_file = absolute(split_file)
        if not os.path.isfile(split_file):
            raise DatasetError(f"{split_file}: split file not found; check the path")
        entries, mentioned = parse_split_file(split_file, classes, reporter)
        for cls in classes:
            for rel in files[cls]:
                if rel not in mentioned:
                    reporter.ignore(os.path.join(root, rel), "not listed in the split file",
                                    split_file)
        entries = drop_duplicates(entries, reporter)
    else:
        held_out = stratified_split(files, test_fraction, seed)
        entries = [Entry(rel, label, "test" if rel in held_out else "train", None, None)
                   for label, cls in enumerate(classes) for rel in files[cls]]
    splits = SPLIT_NAMES if any(e.split == "val" for e in entries) else ("train", "test")
    samples = build_samples(entries, root, splits, reporter, keypoints_dir, video=video)
    info = {"split_file": split_file, "seed": None if split_file else seed,
            "test_fraction": None if split_file else test_fraction, **info_counts(samples)}
    return DatasetSpec(name, root, classes, samples, reporter.skipped, info=info)
