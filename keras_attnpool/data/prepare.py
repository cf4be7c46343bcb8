"""`prepare`: decode every video (or image) of a dataset once into sharded TFRecords.

    manifest = prepare_dataset("hmdb51", "~/data/hmdb51", "~/data/hmdb51_prepared",
                               split=1, workers=8)

Reads the dataset with its reader (`datasets.get_reader`), converts and serialises every
sample in a process pool (`prepare_worker`: PyAV for videos, Pillow for images; JPEG frames,
short side resized, never upscaled) and writes the `record_format` SequenceExamples into
shards `<split>-<index>-of-<count>.tfrecord`, each with its frame index (`frame_index`),
plus `manifest.json` (see `build_manifest`).

Shards: each split's samples are sorted by `video_id` and cut into shards of `shard_size`
samples, so the plan (which sample goes into which shard) depends only on the dataset and
the settings. A sample whose file cannot be decoded is left out of its shard (the shard is
shorter) and listed in the manifest's `skipped`.

Resumable and idempotent (see `prepare_output` for the files): shards are written to a
temporary name and renamed when complete, so a reader's `*.tfrecord` glob never sees half a
shard. A rerun after a crash, Ctrl-C or SIGKILL writes only the missing shards; a rerun
after success writes nothing and says so; a rerun with other settings (or after the
dataset's files changed) into the same folder raises `OutputDirError` unless `overwrite`.

Bad files: with `on_error="skip"` (default) every file that fails is listed in `skipped`
with its reason, everything else is written, and when more than `max_failure_fraction` of
a split's samples fail, the manifest says `"ok": false` (the CLI exits 1) and a warning is
logged. With `on_error="fail"` the first bad file (in the deterministic shard order)
raises `PrepareError` naming it; finished shards are kept, so a rerun resumes.

Images (MPII, HICO, image_folder) are stored as 1-frame records, the same format as videos,
so one pipeline reads everything. Measured on this machine (2 shared cores,
`benchmarks/prepare_speed.py --images`, tf.data): reading 1-frame records and decoding their
480-short-side JPEG gave 341 images/s, reading 1280x720 source JPEGs and resizing them to
short side 480 gave 170 images/s (2.0x). Images are stored at short side 480 by default:
the paper's image recipe takes random 450 crops of a 480 resize.
Defaults therefore differ by kind: `short_side` 256 (videos) / 480 (images), `shard_size`
64 / 1024 samples.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import hashlib
import inspect
import logging
import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from keras_attnpool.data import frame_index
from keras_attnpool.data.datasets import VIDEO_DATASETS, DatasetSpec, Sample, get_reader
from keras_attnpool.data.prepare_output import (
    MANIFEST, OutputDir, OutputDirError, atomic_write, read_json, write_json)
from keras_attnpool.data.prepare_shards import (
    FORMAT, build_manifest, failure_summary, finish_shard, json_ready)
from keras_attnpool.data.prepare_worker import (
    ConvertSettings, Failed, Job, Serialized, convert_sample, stop_pool, unspool,
    worker_pool)
from keras_attnpool.data.record_format import shard_name

logger = logging.getLogger(__name__)

DEFAULT_SHORT_SIDE = {"video": 256, "image": 480}
DEFAULT_SHARD_SIZE = {"video": 64, "image": 1024}
DEFAULT_MAX_FAILURE_FRACTION = 0.05
ON_ERROR_VALUES = ("skip", "fail")
__all__ = ["OutputDirError", "PrepareError", "ShardPlan", "plan_shards", "prepare_dataset"]


class PrepareError(RuntimeError):
    """A file failed with `on_error="fail"`, or a worker process died; names the file."""


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


def _check_arguments(workers: int, on_error: str, jpeg_quality: int,
                     max_failure_fraction: float, **positive: int | None) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0 (0: no worker processes), "
                         f"got {workers!r}")
    if on_error not in ON_ERROR_VALUES:
        raise ValueError(f"on_error must be one of {ON_ERROR_VALUES}, got {on_error!r}")
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


def prepare_dataset(dataset: str, data_dir: str, output_dir: str, *, split: int = 1,
                    workers: int | None = None, on_error: str = "skip",
                    short_side: int | None = None, jpeg_quality: int = 90,
                    shard_size: int | None = None, frame_stride: int = 1,
                    max_frames: int | None = None,
                    max_failure_fraction: float = DEFAULT_MAX_FAILURE_FRACTION,
                    overwrite: bool = False, **reader_kwargs: Any) -> dict[str, Any]:
    """Decodes `dataset` once into sharded TFRecords under `output_dir`; see module doc.

    Args:
        dataset: a reader name (`datasets.DATASETS`): hmdb51, ucf101, mpii, hico,
            video_folder, image_folder.
        data_dir: the dataset's folder, as its reader expects.
        output_dir: where shards and `manifest.json` go (created).
        split: official split number (hmdb51, ucf101).
        workers: worker processes (default: all CPU cores; 0: convert in this process).
        on_error: "skip" (list bad files in `skipped`) or "fail" (raise on the first one).
        short_side: stored short side in pixels, never upscaled (default 256 for videos,
            480 for images).
        jpeg_quality: JPEG quality of the stored frames.
        shard_size: samples per shard (default 64 videos / 1024 images).
        frame_stride, max_frames: keep every k-th frame / at most n frames per video.
        max_failure_fraction: above this fraction of failed samples in a split the
            manifest says `"ok": false`.
        overwrite: replace whatever a prepare wrote in `output_dir` and start again.
        **reader_kwargs: reader options (`val_list`, `keypoints_dir`, `split_file`, ...).

    Returns:
        The manifest (as written to `output_dir/manifest.json`), plus a `this_run` entry
        (not on disk): shards written and reused, seconds, frames per second.

    Raises:
        ValueError: a bad argument. `datasets.DatasetError`: the dataset's files cannot be
        read (or, with on_error="fail", a bad annotation entry). `OutputDirError`:
        output_dir holds records made with other settings. `PrepareError`: a bad media
        file with on_error="fail", or a worker process died.
    """
    start = time.perf_counter()
    workers = (os.cpu_count() or 1) if workers is None else workers
    _check_arguments(workers, on_error, jpeg_quality, max_failure_fraction,
                     short_side=short_side, shard_size=shard_size, frame_stride=frame_stride,
                     max_frames=max_frames)
    kind = "video" if dataset.strip().lower() in VIDEO_DATASETS else "image"
    spec = read_spec(dataset, data_dir, split, on_error, reader_kwargs)
    settings = {"format": FORMAT, "dataset": spec.name, "data_dir": spec.data_dir,
                "split": split if "split" in spec.info else None,
                "short_side": short_side or DEFAULT_SHORT_SIDE[kind],
                "jpeg_quality": jpeg_quality, "shard_size": shard_size or DEFAULT_SHARD_SIZE[kind],
                "frame_stride": frame_stride, "max_frames": max_frames,
                "reader_options": dict(sorted(reader_kwargs.items()))}
    plans = plan_shards(spec, settings["shard_size"])
    run = {"workers": workers, "on_error": on_error,
           "max_failure_fraction": max_failure_fraction}
    out = OutputDir(output_dir)
    with out.locked():
        out.claim(json_ready({"format": FORMAT, "settings": settings,
                              "plan": plan_digest(plans), "counts": spec.counts()}), overwrite)
        out.remove_temp_files()
        try:
            return _write_missing(out, spec, plans, settings, run, kind, start)
        finally:
            # A run stopped by an error or Ctrl-C leaves no spooled records behind (the
            # pool has stopped by now; a SIGKILLed run's are removed by the next run).
            out.remove_temp_files()


def _write_missing(out: OutputDir, spec: DatasetSpec, plans: list[ShardPlan],
                   settings: dict[str, Any], run: dict[str, Any], kind: str,
                   start: float) -> dict[str, Any]:
    """Writes the shards not yet finished, then the manifest (if anything changed)."""
    done = {plan.name: out.finished(plan.name) for plan in plans}
    todo = [plan for plan in plans if done[plan.name] is None]
    for plan in plans:
        shard = out.file(plan.name)
        if done[plan.name] is not None and not os.path.isfile(frame_index.index_path(shard)):
            logger.info("%s: writing its frame index", plan.name)
            atomic_write(frame_index.index_path(shard),
                         lambda temp, shard=shard: frame_index.write_index(shard, path=temp))
    on_disk = read_json(out.file(MANIFEST))
    if not todo and isinstance(on_disk, dict) and on_disk.get("format") == FORMAT:
        logger.info("%s: nothing to do, all %d shards and the manifest are complete",
                    out.path, len(plans))
        on_disk["failures"], on_disk["ok"] = failure_summary(
            on_disk.get("failures", {}), run["max_failure_fraction"])
        return {**on_disk, "this_run": {"shards_written": 0, "shards_reused": len(plans),
                                        "nothing_to_do": True,
                                        "seconds": time.perf_counter() - start}}
    convert = ConvertSettings(settings["short_side"], settings["jpeg_quality"],
                              settings["frame_stride"], settings["max_frames"],
                              is_video=kind == "video",
                              spool_dir=out.path if run["workers"] > 0 else None)
    phase_start = time.perf_counter()
    for plan_record in _convert_shards(out, todo, convert, run, spec.multi_label):
        done[plan_record["name"]] = plan_record
    seconds = time.perf_counter() - phase_start
    frames = sum(sum(done[p.name]["num_frames"]) for p in todo)
    this_run = {"shards_written": len(todo), "shards_reused": len(plans) - len(todo),
                "nothing_to_do": False, "convert_seconds": seconds, "frames_written": frames,
                "frames_per_second": frames / seconds if seconds > 0 else 0.0}
    manifest = build_manifest(spec, json_ready(settings), plans, done,
                              {**run, **this_run})
    write_json(out.file(MANIFEST), manifest)
    if not manifest["ok"]:
        logger.warning("%s: too many files failed: %s", out.path, manifest["failures"])
    return {**manifest, "this_run": {**this_run, "seconds": time.perf_counter() - start}}


@contextlib.contextmanager
def _pool(workers: int) -> Iterator[Any]:
    """A worker pool (stopped at once on any error or Ctrl-C), or this process for 0."""
    if workers == 0:
        yield _InlineExecutor()
        return
    pool = worker_pool(workers)
    try:
        yield pool
    except BaseException:
        stop_pool(pool)
        raise
    pool.shutdown(wait=True)


class _InlineExecutor:
    """Runs `submit`ted calls at once in this process (workers=0)."""

    def submit(self, fn: Any, *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as e:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(e)
        return future


def _convert_shards(out: OutputDir, todo: list[ShardPlan], convert: ConvertSettings,
                    run: dict[str, Any], multi_label: bool) -> Iterator[dict[str, Any]]:
    """Converts the samples of `todo` in order; yields each shard's record once written.

    At most 4 samples per worker are in flight, so memory stays bounded; results are
    consumed in plan order, so shards are finished in order and "the first bad file"
    is well defined. A finished shard is written (records framed, written, synced) by a
    writer thread while the workers go on converting; one shard at most waits for it.
    """
    jobs = iter([(plan, s) for plan in todo for s in plan.samples])
    window: collections.deque = collections.deque()
    pending: dict[str, list] = {}
    writing: Future | None = None
    with _pool(run["workers"]) as pool, \
            concurrent.futures.ThreadPoolExecutor(1, "prepare-writer") as writer:
        def fill() -> None:
            for plan, s in jobs:
                job = Job(s.path, s.video_id, s.keypoints_path, s.keypoints,
                          label=-1 if multi_label else int(s.label),
                          labels=s.label if multi_label else None)
                window.append((plan, s, pool.submit(convert_sample, job, convert)))
                if len(window) >= 4 * max(run["workers"], 1):
                    return
        fill()
        while window:
            plan, sample, future = window.popleft()
            fill()
            result = _result(future, sample)
            if isinstance(result, Failed) and run["on_error"] == "fail":
                raise PrepareError(f"{result.path}: {result.reason}; fix or remove the file, "
                                   "or pass on_error='skip' (--on_error=skip) to skip it")
            pending.setdefault(plan.name, []).append((sample, result))
            if len(pending[plan.name]) == len(plan.samples):
                if writing is not None:
                    yield writing.result()
                writing = writer.submit(finish_shard, out, plan, pending.pop(plan.name))
        if writing is not None:
            yield writing.result()


def _result(future: Future, sample: Sample) -> Any:
    try:
        result = future.result()
        return unspool(result) if isinstance(result, Serialized) else result
    except BrokenProcessPool as e:
        raise PrepareError(f"{sample.path}: a worker process died while converting it "
                           "(killed, out of memory, or failed to start: a script that calls "
                           "prepare_dataset must do so under `if __name__ == '__main__':`, "
                           "as workers are spawned); rerun to resume, with fewer workers if "
                           "memory is short") from e
