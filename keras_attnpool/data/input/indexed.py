"""Reading through a shard's frame index (`records.frame_index` describes and writes it).

`parse_index_entry` parses an entry; `read_frames` reads the sampled frames at the positions
the entries give, in TensorFlow ops alone: each stored frame holds a TFRecord record
(`records.stored_frame`), which `TFRecordDatasetV2` reads from a byte position, with its
checksum verified. So no Python runs per batch: the pipeline runs without the GIL, and on
tf.data service workers, which have TensorFlow but not this package.
"""

from __future__ import annotations

import tensorflow as tf

from keras_attnpool.data.records.frame_index import INDEX_SUFFIX, index_path
from keras_attnpool.data.records.schema import CONTEXT_SPEC, SEQUENCE_SPEC
from keras_attnpool.data.records.stored_frame import JPEG_START

__all__ = ["INDEX_SUFFIX", "has_index", "index_is_current", "index_path",
           "parse_index_entry", "read_frames", "FRAMES_UNREAD"]
# Starts the message of a failed read; `input.errors` then looks for the damaged file.
FRAMES_UNREAD = "sampled frames could not be read"

INDEX_CONTEXT_SPEC = {**CONTEXT_SPEC, "frame_records": tf.io.RaggedFeature(tf.int64)}
INDEX_SEQUENCE_SPEC = {"keypoints": SEQUENCE_SPEC["keypoints"]}


def has_index(shard: str) -> bool:
    return tf.io.gfile.exists(index_path(shard))


def index_is_current(shard: str) -> bool:
    """Whether the index of `shard` points at stored frames (its first entry has
    `frame_records`), rather than being an index of format 1, whose frames only a
    Python read could reach; an empty index is current."""
    for entry in tf.data.TFRecordDataset(index_path(shard)).take(1):
        features = tf.io.parse_single_sequence_example(
            entry, context_features={"frame_records": INDEX_CONTEXT_SPEC["frame_records"],
                                     "num_frames": CONTEXT_SPEC["num_frames"]})[0]
        return int(tf.size(features["frame_records"])) == int(features["num_frames"])
    return True


def parse_index_entry(serialized: tf.Tensor, keypoints: bool = True) -> dict:
    """Parses an index entry: `parse_example`'s dict with `frame_records` (int64 [T]) in
    place of `frames`."""
    context, sequence = tf.io.parse_single_sequence_example(
        serialized, context_features=INDEX_CONTEXT_SPEC,
        sequence_features=INDEX_SEQUENCE_SPEC if keypoints else {})
    return {**context, **sequence}


def read_frames(shards: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
    """The JPEGs of the stored frames whose records start at `positions` (int64, any shape)
    of the files `shards` (tf.string, the same shape): tf.string of that shape.

    One dataset reads them all: each (file, position) pair is one of its files, read from
    that position; the stored frame's guard ends each file's read with a checksum error,
    which moves it on to the next pair, and `ignore_errors` drops those errors. A frame
    that cannot be read (a damaged or replaced shard, or a missing file) is dropped as
    well, so the count is checked: a shortfall fails with FRAMES_UNREAD.
    """
    shape = tf.shape(positions)
    files, offsets = tf.reshape(shards, [-1]), tf.reshape(positions, [-1])
    count = tf.size(offsets, out_type=tf.int64)
    handle = tf.raw_ops.TFRecordDatasetV2(
        filenames=files, compression_type="", buffer_size=tf.constant(0, tf.int64),
        byte_offsets=offsets)
    records = tf.data.experimental.from_variant(
        handle, tf.TensorSpec([], tf.string)).ignore_errors()
    # With no frame read at all, the empty batch after them is taken.
    data = records.batch(tf.maximum(count, 1)).concatenate(
        tf.data.Dataset.from_tensors(tf.zeros([0], tf.string))).take(1).get_single_element()
    read = tf.size(data, out_type=tf.int64)
    check = tf.debugging.Assert(read == count, [
        f"{FRAMES_UNREAD}: a shard or its frame index was damaged or replaced after "
        "prepare wrote them; first shard of the batch:", files[:1], "frames read:", read,
        "of", count], summarize=1)
    with tf.control_dependencies([check]):
        # Padded to the count as well: a shortfall raises the message above, never a
        # shape error of an op that happened to run first.
        data = tf.concat([data, tf.fill(tf.maximum(count - read, 0)[None], "")], 0)[:count]
    return tf.reshape(tf.strings.join([JPEG_START, data]), shape)
