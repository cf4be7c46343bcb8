"""The decoder: the sampled JPEGs of a clip -> frames; a parsed record -> its label."""

from typing import Optional

import tensorflow as tf


def decode_jpegs(encoded: tf.Tensor, count: int, crop_box: Optional[tf.Tensor] = None
                 ) -> tf.Tensor:
    """Decodes `count` JPEGs to uint8 [count, h, w, 3], cropped while decoding if asked.

    The loop is unrolled (count is static), so TF runs the decodes in parallel.
    """
    frames = []
    for i in range(count):
        if crop_box is None:
            frames.append(tf.io.decode_jpeg(encoded[i], channels=3))
        else:
            frames.append(tf.io.decode_and_crop_jpeg(encoded[i], crop_box, channels=3))
    return tf.stack(frames)


def is_multi_label(record: dict) -> bool:
    """Multi-label datasets store a non-empty `labels`."""
    return int(tf.size(record["labels"])) > 0


def record_label(record: dict, multi_label: bool) -> tf.Tensor:
    """int32 class index, or the float32 multi-label values passed through unchanged."""
    if multi_label:
        labels = record["labels"]  # ragged [B, (K)] when parsed as a batch
        return labels.to_tensor() if isinstance(labels, tf.RaggedTensor) else labels
    return tf.cast(record["label"], tf.int32)
