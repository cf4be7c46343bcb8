"""What `prepare` writes: shards of `records.schema` records, and the manifest.

Manifest (`OUT/manifest.json`) keys:
    format            "keras_attnpool.prepared/2" (1: frames stored as plain JPEGs)
    dataset           reader name
    splits            {split: records written}            (after decode failures)
    listed            {split: entries the dataset's files list there}: records, entries
                      skipped when read (missing, empty, unreadable, duplicate, ...) and
                      files that failed to decode (see `prepare.accounting`)
    classes           class names, label order
    multi_label       true for HICO
    class_counts      {split: {class: records}}  (multi-label: positives, value 1)
    num_frames        {split: frames stored in all its records}
    keypoints         {split: {samples, frames} with keypoints (a frame: at least one
                      person's)}; null for a split with shards prepared before the count
    shards            {split: [shard file names]} (every shard, also one left empty)
    records_per_shard {split: [records in each shard]}
    skipped           [{path, reason, stage: "read" | "decode", listed?, source?, line?,
                        split?, label?, video_id?}]: the reader's skipped entries, then the
                      failed files; `listed` false for files no split takes
    frame_count_mismatch [{path, decoded, declared}]: accepted videos that decoded another
                      frame count than their header declares (see `video.TRUNCATION_...`)
    accounting        {split: {listed, records, skipped, failed, classes: {class: {...}}}}:
                      listed = records + skipped + failed, per split and class
    unassigned        entries skipped before their split could be read (malformed lines)
    empty_classes     {split: [classes without a record]}
    lost_classes      [{class, split, listed}]: a class whose listed samples of a split all
                      failed, or (split null) that no split lists: the label has no example
    failures          {split: {failed, listed, fraction}}: listed samples not written
    ok                false when a split's failed fraction > run.max_failure_fraction, or a
                      class is lost
    settings          everything that decides the records' contents (a rerun with other
                      settings refuses to mix them)
    reader_info       the reader's `DatasetSpec.info`
    run               workers, on_error, max_failure_fraction, shards written / reused,
                      convert seconds, frames written and frames per second of the run
                      that wrote this manifest
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from keras_attnpool.data.datasets import DatasetSpec, Sample
from keras_attnpool.data.prepare import accounting
from keras_attnpool.data.prepare.output import FORMAT, JSON_INDENT, OutputDir
from keras_attnpool.data.prepare.worker import Failed
from keras_attnpool.data.records import frame_index
from keras_attnpool.data.records.tfrecord import write_tfrecord
from keras_attnpool.files import atomic_write, write_json

logger = logging.getLogger("keras_attnpool.data.prepare")


def finish_shard(out: OutputDir, plan: Any, results: list[tuple[Sample, Any]]
                 ) -> dict[str, Any]:
    """Writes one shard and its frame index (atomically) and its finished-shard record;
    returns the record."""
    records, parts, ids, frames, skipped, mismatch, posed = [], [], [], [], [], [], []
    for sample, result in results:
        if isinstance(result, Failed):
            skipped.append({"path": result.path, "reason": result.reason, "stage": "decode",
                            "split": plan.split, "video_id": sample.video_id})
            continue
        records.append(result.record)
        parts.append(result.parts)
        ids.append(sample.video_id)
        frames.append(result.num_frames)
        posed.append(result.keypoint_frames)
        if (result.complete and result.declared_frames
                and result.num_source_frames != result.declared_frames):
            mismatch.append({"path": sample.path, "decoded": result.num_source_frames,
                             "declared": result.declared_frames})
    shard = out.file(plan.name)
    atomic_write(shard, lambda temp: write_tfrecord(temp, records))
    # The index after its shard: a shard is done only when both exist (OutputDir.finished).
    entries = frame_index.entries_from_parts(parts)
    atomic_write(frame_index.index_path(shard),
                 lambda temp: frame_index.write_index(shard, path=temp, entries=entries))
    record = {"name": plan.name, "split": plan.split, "index": plan.index, "video_ids": ids,
              "num_frames": frames, "keypoint_frames": posed, "skipped": skipped,
              "frame_count_mismatch": mismatch}
    write_json(out.record_path(plan.name), record, indent=JSON_INDENT)
    logger.info("wrote %s: %d records, %d frames%s", plan.name, len(ids), sum(frames),
                f", {len(skipped)} skipped" if skipped else "")
    return record


def class_counts(spec: DatasetSpec, labels: list[Any]) -> dict[str, int]:
    """Records per class (multi-label: positives, value 1)."""
    counts = dict.fromkeys(spec.classes, 0)
    if spec.multi_label:
        if labels:
            positives = (np.stack(labels) == 1).sum(axis=0)
            counts = {name: int(n) for name, n in zip(spec.classes, positives)}
        return counts
    for label in labels:
        if label >= 0:
            counts[spec.classes[label]] += 1
    return counts


def build_manifest(spec: DatasetSpec, settings: dict[str, Any], plans: list[Any],
                   done: dict[str, dict[str, Any]], run: dict[str, Any]) -> dict[str, Any]:
    """The manifest (see module doc) from the finished-shard records of every shard."""
    splits = list(spec.samples)
    by_split = {s: [done[p.name] for p in plans if p.split == s] for s in splits}
    label_of = {(s.split, s.video_id): s.label for items in spec.samples.values() for s in items}
    written = {s: [v for r in by_split[s] for v in r["video_ids"]] for s in splits}
    table = accounting.account(spec, by_split)
    lost = accounting.lost_classes(spec, table)
    return {
        "format": FORMAT, "dataset": spec.name,
        "splits": {s: len(written[s]) for s in splits},
        "listed": {s: row["listed"] for s, row in table.items()},
        "classes": list(spec.classes), "multi_label": spec.multi_label,
        "class_counts": {s: class_counts(spec, [label_of[(s, v)] for v in written[s]])
                         for s in splits},
        "num_frames": {s: sum(sum(r["num_frames"]) for r in by_split[s]) for s in splits},
        "keypoints": {s: _keypoint_counts(by_split[s]) for s in splits},
        "shards": {s: [r["name"] for r in by_split[s]] for s in splits},
        "records_per_shard": {s: [len(r["video_ids"]) for r in by_split[s]] for s in splits},
        "skipped": ([dict(x.to_dict(), stage="read") for x in spec.skipped]
                    + [x for s in splits for r in by_split[s] for x in r["skipped"]]),
        "frame_count_mismatch": [x for s in splits for r in by_split[s]
                                 for x in r["frame_count_mismatch"]],
        "accounting": table, "unassigned": len(spec.unassigned()),
        "empty_classes": accounting.empty_classes(spec, table), "lost_classes": lost,
        **accounting.verdict(accounting.failure_summary(table), lost,
                             run["max_failure_fraction"]),
        "settings": settings, "reader_info": json_ready(spec.info), "run": run,
    }


def _keypoint_counts(shards: list[dict[str, Any]]) -> dict[str, int] | None:
    """{samples, frames} of a split with keypoints (a frame: at least one person's); None
    when a shard was prepared before prepare counted them."""
    if any("keypoint_frames" not in r for r in shards):
        return None
    counts = [n for r in shards for n in r["keypoint_frames"]]
    return {"samples": sum(1 for n in counts if n), "frames": sum(counts)}


def json_ready(value: Any) -> Any:
    """`value` as it reads back from JSON (tuples -> lists, other objects -> str)."""
    return json.loads(json.dumps(value, default=str))
