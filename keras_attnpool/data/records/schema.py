"""The prepared-record format: one `tf.train.SequenceExample` per video or image.

Videos are decoded once (by `prepare`) into JPEG frames; training then samples frame
indices and decodes only the sampled JPEGs. Images are the same record with one frame, so
every pipeline reads one format.

Context features:
    video_id      bytes   the sample's id (`Sample.video_id`), unique in the dataset
    label         int64   class index; -1 for a multi-label sample or one without a label
    labels        float[] multi-label targets (HICO: 1, -1, 0 ambiguous, NaN unknown);
                          empty for single-label datasets
    num_frames    int64   number of stored frames
    fps           float   frames per second of the stored frames (0 for images)
    height, width int64   size of the stored JPEGs
Sequence features (one entry per stored frame):
    frames        bytes   JPEG of the frame, in its stored form (`stored_frame`: a TFRecord
                          record inside a comment segment; decoders read the same image)
    keypoints     float[] (num_people * 16 * 3) x, y, valid in stored-frame pixels, MPII
                          joint order; empty where no keypoints are known

Shards are named `<split>-<index:05d>-of-<count:05d>.tfrecord` (TFRecord, uncompressed;
`tfrecord.shard_name`, `tfrecord.write_tfrecord`).
`prepare` writes each shard's frame index next to it (`<shard>.index`, see `frame_index`).
"""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from keras_attnpool.data.records import proto
# The files' names and framing are written without TensorFlow (prepare loads none).
from keras_attnpool.data.records.tfrecord import shard_name, write_tfrecord  # noqa: F401


def encode_example(video_id: str, jpeg_frames: Sequence[bytes], label: int = -1,
                   labels: Optional[np.ndarray] = None, fps: float = 0.0,
                   height: int = 0, width: int = 0,
                   keypoints: Optional[Sequence[Optional[np.ndarray]]] = None) -> bytes:
    """Serialises one sample. `keypoints[t]` is None or a (num_people, 16, 3) array."""
    return proto.serialize(proto.build_example(
        video_id, jpeg_frames, label, labels, fps, height, width, keypoints))


CONTEXT_SPEC = {
    "video_id": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
    "labels": tf.io.RaggedFeature(tf.float32),  # in the context: a dense [K] tensor
    "num_frames": tf.io.FixedLenFeature([], tf.int64),
    "fps": tf.io.FixedLenFeature([], tf.float32),
    "height": tf.io.FixedLenFeature([], tf.int64),
    "width": tf.io.FixedLenFeature([], tf.int64),
}
SEQUENCE_SPEC = {
    "frames": tf.io.FixedLenSequenceFeature([], tf.string),
    "keypoints": tf.io.RaggedFeature(tf.float32),
}


def parse_example(serialized: tf.Tensor, keypoints: bool = True) -> dict:
    """Parses one serialised record (works eagerly and inside `Dataset.map`).

    Returns:
        A dict with the context features (`labels` dense, float32 [K] or [0]), `frames`
        (tf.string [T], still JPEG-encoded) and, unless `keypoints=False` (which saves
        parsing them), `keypoints` (ragged float32 [T, None]).
    """
    sequence_spec = SEQUENCE_SPEC if keypoints else {"frames": SEQUENCE_SPEC["frames"]}
    context, sequence = tf.io.parse_single_sequence_example(
        serialized, context_features=CONTEXT_SPEC, sequence_features=sequence_spec)
    return {**context, **sequence}
