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


def decode_onto_canvas(encoded: tf.Tensor, count: int, region: tf.Tensor,
                       window: tf.Tensor, canvas: int) -> tf.Tensor:
    """Decodes `region` (y, x, h, w) of each of `count` JPEGs and places it where it lies
    in `window` (y, x, side, side, holding the region; side <= canvas), on a canvas of
    zeros whose top-left corner holds the window: uint8 [count, canvas, canvas, 3]. Or a
    batch of clips (its size static): encoded [B, count], region and window [B, 4] ->
    uint8 [B, count, canvas, canvas, 3].

    Only the region is decoded (libjpeg skips the work of the rows and columns around it
    that it can), and the canvases are assembled by one concatenation, which copies each
    pixel once, as stacking the frames (or the clips of a batch) would.
    """
    if encoded.shape.rank == 1:
        return decode_onto_canvas(encoded[None], count, region[None], window[None],
                                  canvas)[0]
    batch, parts = encoded.shape[0], []
    for b in range(batch):  # unrolled, so TF runs the decodes in parallel
        parts += _canvas_parts(encoded[b], count, region[b], window[b], canvas)
    return tf.reshape(tf.concat(parts, 0), [batch, count, canvas, canvas, 3])


def _canvas_parts(encoded: tf.Tensor, count: int, region: tf.Tensor, window: tf.Tensor,
                  canvas: int) -> list:
    """One clip's canvases (`decode_onto_canvas`) as the parts that, concatenated along
    the rows, make them: for each frame, the zero rows above the region, the region's
    rows between zero columns, and the zero rows below."""
    top, left = region[0] - window[0], region[1] - window[1]
    height, width = region[2], region[3]
    above = tf.zeros(tf.stack([top, canvas, 3]), tf.uint8)
    below = tf.zeros(tf.stack([canvas - top - height, canvas, 3]), tf.uint8)
    before = tf.zeros(tf.stack([height, left, 3]), tf.uint8)
    after = tf.zeros(tf.stack([height, canvas - left - width, 3]), tf.uint8)
    parts = []
    for i in range(count):
        band = tf.io.decode_and_crop_jpeg(encoded[i], region, channels=3)
        parts += [above, tf.concat([before, band, after], 1), below]
    return parts


def is_multi_label(record: dict) -> bool:
    """Multi-label datasets store a non-empty `labels`."""
    return int(tf.size(record["labels"])) > 0


def record_label(record: dict, multi_label: bool) -> tf.Tensor:
    """int32 class index, or the float32 multi-label values passed through unchanged."""
    if multi_label:
        labels = record["labels"]  # ragged [B, (K)] when parsed as a batch
        return labels.to_tensor() if isinstance(labels, tf.RaggedTensor) else labels
    return tf.cast(record["label"], tf.int32)
