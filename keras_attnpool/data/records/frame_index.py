"""Frame index of a prepared shard: where each stored frame lies in the file.

A record holds every frame of its clip (about 100 for 3.5 s of HMDB51 at 30 fps), and TSN
training decodes three of them. Reading a record means copying and checksumming all of its
JPEGs, work that grows with the clip while the sample does not (`benchmarks/input_pipeline.py`
measures it). The index lets the training pipeline read a small entry per clip and then only
the bytes of the sampled frames.

`X.tfrecord` has its index in `X.tfrecord.index`: a TFRecord file with one entry per record,
in the same order. An entry is its record (a `tf.train.SequenceExample`, see
`records.schema`) without the `frames` feature list, with one more context feature:

    frame_records  int64 [T]   byte position in the shard file of the TFRecord record that
                               frame t's stored form holds (`stored_frame`), which
                               `TFRecordDataset(byte_offsets=...)` reads and checks

The positions follow from the serialised records alone: TFRecord stores a record as an 8-byte
length, a 4-byte CRC, the data and a 4-byte CRC, and protobuf stores each frame's bytes
verbatim inside the serialised SequenceExample. `prepare` writes the index next to each shard
(and writes it again for a finished shard that lacks it); `write_index` builds it for any
shard of `records.schema` records.

Indexes written before frames had a stored form (format `keras_attnpool.prepared/1`) hold
`frame_offsets` and `frame_lengths` instead, the JPEGs' own positions; the pipelines read
such shards as whole records (`input.indexed.index_is_current`).

This module writes indexes without TensorFlow (`prepare` loads none);
`keras_attnpool.data.input.indexed` parses them and reads the frames they point at.
"""

from __future__ import annotations

import os
from typing import Sequence

from keras_attnpool.data.records import proto, stored_frame
from keras_attnpool.data.records.tfrecord import data_offsets, read_tfrecord, write_tfrecord

INDEX_SUFFIX = ".index"


def index_path(shard: str) -> str:
    """The index file of a shard."""
    return os.fspath(shard) + INDEX_SUFFIX


def _entry(base: proto.SequenceExample, frame_starts: Sequence[int]) -> bytes:
    """An index entry: `base` (a record without frames) with the positions of its frames'
    records, from where its stored frames start in the shard."""
    base.context.feature["frame_records"].int64_list.value[:] = [
        start + stored_frame.RECORD_OFFSET for start in frame_starts]
    return proto.serialize(base)


def index_entries(records: Sequence[bytes], shard: str = "the shard") -> list[bytes]:
    """Index entries of the serialised records of one TFRecord file, in file order.

    Raises:
        ValueError: a record's frames are not in their stored form (records of an older
            format, or frames put in by another tool).
    """
    entries = []
    for n, (record, start) in enumerate(zip(records, data_offsets(map(len, records)))):
        example = proto.SequenceExample.FromString(record)
        frames = proto.stored_frames(example)
        if not all(map(stored_frame.is_stored, frames)):
            raise ValueError(f"{shard}: record {n} holds frames that are not in their "
                             "stored form (records.stored_frame); prepare the records "
                             "again (training/prepare.py --overwrite)")
        positions = proto.frame_positions(record, frames)
        entries.append(_entry(proto.without_frames(example), [start + p for p in positions]))
    return entries


def entries_from_parts(parts: Sequence[proto.RecordParts]) -> list[bytes]:
    """Index entries from what serialising the records gave (`proto.RecordParts`,
    in file order), without reading the records again."""
    return [_entry(proto.SequenceExample.FromString(part.base),
                   [start + p for p in part.frame_positions])
            for part, start in zip(parts, data_offsets(p.record_length for p in parts))]


def write_index(shard: str, records: Sequence[bytes] | None = None,
                path: str | None = None, entries: Sequence[bytes] | None = None) -> str:
    """Writes the index of `shard` (to `path`, default `index_path(shard)`); returns it.

    `entries` are written as given; else they are made from `records`, the shard's
    records when the caller still holds them; else the shard is read (its checksums
    verified).
    """
    if entries is None:
        if records is None:
            records = list(read_tfrecord(shard))
        entries = index_entries(records, shard)
    path = index_path(shard) if path is None else path
    write_tfrecord(path, entries)
    return path
