"""`prepare`: decode every video (or image) of a dataset once into sharded TFRecords.

    manifest = prepare_dataset("hmdb51", "~/data/hmdb51", "~/data/hmdb51_prepared",
                               split=1, workers=8)

Reads the dataset with its reader (`datasets.get_reader`), converts and serialises every
sample in a process pool (`prepare.worker`: PyAV for videos, Pillow for images; JPEG frames,
short side resized, never upscaled) and writes the `records.schema` SequenceExamples into
shards `<split>-<index>-of-<count>.tfrecord` (`prepare.plan` decides which sample goes
where), each with its frame index (`records.frame_index`), plus `manifest.json` (see
`prepare.shards.build_manifest`). A sample whose file cannot be decoded is left out of its
shard (the shard is shorter) and listed in the manifest's `skipped`.

Resumable and idempotent (see `prepare.output` for the files): shards are written to a
temporary name and renamed when complete, so a reader's `*.tfrecord` glob never sees half a
shard. A rerun after a crash, Ctrl-C or SIGKILL writes only the missing shards; a rerun
after success writes nothing and says so (only the manifest, when what the reader skipped
changed without the samples, or it was written before the manifest's `accounting`); a
rerun with other settings (or after the dataset's files changed) into the same folder
raises `OutputDirError` unless `overwrite`.

Bad files: with `on_error="skip"` (default) every file that fails is listed in `skipped`
with its reason, everything else is written, and every sample the dataset's files list is
accounted for (`prepare.accounting`: records + skipped + failed = listed, per split and
class). When more than `max_failure_fraction` of a split's listed samples are not written
(skipped when read or failed to decode, alike), or a class is lost (none of its listed
samples of a split written), the manifest says `"ok": false` (the CLI exits 1) and a
warning is logged. With `on_error="fail"` the first bad file (in the deterministic shard order)
raises `PrepareError` naming it; finished shards are kept, so a rerun resumes.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from keras_attnpool.data.datasets import VIDEO_DATASETS, DatasetSpec, Sample
from keras_attnpool.data.prepare.output import (
    FORMAT, JSON_INDENT, MANIFEST, OutputDir, OutputDirError)
from keras_attnpool.data.prepare.plan import (
    DEFAULT_MAX_FAILURE_FRACTION, ShardPlan, check_arguments, check_output_dir, plan_digest,
    plan_shards, read_spec, record_settings)
from keras_attnpool.data.prepare.accounting import verdict
from keras_attnpool.data.prepare.shards import build_manifest, finish_shard, json_ready
from keras_attnpool.data.prepare.pool import worker_pool
from keras_attnpool.data.prepare.worker import (
    ConvertSettings, Failed, Job, Serialized, convert_sample, unspool)
from keras_attnpool.data.records import frame_index
from keras_attnpool.files import atomic_write, read_json, write_json

logger = logging.getLogger("keras_attnpool.data.prepare")

__all__ = ["OutputDirError", "PrepareError", "prepare_dataset"]


class PrepareError(RuntimeError):
    """A file failed with `on_error="fail"`, or a worker process died; names the file."""


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
        max_failure_fraction: above this fraction of a split's listed samples not written
            (skipped or failed) the manifest says `"ok": false`.
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
    check_arguments(workers, on_error, jpeg_quality, max_failure_fraction,
                    short_side=short_side, shard_size=shard_size, frame_stride=frame_stride,
                    max_frames=max_frames)
    kind = "video" if dataset.strip().lower() in VIDEO_DATASETS else "image"
    spec = read_spec(dataset, data_dir, split, on_error, reader_kwargs)
    check_output_dir(spec, output_dir)
    settings = record_settings(spec, kind, split, short_side, jpeg_quality, shard_size,
                               frame_stride, max_frames, reader_kwargs)
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
    if not todo and _manifest_is_current(on_disk, spec, settings, plans, done):
        logger.info("%s: nothing to do, all %d shards and the manifest are complete",
                    out.path, len(plans))
        judged = verdict(on_disk["failures"], on_disk["lost_classes"],
                         run["max_failure_fraction"])
        return {**on_disk, **judged,
                "this_run": {"shards_written": 0, "shards_reused": len(plans),
                             "nothing_to_do": True, "seconds": time.perf_counter() - start}}
    convert = ConvertSettings(settings["short_side"], settings["jpeg_quality"],
                              settings["frame_stride"], settings["max_frames"],
                              is_video=kind == "video",
                              spool_dir=out.path if run["workers"] > 0 else None)
    phase_start = time.perf_counter()
    if todo:
        for plan_record in _convert_shards(out, todo, convert, run, spec.multi_label):
            done[plan_record["name"]] = plan_record
    seconds = time.perf_counter() - phase_start
    frames = sum(sum(done[p.name]["num_frames"]) for p in todo)
    # No shard to write and yet here: the manifest no longer says what the reader found.
    this_run = {"shards_written": len(todo), "shards_reused": len(plans) - len(todo),
                "nothing_to_do": False, "manifest_rewritten": not todo,
                "convert_seconds": seconds, "frames_written": frames,
                "frames_per_second": frames / seconds if seconds > 0 else 0.0}
    manifest = build_manifest(spec, json_ready(settings), plans, done,
                              {**run, **this_run})
    write_json(out.file(MANIFEST), manifest, indent=JSON_INDENT)
    # Not ok: the callers say so in one line (prepare.py exits 1, fit refuses the records).
    return {**manifest, "this_run": {**this_run, "seconds": time.perf_counter() - start}}


def _manifest_is_current(on_disk: Any, spec: DatasetSpec, settings: dict[str, Any],
                         plans: list[ShardPlan], done: dict[str, dict[str, Any]]) -> bool:
    """True when manifest.json says what a new one would: same shards, and the same skipped
    entries and accounting (the reader's skipped entries can change without the samples,
    and a manifest written by an earlier version lacks the accounting)."""
    if not isinstance(on_disk, dict) or on_disk.get("format") != FORMAT:
        return False
    run = on_disk.get("run")
    if not isinstance(run, dict) or "max_failure_fraction" not in run:
        return False
    return json_ready(build_manifest(spec, json_ready(settings), plans, done, run)) == on_disk


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
    with worker_pool(run["workers"]) as pool, \
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
