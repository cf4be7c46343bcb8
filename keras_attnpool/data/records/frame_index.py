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

The pipelines read frames with `read_frames` and `read_frame_batch` (positioned reads,
`os.pread`, in a `tf.numpy_function`; training reads a whole batch's frames in one call).
Records read this way skip TFRecord's checksum, so every frame read is checked to start
with a JPEG start-of-image marker: an index that does not match its shard (a shard
replaced after prepare) fails with a message naming both files.
"""

from __future__ import annotations

import os
from typing import Iterable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from keras_attnpool.data.records import proto
from keras_attnpool.data.records.schema import CONTEXT_SPEC, SEQUENCE_SPEC, write_tfrecord

INDEX_SUFFIX = ".index"
# TFRecord framing: uint64 length + uint32 masked CRC of the length, data, uint32 CRC.
_HEADER_BYTES, _FOOTER_BYTES = 12, 4
_JPEG_START = b"\xff\xd8"

INDEX_CONTEXT_SPEC = {**CONTEXT_SPEC,
                      "frame_offsets": tf.io.RaggedFeature(tf.int64),
                      "frame_lengths": tf.io.RaggedFeature(tf.int64)}
INDEX_SEQUENCE_SPEC = {"keypoints": SEQUENCE_SPEC["keypoints"]}


def index_path(shard: str) -> str:
    """The index file of a shard."""
    return os.fspath(shard) + INDEX_SUFFIX


def _entry(base: proto.SequenceExample, offsets: Sequence[int],
           lengths: Sequence[int]) -> bytes:
    """An index entry: `base` (a record without frames) with the frames' positions."""
    base.context.feature["frame_offsets"].int64_list.value[:] = list(offsets)
    base.context.feature["frame_lengths"].int64_list.value[:] = list(lengths)
    return proto.serialize(base)


def _data_offsets(record_lengths: Iterable[int]) -> Iterator[int]:
    """Where the data of each record of an uncompressed TFRecord file starts."""
    position = 0
    for length in record_lengths:
        yield position + _HEADER_BYTES
        position += _HEADER_BYTES + length + _FOOTER_BYTES


def index_entries(records: Sequence[bytes]) -> list[bytes]:
    """Index entries of the serialised records of one TFRecord file, in file order."""
    entries = []
    for record, start in zip(records, _data_offsets(map(len, records))):
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
    for part, start in zip(parts, _data_offsets(p.record_length for p in parts)):
        entries.append(_entry(proto.SequenceExample.FromString(part.base),
                              [start + p for p in part.frame_positions],
                              part.frame_lengths))
    return entries


def write_index(shard: str, records: Sequence[bytes] | None = None,
                path: str | None = None, entries: Sequence[bytes] | None = None) -> str:
    """Writes the index of `shard` (to `path`, default `index_path(shard)`); returns it.

    `entries` are written as given; else they are made from `records`, the shard's
    records when the caller still holds them; else the shard is read (its checksums
    verified by TensorFlow's reader).
    """
    if entries is None:
        if records is None:
            records = [r.numpy() for r in tf.data.TFRecordDataset(os.fspath(shard))]
        entries = index_entries(records)
    path = index_path(shard) if path is None else path
    write_tfrecord(path, entries)
    return path


def has_index(shard: str) -> bool:
    return tf.io.gfile.exists(index_path(shard))


def parse_index_entry(serialized: tf.Tensor, keypoints: bool = True) -> dict:
    """Parses an index entry: `parse_example`'s dict with `frame_offsets` and
    `frame_lengths` (int64 [T]) in place of `frames`."""
    context, sequence = tf.io.parse_single_sequence_example(
        serialized, context_features=INDEX_CONTEXT_SPEC,
        sequence_features=INDEX_SEQUENCE_SPEC if keypoints else {})
    return {**context, **sequence}


def _read_ranges(shard: bytes, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The byte ranges of `shard` as an object array of bytes (each must start a JPEG)."""
    name = shard.decode("utf-8")
    out = []
    if "://" in name:  # a remote file system (gs://, s3://...): tf.io.gfile seeks and reads
        with tf.io.gfile.GFile(name, "rb") as f:
            for offset, length in zip(offsets.tolist(), lengths.tolist()):
                f.seek(offset)
                out.append(f.read(length))
    else:
        fd = os.open(name, os.O_RDONLY)
        try:
            out = [os.pread(fd, length, offset)
                   for offset, length in zip(offsets.tolist(), lengths.tolist())]
        finally:
            os.close(fd)
    for data, offset, length in zip(out, offsets.tolist(), lengths.tolist()):
        if len(data) != length or not data.startswith(_JPEG_START):
            raise ValueError(
                f"{name}: no JPEG at byte {offset} (length {length}), where "
                f"{index_path(name)} puts a frame: the shard changed after its index was "
                "written, or the record holds a frame that is not a JPEG. Delete the "
                ".index file (training/prepare.py writes it again; without it the "
                "pipelines read whole records)")
    return np.array(out, dtype=object)


def read_frames(shard: tf.Tensor, offsets: tf.Tensor, lengths: tf.Tensor,
                count: int | None = None) -> tf.Tensor:
    """The JPEGs at `offsets` / `lengths` (int64 [k]) of `shard`: tf.string [k]."""
    frames = tf.numpy_function(_read_ranges, [shard, offsets, lengths], tf.string,
                               stateful=False, name="read_frames")
    return tf.ensure_shape(frames, [count])


def _read_batch(shards: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Row b: the byte ranges offsets[b] / lengths[b] of shards[b]; each shard opened once."""
    out = np.empty(offsets.shape, dtype=object)
    rows_of = {}
    for row, shard in enumerate(shards.tolist()):
        rows_of.setdefault(shard, []).append(row)
    for shard, rows in rows_of.items():
        out[rows] = _read_ranges(shard, offsets[rows].ravel(),
                                 lengths[rows].ravel()).reshape(len(rows), -1)
    return out


def read_frame_batch(shards: tf.Tensor, offsets: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
    """`read_frames` for a batch of clips in one call: shards tf.string [B], offsets and
    lengths int64 [B, T] -> the JPEGs, tf.string [B, T]."""
    frames = tf.numpy_function(_read_batch, [shards, offsets, lengths], tf.string,
                               stateful=False, name="read_frame_batch")
    return tf.ensure_shape(frames, offsets.shape)
