"""Reading through a shard's frame index (`records.frame_index` describes and writes it).

`parse_index_entry` parses an entry; `read_frames` and `read_frame_batch` read the sampled
JPEGs (positioned reads, `os.pread`, in a `tf.numpy_function`; training reads a whole
batch's frames in one call). Records read this way skip TFRecord's checksum, so every frame
read is checked to start with a JPEG start-of-image marker: an index that does not match its
shard (a shard replaced after prepare) fails with a message naming both files.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from keras_attnpool.data.records.frame_index import INDEX_SUFFIX, index_path
from keras_attnpool.data.records.schema import CONTEXT_SPEC, SEQUENCE_SPEC

__all__ = ["INDEX_SUFFIX", "has_index", "index_path", "parse_index_entry", "read_frames",
           "read_frame_batch"]
_JPEG_START = b"\xff\xd8"

INDEX_CONTEXT_SPEC = {**CONTEXT_SPEC,
                      "frame_offsets": tf.io.RaggedFeature(tf.int64),
                      "frame_lengths": tf.io.RaggedFeature(tf.int64)}
INDEX_SEQUENCE_SPEC = {"keypoints": SEQUENCE_SPEC["keypoints"]}


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
