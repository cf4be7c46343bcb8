"""The records every dataset reader returns: `Sample`, `Skipped` and `DatasetSpec`.

A reader parses a dataset's official annotation files and returns one `DatasetSpec`:

- `classes`: the class names; a sample's integer label indexes this list.
- `samples`: `{split: [Sample, ...]}` with split names such as "train", "val", "test".
- `skipped`: every file or annotation entry that was not turned into a sample, with the
  reason and, where it came from a text file, the file and 1-based line number; entries
  the dataset lists as samples also carry the split and class they name, so that every
  listed entry is accounted for: `listed()[split]` = samples + skipped entries there.
- `multi_label`: True for HICO, whose labels are vectors (see `Sample`).
- `info`: the settings the reader used (split number, seed, fraction, ...).

These are plain Python + NumPy objects so that the later stages (prepare, pipelines) can
pass them to worker processes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class DatasetError(ValueError):
    """A dataset's files cannot be read as documented; the message names file and line."""


@dataclass(frozen=True, eq=False)
class Sample:
    """One video or image of a dataset.

    Attributes:
        path: absolute path of the video or image file (symlinks are not resolved).
        label: class index into `DatasetSpec.classes`, or -1 where the dataset has no public
            label (MPII test images). For multi-label datasets (HICO) a read-only float32
            vector of length `len(classes)` with the official values kept: 1 positive,
            -1 negative, 0 ambiguous, NaN unknown.
        video_id: stable id of the sample, unique within the dataset: the file's path
            relative to the dataset's media root with "/" separators (for example
            "brush_hair/x.avi", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
            "015601864.jpg").
        split: the split this sample belongs to ("train", "val" or "test").
        keypoints_path: OpenPose output for this sample when the reader was given a
            keypoints directory and found it (a JSON file for an image, a folder of
            per-frame JSON files for a video); see `keras_attnpool.data.datasets.openpose`.
        keypoints: in-memory joints (MPII): float32 array (num_people, 16, 3) holding
            x, y, valid in the MPII joint order.
    """

    path: str
    label: int | np.ndarray
    video_id: str
    split: str
    keypoints_path: str | None = None
    keypoints: np.ndarray | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sample):
            return NotImplemented
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
                    return False
                if a.shape != b.shape or not np.array_equal(a, b, equal_nan=True):
                    return False
            elif a != b:
                return False
        return True

    def __hash__(self) -> int:
        return hash((self.path, self.video_id, self.split))


@dataclass(frozen=True)
class Skipped:
    """A file or annotation entry that did not become a sample, and why.

    Attributes:
        path: the file (or, for `.mat` entries, the image name) concerned.
        reason: one line saying what is wrong.
        line: 1-based line number in `source` (for `.mat` files: the 1-based MATLAB index of
            the entry), or None.
        source: the annotation file that named `path`, or None when found by listing a folder.
        split: the split the entry names, where it could be read.
        label: the class index the entry names, where it could be read (single-label).
        listed: True for an entry that the dataset lists as a sample (a line of a split
            file, an entry of a `.mat` file or, without a split file, a media file found in
            a class folder): it counts toward its split's `listed` and failures. False for
            a file that no split takes ("not listed in the split file", "extension not
            accepted") and for a problem of the dataset as a whole (a missing split file).
    """

    path: str
    reason: str
    line: int | None = None
    source: str | None = None
    split: str | None = None
    label: int | None = None
    listed: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-ready dict (the manifest's `skipped` entries)."""
        out: dict[str, Any] = {"path": self.path, "reason": self.reason}
        if self.source is not None:
            out["source"] = self.source
        if self.line is not None:
            out["line"] = self.line
        if self.split is not None:
            out["split"] = self.split
        if self.label is not None:
            out["label"] = self.label
        out["listed"] = self.listed
        return out


@dataclass
class DatasetSpec:
    """What a reader found: classes, samples per split, skipped entries, settings."""

    name: str
    data_dir: str
    classes: list[str]
    samples: dict[str, list[Sample]]
    skipped: list[Skipped] = field(default_factory=list)
    multi_label: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Number of samples per split."""
        return {split: len(items) for split, items in self.samples.items()}

    def listed(self) -> dict[str, int]:
        """Entries listed per split: the samples plus the listed entries skipped there.

        Splits that only skipped entries name (a "val" line whose file is missing) are
        included after the samples' splits.
        """
        out = self.counts()
        for entry in self.skipped:
            if entry.listed and entry.split is not None:
                out[entry.split] = out.get(entry.split, 0) + 1
        return out

    def unassigned(self) -> list[Skipped]:
        """Listed entries skipped before their split could be read (malformed lines)."""
        return [s for s in self.skipped if s.listed and s.split is None]

    def class_counts(self, split: str) -> dict[str, int]:
        """Samples per class in `split` (multi-label: number of positives, value 1)."""
        counts = dict.fromkeys(self.classes, 0)
        if self.multi_label:
            for name, n in zip(self.classes, (self.labels(split) == 1).sum(axis=0)):
                counts[name] = int(n)
            return counts
        for sample in self.samples[split]:
            if sample.label >= 0:
                counts[self.classes[sample.label]] += 1
        return counts

    def labels(self, split: str) -> np.ndarray:
        """Labels of `split`: int64 (N,), or float32 (N, num_classes) when multi-label."""
        items = self.samples[split]
        if self.multi_label:
            if not items:
                return np.zeros((0, len(self.classes)), np.float32)
            return np.stack([s.label for s in items]).astype(np.float32)
        return np.array([s.label for s in items], dtype=np.int64)

    def summary(self) -> dict[str, Any]:
        """The JSON-ready part of a prepare manifest: splits, classes, skipped, settings."""
        return {
            "dataset": self.name,
            "splits": self.counts(),
            "class_counts": {split: self.class_counts(split) for split in self.samples},
            "classes": list(self.classes),
            "skipped": [s.to_dict() for s in self.skipped],
            "settings": dict(self.info),
        }
