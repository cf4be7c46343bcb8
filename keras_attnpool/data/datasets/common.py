"""Helpers shared by the dataset readers: error policy, split-file lines, safe paths.

Error policy (`on_error`): every problem a user's files can cause goes through `Reporter`.
With `on_error="skip"` (the default) it is appended to `DatasetSpec.skipped` with its reason;
with `on_error="fail"` it raises `DatasetError` whose one-line message names the file and
line and says what to do. Problems that make the whole dataset unreadable (no split folder,
a `.mat` without its fields) always raise.

Paths in annotation files are checked lexically: an absolute path or one whose `..` parts
climb out of the data directory is rejected. Symlinks inside the data directory are followed
on purpose (datasets often live on another disk). Folders are listed once (`FileIndex`) and
each entry is judged on its own, so one entry that cannot be examined (a symbolic link
loop) is skipped with its reason while the rest of its folder is read.

Accounting: every skipped entry that the dataset lists as a sample carries the split and
class it names where they could be read (`Skipped.split`, `.label`, `.listed`), so that a
split's listed entries are its samples plus its skipped entries (`DatasetSpec.listed`).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_attnpool.data.datasets.records import DatasetError, Sample, Skipped

ON_ERROR_VALUES = ("skip", "fail")
_HINT = "fix or remove the entry, or pass on_error='skip' to skip it and list it in `skipped`"


def check_on_error(on_error: str) -> str:
    """Returns `on_error` or raises ValueError naming the argument and the accepted values."""
    if on_error not in ON_ERROR_VALUES:
        raise ValueError(f"on_error must be one of {ON_ERROR_VALUES}, got {on_error!r}")
    return on_error


def location(source: str | None, line: int | None) -> str:
    """'file, line N' for messages."""
    if source is None:
        return "(folder listing)"
    return f"{source}, line {line}" if line is not None else str(source)


class Reporter:
    """Collects skipped entries, or raises `DatasetError` when `on_error="fail"`."""

    def __init__(self, on_error: str = "skip") -> None:
        self.on_error = check_on_error(on_error)
        self.skipped: list[Skipped] = []

    def error(self, path: str, reason: str, source: str | None = None,
              line: int | None = None, hint: str = _HINT, *, split: str | None = None,
              label: Any = None, listed: bool = True) -> None:
        """An entry that is wrong: skipped and recorded, or raised (`on_error="fail"`).

        `split` and `label` are what the entry names, where that could be read; `listed`
        False marks a problem that is not one listed sample (see `Skipped`).
        """
        reason = " ".join(reason.split())
        if self.on_error == "fail":
            raise DatasetError(f"{location(source, line)}: {reason}: {path!r}; {hint}")
        self.skipped.append(Skipped(path=path, reason=reason, line=line, source=source,
                                    split=split, label=_class_index(label), listed=listed))

    def ignore(self, path: str, reason: str, source: str | None = None,
               line: int | None = None) -> None:
        """A file that is fine but not part of any split: always recorded, never raised."""
        self.skipped.append(Skipped(path=path, reason=reason, line=line, source=source,
                                    listed=False))


def _class_index(label: Any) -> int | None:
    """A single-label class index as int; None for vectors (multi-label) and no label."""
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        return int(label)
    return None


def read_lines(path: str) -> Iterator[tuple[int, str]]:
    """Yields (1-based line number, stripped text) for the non-blank lines of a text file.

    Handles CRLF endings, trailing spaces and a UTF-8 byte-order mark. There are no comment
    lines: HMDB51 names may start with '#'. Bytes that are not UTF-8 are kept as
    surrogate escapes, as `os.fsdecode` does for file names.
    """
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline=None) as f:
            for number, text in enumerate(f, start=1):
                text = text.lstrip("\ufeff").strip() if number == 1 else text.strip()
                if text:
                    yield number, text
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror}); check the path") from e


def safe_relpath(rel: str) -> str | None:
    """Normalised relative path with '/' separators, or None if it escapes its root.

    Backslashes are read as separators (split files written on Windows).
    """
    rel = rel.replace("\\", "/")
    if not rel or rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        return None
    norm = posixpath.normpath(rel)
    if norm == ".." or norm.startswith("../") or norm == ".":
        return None
    return norm


class FileIndex:
    """Answers "is this a readable, non-empty file?" with one directory listing per folder.

    Each entry of a listing is judged on its own: an entry that cannot be examined (a
    symbolic link loop, a dangling link) gets its own reason and never hides the other
    files of its folder; a folder that cannot be listed gives every file in it that reason.
    """

    def __init__(self) -> None:
        self._listings: dict[str, dict[str, str | None] | str] = {}

    def _listing(self, folder: str) -> dict[str, str | None] | str:
        """{name: None for a file, else why it is not one}, or why `folder` cannot be listed."""
        if folder not in self._listings:
            try:
                with os.scandir(folder) as it:
                    listing: dict[str, str | None] | str = {e.name: entry_problem(e)
                                                            for e in it}
            except FileNotFoundError:
                listing = f"folder {folder} not found"
            except NotADirectoryError:
                listing = f"{folder} is not a folder"
            except OSError as e:
                listing = f"cannot list folder {folder} ({e.strerror})"
            self._listings[folder] = listing
        return self._listings[folder]

    def problem(self, path: str) -> str | None:
        """None for a non-empty file, else why not ("file not found", "empty file", ...)."""
        folder, name = os.path.split(path)
        listing = self._listing(folder)
        if isinstance(listing, str):
            return listing
        if name not in listing:
            return f"file not found in {folder}"
        if listing[name] is not None:
            return listing[name]
        try:
            size = os.path.getsize(path)
        except OSError as e:
            return f"cannot read ({e.strerror})"
        return "empty file (0 bytes)" if size == 0 else None


def entry_problem(entry: os.DirEntry) -> str | None:
    """None when a listed folder entry is a file (symlinks followed), else why it is not."""
    try:
        if entry.is_file():
            return None
        if entry.is_dir():
            return "a folder, not a file"
        if entry.is_symlink():
            return "broken symbolic link (its target does not exist)"
        return "not a regular file"
    except OSError as e:  # ELOOP for a link that points at itself, EACCES, ...
        return f"cannot read ({e.strerror})"


def walk_files(top: str, reporter: Reporter, keep_dir: Callable[[str], bool],
               ) -> Iterator[str]:
    """Paths of the non-hidden entries that are not folders under `top`, in sorted order.

    Symbolic links to folders are followed (datasets often live on another disk); a folder
    reached twice (a link loop, or two links to one folder) is read once and reported. A
    folder that cannot be listed is reported, never silently left out. `keep_dir(path)`
    False leaves a sub-folder out (its caller reports why).
    """
    seen: set[tuple[int, int]] = set()

    def unlistable(error: OSError) -> None:
        reporter.error(error.filename or top, f"cannot list folder ({error.strerror})",
                       hint="make it readable, or pass on_error='skip' to skip it",
                       listed=False)

    for folder, dirs, names in os.walk(top, onerror=unlistable, followlinks=True):
        try:
            info = os.stat(folder)
        except OSError as e:
            unlistable(e)
            dirs[:] = []
            continue
        if (info.st_dev, info.st_ino) in seen:
            reporter.ignore(folder, "folder reached a second time through a symbolic link "
                                    "(a link loop, or two links to one folder); read once")
            dirs[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and keep_dir(os.path.join(folder, d)))
        for name in sorted(n for n in names if not n.startswith(".")):
            yield os.path.join(folder, name)


@dataclass(frozen=True)
class Entry:
    """One candidate sample parsed from an annotation file, before checks."""

    rel: str
    label: Any
    split: str
    source: str | None
    line: int | None


def _same(a: Entry, b: Entry) -> bool:
    if isinstance(a.label, np.ndarray) or isinstance(b.label, np.ndarray):
        return a.split == b.split and np.array_equal(a.label, b.label, equal_nan=True)
    return a.split == b.split and a.label == b.label


def drop_duplicates(entries: Iterable[Entry], reporter: Reporter) -> list[Entry]:
    """Keeps one entry per path; duplicates that disagree are all rejected.

    An exact repeat (same label and split) keeps the first and reports the rest. Entries
    that give one file two labels or two splits are all reported: either could be wrong.
    """
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(entry.rel, []).append(entry)
    kept = []
    for rel, group in groups.items():
        first = group[0]
        if all(_same(first, other) for other in group[1:]):
            kept.append(first)
            for dup in group[1:]:
                first_at = location(first.source, first.line)
                reporter.error(rel, f"duplicate entry (first at {first_at})", dup.source,
                               dup.line, split=dup.split, label=dup.label)
            continue
        places = "; ".join(f"{location(e.source, e.line)} says {e.split}"
                           + ("" if isinstance(e.label, np.ndarray) else f" label {e.label}")
                           for e in group)
        for entry in group:
            reporter.error(rel, f"conflicting entries for one file ({places})",
                           entry.source, entry.line, split=entry.split, label=entry.label)
    return kept


def stratified_split(groups: dict[Any, list[str]], fraction: float, seed: int,
                     ) -> set[str]:
    """Seeded per-class split: returns the ids that go to the held-out split.

    For each class (in sorted order of its key) the ids are sorted, permuted with
    `numpy.random.default_rng(seed)` and the first round(fraction * n) are held out (Python's
    round: halves go to the even number), but at least one and at most n - 1 when the class
    has two or more ids (none when it has one, and none when fraction is 0).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the held-out fraction must be in [0, 1), got {fraction!r}")
    rng = np.random.default_rng(seed)
    held_out: set[str] = set()
    for key in sorted(groups):
        ids = sorted(groups[key])
        order = rng.permutation(len(ids))
        n = len(ids)
        count = int(round(fraction * n))
        if n >= 2 and fraction > 0:
            count = min(max(count, 1), n - 1)
        elif n < 2:
            count = 0
        held_out.update(ids[i] for i in order[:count])
    return held_out


