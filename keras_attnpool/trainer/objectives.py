"""Per-example training losses for the tasks of the paper.

Each returns a function `(targets, outputs) -> (B,)` float32 loss; the trainer averages over
the global batch.
"""

from typing import Callable

import tensorflow as tf

from keras_attnpool.losses import masked_heatmap_loss

TASKS = ("single_label", "multi_label")


def single_label_loss(labels, logits):
    """Softmax cross-entropy on integer labels."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=tf.cast(logits, tf.float32))


def multi_label_loss(labels, logits):
    """Sigmoid cross-entropy over the classes whose label counts (HICO convention).

    Labels 1 are positives; -1 and NaN (no annotation: the action is absent) are negatives;
    0 (ambiguous) does not count. The mean is over the counted classes of each example.
    """
    labels = tf.cast(labels, tf.float32)
    known = tf.logical_not(tf.equal(labels, 0.0))
    targets = tf.cast(tf.equal(labels, 1.0), tf.float32)
    per_class = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets,
                                                        logits=tf.cast(logits, tf.float32))
    weights = tf.cast(known, tf.float32)
    return tf.reduce_sum(per_class * weights, -1) / tf.maximum(tf.reduce_sum(weights, -1), 1.0)


def make_loss(task: str = "single_label", pose_weight: float = 0.0) -> Callable:
    """The loss for `task`; with `pose_weight` > 0, outputs and targets are dicts with
    "logits" and "pose_heatmaps" and the masked heatmap loss is added with that weight."""
    if task not in TASKS:
        raise ValueError(f"Unknown `task`: {task!r}. Accepted values: {', '.join(TASKS)}.")
    action = single_label_loss if task == "single_label" else multi_label_loss
    if not pose_weight:
        return action

    def with_pose(targets, outputs):
        return (action(targets["logits"], outputs["logits"])
                + pose_weight * masked_heatmap_loss(targets["pose_heatmaps"],
                                                    outputs["pose_heatmaps"]))

    return with_pose
