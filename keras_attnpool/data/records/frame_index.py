"""Frame index of a prepared shard: where each stored JPEG lies in the file.

A record holds every frame of its clip (about 100 for 3.5 s of HMDB51 at 30 fps), and TSN
training decodes three of them. Reading a record means copying and checksumming all of its
JPEGs, work that grows with the clip while the sample does not (`benchmarks/input_pipeline.py`
measures it). The index lets the training pipeline read a small entry per clip and then only
the bytes of the sampled JPEGs.

`X.tfrecord` has its index in `X.tfrecord.index`: a TFRecord file with one entry per record,
in the same order. An entry is its record (a `tf.train.SequenceExample`, see
`records.schema`) without the `frames` feature list, with two more context features:

    frame_offsets  int64 [T]   byte position of frame t's JPEG in the shard file
    frame_lengths  int64 [T]   its length in bytes

The positions follow from the serialised records alone: TFRecord stores a record as an 8-byte
length, a 4-byte CRC, the data and a 4-byte CRC, and protobuf stores each JPEG's bytes
verbatim inside the serialised SequenceExample. `prepare` writes the index next to each shard
(and adds it to shards prepared before indexes existed); `write_index` builds it for any
shard of `records.schema` records.

This module writes indexes without TensorFlow (`prepare` loads none);
`keras_attnpool.data.input.indexed` parses them and reads the frames they point at.
"""

from __future__ import annotations

import os
from typing import Sequence

from keras_attnpool.data.records import proto
from keras_attnpool.data.records.tfrecord import data_offsets, read_tfrecord, write_tfrecord

INDEX_SUFFIX = ".index"


def index_path(shard: str) -> str:
    """The index file of a shard."""
    return os.fspath(shard) + INDEX_SUFFIX


def _entry(base: proto.SequenceExample, offsets: Sequence[int],
           lengths: Sequence[int]) -> bytes:
    """An index entry: `base` (a record without frames) with the frames' positions."""
    base.context.feature["frame_offsets"].int64_list.value[:] = list(offsets)
    base.context.feature["frame_lengths"].int64_list.value[:] = list(lengths)
    return proto.serialize(base)


def index_entries(records: Sequence[bytes]) -> list[bytes]:
    """Index entries of the serialised records of one TFRecord file, in file order."""
    entries = []
    for record, start in zip(records, data_offsets(map(len, records))):
        example = proto.SequenceExample.FromString(record)
        jpegs = [f.bytes_list.value[0]
                 for f in example.feature_lists.feature_list["frames"].feature]
        positions = proto.frame_positions(record, jpegs)
        entries.append(_entry(proto.without_frames(example),
                              [start + p for p in positions], [len(j) for j in jpegs]))
    return entries


def entries_from_parts(parts: Sequence[proto.RecordParts]) -> list[bytes]:
    """Index entries from what serialising the records gave (`proto.RecordParts`,
    in file order), without reading the records again."""
    entries = []
    for part, start in zip(parts, data_offsets(p.record_length for p in parts)):
        entries.append(_entry(proto.SequenceExample.FromString(part.base),
                              [start + p for p in part.frame_positions],
                              part.frame_lengths))
    return entries


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
        entries = index_entries(records)
    path = index_path(shard) if path is None else path
    write_tfrecord(path, entries)
    return path