def keypoints_path_for(keypoints_dir: str | None, rel: str, video: bool) -> str | None:
    """Where OpenPose output for media file `rel` lives, if it exists.

    Images: `<keypoints_dir>/<rel without extension>_keypoints.json` (OpenPose's own name);
    where that file is absent, the folder `<keypoints_dir>/<rel without extension>/` (the
    authors' HICO release: `image_00001.json` inside), which `read_openpose_json` reads.
    Videos: the folder `<keypoints_dir>/<rel without extension>/` holding one file per frame
    (`<stem>_<frame:012d>_keypoints.json` from `--write_json`, or the authors'
    `image_<frame:05d>.json`; see `openpose.read_openpose_video`).
    """
    if keypoints_dir is None:
        return None
    stem = os.path.join(absolute(keypoints_dir), *posixpath.splitext(rel)[0].split("/"))
    if not video and os.path.isfile(stem + "_keypoints.json"):
        return stem + "_keypoints.json"
    return stem if os.path.isdir(stem) else None


def absolute(path: str) -> str:
    """`path` with `~` expanded, made absolute (symlinks kept)."""
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def require_dir(path: str, what: str, hint: str) -> str:
    """Returns `path` if it is a directory, else raises DatasetError naming it."""
    if not os.path.isdir(path):
        raise DatasetError(f"{path}: {what} not found; {hint}")
    return path


