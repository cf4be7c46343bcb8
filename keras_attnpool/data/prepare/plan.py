"""What a `prepare` run will write: the settings that decide the records, and the shards.

Shards: each split's samples are sorted by `video_id` and cut into shards of `shard_size`
samples, so the plan (which sample goes into which shard) depends only on the dataset and
the settings (`plan_shards`); `plan_digest` hashes it, so that a rerun can tell whether the
dataset's samples changed.

Images (MPII, HICO, image_folder) are stored as 1-frame records, the same format as videos,
so one pipeline reads everything. They are stored at short side 480 by default, because
the paper's image recipe takes random 450 crops of a 480 resize, and reading a stored
480-side JPEG costs less than resizing the source image at every epoch
(`benchmarks/prepare_speed.py --images` measures both). Defaults therefore differ by kind:
`short_side` 256 (videos) / 480 (images), `shard_size` 64 / 1024 samples.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
from dataclasses import dataclass
from typing import Any

from keras_attnpool.data import video
from keras_attnpool.data.datasets import (
    CLASS_FOLDER_DATASETS, DatasetSpec, Sample, get_reader)
from keras_attnpool.data.datasets.common import check_on_error
from keras_attnpool.data.prepare.output import FORMAT
from keras_attnpool.data.records.tfrecord import shard_name

DEFAULT_SHORT_SIDE = {"video": video.DEFAULT_SHORT_SIDE, "image": 480}
DEFAULT_SHARD_SIZE = {"video": 64, "image": 1024}
DEFAULT_MAX_FAILURE_FRACTION = 0.05


@dataclass(frozen=True)
class ShardPlan:
    """The samples (sorted by video_id) that go into one shard."""

    split: str
    index: int
    count: int
    samples: tuple[Sample, ...]

    @property
    def name(self) -> str:
        return shard_name(self.split, self.index, self.count)


def plan_shards(spec: DatasetSpec, shard_size: int) -> list[ShardPlan]:
    """Every split's samples sorted by video_id, cut into shards of `shard_size` samples."""
    plans = []
    for split, samples in spec.samples.items():
        ordered = sorted(samples, key=lambda s: s.video_id)
        count = math.ceil(len(ordered) / shard_size)
        plans.extend(ShardPlan(split, i, count,
                               tuple(ordered[i * shard_size:(i + 1) * shard_size]))
                     for i in range(count))
    return plans


def plan_digest(plans: list[ShardPlan]) -> str:
    """A hash of what each shard holds: ids, labels, keypoints (changes mean a new plan)."""
    digest = hashlib.sha256()
    for plan in plans:
        digest.update(f"{plan.name}\n".encode())
        for s in plan.samples:
            label = s.label.tobytes() if hasattr(s.label, "tobytes") else str(s.label).encode()
            keypoints = b"" if s.keypoints is None else s.keypoints.tobytes()
            digest.update(s.video_id.encode("utf-8", "surrogateescape") + b"\0" + label
                          + b"\0" + str(s.keypoints_path).encode("utf-8", "surrogateescape")
                          + b"\0" + keypoints + b"\n")
    return digest.hexdigest()


def check_arguments(workers: int, on_error: str, jpeg_quality: int,
                    max_failure_fraction: float, **positive: int | None) -> None:
    """Raises ValueError naming the first bad argument of `prepare_dataset`."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0 (0: no worker processes), "
                         f"got {workers!r}")
    check_on_error(on_error)
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality!r}")
    if not 0.0 <= max_failure_fraction <= 1.0:
        raise ValueError(f"max_failure_fraction must be in [0, 1], got {max_failure_fraction!r}")
    for name, value in positive.items():
        if value is not None and (isinstance(value, bool) or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def read_spec(dataset: str, data_dir: str, split: int, on_error: str,
              reader_kwargs: dict[str, Any]) -> DatasetSpec:
    """Runs the dataset's reader; `split` goes only to readers that take one."""
    reader = get_reader(dataset)
    kwargs = dict(reader_kwargs, on_error=on_error)
    if "split" in inspect.signature(reader).parameters:
        kwargs["split"] = split
    elif split != 1:
        raise ValueError(f"split={split!r}: dataset {dataset!r} has no numbered official "
                         "splits (only hmdb51 and ucf101 do); leave split at 1")
    return reader(data_dir, **kwargs)


def record_settings(spec: DatasetSpec, kind: str, split: int, short_side: int | None,
                    jpeg_quality: int, shard_size: int | None, frame_stride: int,
                    max_frames: int | None, reader_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Everything that decides the records' contents (the manifest's `settings`), with the
    defaults of `kind` ("video" or "image") filled in."""
    return {"format": FORMAT, "dataset": spec.name, "data_dir": spec.data_dir,
            "split": split if "split" in spec.info else None,
            "short_side": short_side or DEFAULT_SHORT_SIDE[kind],
            "jpeg_quality": jpeg_quality,
            "shard_size": shard_size or DEFAULT_SHARD_SIZE[kind],
            "frame_stride": frame_stride, "max_frames": max_frames,
            "reader_options": dict(sorted(reader_kwargs.items()))}


def default_records_dir(dataset: str, data_dir: str, split: int) -> str:
    """Where `training/fit.py` prepares records when no records folder is given.

    `DATA_DIR/prepared/splitN` for the released datasets, whose classes come from their
    annotation files. For video_folder and image_folder, whose classes are the folders of
    DATA_DIR, a sibling `DATA_DIR.prepared/splitN`, so that the records never sit among the
    class folders.
    """
    data_dir = os.path.abspath(os.path.expanduser(data_dir))
    if dataset in CLASS_FOLDER_DATASETS:
        return os.path.join(data_dir + ".prepared", f"split{split}")
    return os.path.join(data_dir, "prepared", f"split{split}")


def check_output_dir(spec: DatasetSpec, output_dir: str) -> None:
    """Raises ValueError for an output_dir that is a class-folder dataset's root or lies in
    one of its class folders: the records would be read as media there on the next run.

    A records folder elsewhere below the root (fit.py's old default `DATA_DIR/prepared/`)
    is allowed: the readers never take a folder of prepared records as a class.
    """
    if spec.name not in CLASS_FOLDER_DATASETS:
        return
    out = os.path.realpath(os.path.expanduser(output_dir))
    root = os.path.realpath(spec.data_dir)
    hint = (f"choose a folder outside the class folders, such as "
            f"{default_records_dir(spec.name, spec.data_dir, 1)}")
    if out == root:
        raise ValueError(f"output_dir={output_dir}: is the data directory; {hint}")
    for name in spec.classes:
        folder = os.path.join(root, name)
        if out == folder or out.startswith(folder + os.sep):
            raise ValueError(f"output_dir={output_dir}: lies in the class folder {folder}, "
                             f"whose files are read as class '{name}'; {hint}")
