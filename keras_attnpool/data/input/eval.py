"""The evaluation parser: one record -> its views, uniformly spaced frames with fixed crops
(the paper's test protocol), with its label and video id; then views folded into the batch.
"""

import dataclasses
from typing import Sequence

import tensorflow as tf

from keras_attnpool.data.input import augment, sampling
from keras_attnpool.data.input.decode import decode_jpegs, record_label
from keras_attnpool.data.input.sources import Item, RecordSource


@dataclasses.dataclass(frozen=True)
class EvalSpec:
    """What the per-record function needs (hashable: no tensors)."""

    test_frames: int
    image_size: int
    resize_short: int
    views: str
    multi_label: bool


def eval_example(item: Item, spec: EvalSpec, source: RecordSource):
    """One (shard, serialized) pair -> (views [V, T, S, S, 3], label, video_id)."""
    shard, serialized = item
    record = source.parse(serialized)
    indices = sampling.uniform_indices(record["num_frames"], spec.test_frames)
    frames = decode_jpegs(source.frames(shard, record, indices), spec.test_frames)
    crops = augment.eval_views(frames, spec.image_size, spec.resize_short, spec.views)
    return crops, record_label(record, spec.multi_label), record["video_id"]


def fold_views(crops: tf.Tensor, label: tf.Tensor, video_id: tf.Tensor, per_video: int,
               frame_shape: Sequence[int]):
    """[B, V, T, ...] -> [B * per_video, ...]; labels and ids repeated to match, so the
    views (and frames) of one video stay next to each other."""
    frames = tf.reshape(crops, [-1, *frame_shape])
    return (frames, tf.repeat(label, per_video, axis=0),
            tf.repeat(video_id, per_video, axis=0))