def check_split_number(split: int, accepted: tuple[int, ...] = (1, 2, 3)) -> int:
    """Returns `split` or raises ValueError naming the `split` argument."""
    if isinstance(split, bool) or split not in accepted:
        raise ValueError(f"split must be one of {accepted}, got {split!r}")
    return int(split)


def info_counts(samples: dict[str, list[Any]]) -> dict[str, Any]:
    """Number of samples with a keypoints path, for `DatasetSpec.info`."""
    return {"with_keypoints": sum(1 for items in samples.values() for s in items
                                  if s.keypoints_path is not None)}


def build_samples(entries: Iterable[Entry], media_root: str, splits: Iterable[str],
                  reporter: Reporter, keypoints_dir: str | None = None,
                  video: bool = True) -> dict[str, list[Sample]]:
    """Turns checked entries into `Sample`s, reporting files that are missing or empty.

    `splits` fixes the keys (and their order) of the result, so that an empty split is
    still present. Entries keep their order.
    """
    index = FileIndex()
    samples: dict[str, list[Sample]] = {name: [] for name in splits}
    for entry in entries:
        path = os.path.join(media_root, *entry.rel.split("/"))
        problem = index.problem(path)
        if problem is not None:
            reporter.error(path, problem, entry.source, entry.line,
                           hint="check that the download is complete, or pass "
                                "on_error='skip' to skip it and list it in `skipped`",
                           split=entry.split, label=entry.label)
            continue
        samples[entry.split].append(Sample(
            path=path, label=entry.label, video_id=entry.rel, split=entry.split,
            keypoints_path=keypoints_path_for(keypoints_dir, entry.rel, video)))
    return samples
