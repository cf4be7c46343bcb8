"""A person's own data as class folders, shared by `video_folder` and `image_folder`.

Layout:

    <root>/<class>/<file>            (files may also sit in sub-folders of a class folder)
    <split_file> (optional)          lines `<class>/<file> <train|val|test>`

Classes: the sorted names of the non-hidden folders of `root` (Python string order), or the
`classes` argument, whose order is then the label order. Hidden files and folders (names
starting with ".") are ignored; any other file whose extension is not accepted, a file
directly in `root` and the files of a folder that is not a class are listed in `skipped`
(never raised).

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

import os

from keras_attnpool.data.datasets.common import (
    Entry, Reporter, absolute, build_samples, drop_duplicates, info_counts, read_lines,
    require_dir, safe_relpath, stratified_split)
from keras_attnpool.data.datasets.records import DatasetError, DatasetSpec

SPLIT_NAMES = ("train", "val", "test")


def list_class_files(root: str, classes: list[str] | None, extensions: tuple[str, ...],
                     reporter: Reporter) -> tuple[list[str], dict[str, list[str]]]:
    """(classes, {class: [relative paths of accepted files]}) from walking `root`."""
    folders = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if name.startswith("."):
            continue
        if os.path.isdir(path):
            folders.append(name)
        else:
            reporter.ignore(path, "not inside a class folder")
    chosen = list(classes) if classes is not None else folders
    if len(set(chosen)) != len(chosen) or not chosen:
        raise ValueError(f"classes must be distinct and non-empty, got {chosen!r} for {root}")
    for name in folders:
        if name not in chosen:
            reporter.ignore(os.path.join(root, name), "folder is not one of the classes")
    files: dict[str, list[str]] = {}
    for cls in chosen:
        files[cls] = []
        for folder, dirs, names in os.walk(os.path.join(root, cls)):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(n for n in names if not n.startswith(".")):
                rel = os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
                if os.path.splitext(name)[1].lower() in extensions:
                    files[cls].append(rel)
                else:
                    reporter.ignore(os.path.join(folder, name),
                                    f"extension not accepted (accepted: {', '.join(extensions)})")
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
        rel = safe_relpath(parts[0])
        if rel is not None:
            mentioned.add(rel)
        if rel is None:
            reporter.error(parts[0], "path escapes the data directory", path, number)
        elif "/" not in rel:
            reporter.error(parts[0], "malformed path, expected '<class>/<file>'", path, number)
        elif rel.split("/")[0] not in label_of:
            reporter.error(parts[0], f"unknown class '{rel.split('/')[0]}'", path, number)
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
