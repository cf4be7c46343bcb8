"""Keypoint heatmap targets for pose-regularised attention (PAPER.md, Fig. 2b).

Each annotated joint is drawn on its channel (MPII order) as a filled disk of radius 5% of
the stored image's width, or as a Gaussian of that standard deviation; all people share the
channel (maximum over people). The maps see the same crop and flip as the frames, and a flip
swaps the left/right channels (`MPII_FLIP`; the authors' code forgot to). A channel whose
joint no person has is filled with `INVALID_JOINT` (-1), which `MaskedHeatmapLoss` reads as
"missing".

Disks are drawn at `supersample` times the heatmap resolution and area-averaged down, which
is what drawing at image resolution and resizing to the feature map does, so that a disk
smaller than one heatmap cell still leaves a mark; Gaussians are cut at 3 sigma.

Normalisation: the paper min-max normalises the drawn map, whose minimum is 0, i.e. it
scales the peak to 1. We do so when some person's joint lies inside the crop (restoring
the peak of a disk smaller than a cell). A joint that is annotated but outside the crop
stays a valid channel, empty or with the faint edge of its disk: "this joint is not in
view" is a real target, as it was when the authors cropped their drawn maps; scaling that
edge up to 1, as a min-max of the cropped map would, would put a false peak on the border.
"""

from typing import Tuple

import tensorflow as tf

from keras_attnpool.data.joints import INVALID_JOINT, MPII_FLIP, NUM_JOINTS

HEATMAP_SHAPES = ("disk", "gaussian")


def keypoint_heatmaps(keypoints: tf.Tensor, crop_box: tf.Tensor, flip: tf.Tensor,
                      image_width: tf.Tensor, heatmap_size: Tuple[int, int],
                      shape: str = "disk", radius: float = 0.05,
                      supersample: int = 4) -> tf.Tensor:
    """Heatmap targets for the frames of one clip, after its crop and flip.

    Args:
        keypoints: float32 [T, P, 16, 3] (x, y, valid) in stored-frame pixels; P may be 0.
        crop_box: [4] (y, x, height, width) of the crop in stored-frame pixels.
        flip: scalar bool, whether the crop is mirrored left/right.
        image_width: width of the stored frames; sets the disk radius.
        heatmap_size: (height, width) of the maps, the model's feature-map size.
        shape: "disk" (the paper) or "gaussian".
        radius: disk radius (Gaussian sigma) as a fraction of `image_width`.
        supersample: sub-cells per heatmap cell (each axis) when drawing disks.

    Returns:
        float32 [T, height, width, 16]: in [0, 1], or -1 for channels with no valid joint.
    """
    if shape not in HEATMAP_SHAPES:
        raise ValueError(f"heatmap shape must be one of {HEATMAP_SHAPES}, got {shape!r}")
    keypoints = tf.convert_to_tensor(keypoints, tf.float32)
    x, y, valid = _crop_coordinates(keypoints, crop_box, flip)
    box = tf.cast(crop_box, tf.float32)
    r = radius * tf.cast(image_width, tf.float32)
    # Radii in crop-normalised units: the disk becomes an ellipse when the crop is not
    # square, exactly as resizing a drawn disk to the square input would make it.
    rx, ry = r / box[3], r / box[2]
    factor = supersample if shape == "disk" else 1
    maps = _draw(x, y, valid, rx, ry, heatmap_size, factor, shape)  # [T, 16, h*f, w*f]
    maps = _area_downsample(maps, heatmap_size, factor)
    in_view = valid & (x >= 0) & (x < 1) & (y >= 0) & (y < 1)
    maps = _normalise_peak(maps, tf.reduce_any(in_view, axis=1))
    has_joint = tf.reduce_any(valid, axis=1)[:, :, None, None]  # [T, 16, 1, 1]
    maps = tf.where(has_joint, maps, tf.constant(INVALID_JOINT, tf.float32))
    return tf.transpose(maps, [0, 2, 3, 1])


def _crop_coordinates(keypoints: tf.Tensor, crop_box: tf.Tensor, flip: tf.Tensor):
    """x, y in crop-normalised units ([0, 1] inside the crop) and valid, each [T, P, 16]."""
    box = tf.cast(crop_box, tf.float32)
    flip = tf.convert_to_tensor(flip, tf.bool)
    # After a mirror, the joint seen on channel j is the original joint MPII_FLIP[j].
    keypoints = tf.where(flip, tf.gather(keypoints, MPII_FLIP, axis=2), keypoints)
    x = (keypoints[..., 0] - box[1]) / box[3]
    y = (keypoints[..., 1] - box[0]) / box[2]
    x = tf.where(flip, 1.0 - x, x)
    return x, y, keypoints[..., 2] > 0


def _draw(x, y, valid, rx, ry, heatmap_size, factor, shape) -> tf.Tensor:
    """Per frame and joint, the maximum over people of the drawn shape: [T, 16, H, W]."""
    height, width = heatmap_size[0] * factor, heatmap_size[1] * factor
    grid_y = (tf.range(height, dtype=tf.float32) + 0.5) / height
    grid_x = (tf.range(width, dtype=tf.float32) + 0.5) / width
    dy = (grid_y[:, None] - y[..., None, None]) / ry  # [T, P, 16, H, 1]
    dx = (grid_x[None, :] - x[..., None, None]) / rx  # [T, P, 16, 1, W]
    squared = dx * dx + dy * dy
    if shape == "disk":
        drawn = tf.cast(squared <= 1.0, tf.float32)
    else:
        drawn = tf.where(squared <= 9.0, tf.exp(-0.5 * squared), 0.0)
    drawn = drawn * tf.cast(valid, tf.float32)[..., None, None]
    # Pad one empty person so that frames with no people reduce to zeros, not -inf.
    empty = tf.zeros_like(drawn[:, :1])
    return tf.reduce_max(tf.concat([empty, drawn], axis=1), axis=1)


def _area_downsample(maps: tf.Tensor, heatmap_size: Tuple[int, int], factor: int) -> tf.Tensor:
    if factor == 1:
        return maps
    height, width = heatmap_size
    shape = tf.shape(maps)
    blocks = tf.reshape(maps, [shape[0], NUM_JOINTS, height, factor, width, factor])
    return tf.reduce_mean(blocks, axis=[3, 5])


def _normalise_peak(maps: tf.Tensor, in_view: tf.Tensor) -> tf.Tensor:
    """Divides each [T, 16] channel with a joint in view by its maximum (module docstring)."""
    high = tf.reduce_max(maps, axis=[2, 3], keepdims=True)
    scale = tf.where(in_view[:, :, None, None] & (high > 0), high, 1.0)
    return maps / scale
