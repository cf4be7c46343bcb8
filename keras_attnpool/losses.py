"""Losses: the masked keypoint-heatmap loss of pose-regularised attention."""

import keras
from keras import ops

from keras_attnpool.data.joints import INVALID_JOINT


def masked_heatmap_loss(y_true, y_pred, valid=None):
    """Squared error per keypoint channel, counted only for valid joints, summed over joints.

    Args:
        y_true: target heatmaps (B, h, w, J), or (B, T, h, w, J) for clips.
        y_pred: predicted heatmaps of the same shape.
        valid: (B, J) (clips: (B, T, J)), 1 where the joint is annotated, 0 where it is not.
            If None, a channel is invalid when its target is filled with `INVALID_JOINT`.
    Returns:
        (B,) loss: sum over valid joints of the mean over positions of (y_true - y_pred)^2;
        for clips, the mean of that over the frames.
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    if valid is None:
        valid = ops.all(ops.greater(y_true, INVALID_JOINT / 2), axis=(-3, -2))
    per_joint = ops.mean(ops.square(y_true - y_pred), axis=(-3, -2))
    per_frame = ops.sum(per_joint * ops.cast(valid, "float32"), axis=-1)
    return ops.mean(per_frame, axis=1) if len(y_true.shape) == 5 else per_frame


@keras.saving.register_keras_serializable(package="keras_attnpool")
class MaskedHeatmapLoss(keras.losses.Loss):
    """`masked_heatmap_loss` as a Keras loss: mark a missing joint by filling its target
    channel with `INVALID_JOINT` (-1); valid targets are in [0, 1].

    Example:

    >>> model.compile(loss={"logits": keras.losses.SparseCategoricalCrossentropy(
    ...     from_logits=True), "pose_heatmaps": MaskedHeatmapLoss()})
    """

    def __init__(self, name="masked_heatmap_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return masked_heatmap_loss(y_true, y_pred)
