"""Clip-consistent augmentation: one random draw per clip, applied to every frame.

Keras's augmentation layers draw per frame, which shakes a clip apart (a different crop and
flip on each frame). Here each clip gets ONE draw from `tf.random.stateless_*` with a
per-clip seed: the crop box, the flip and the colour jitter are the same on all its frames,
and the same seed gives the same draw. Frames are float32 in [0, 255] after augmentation.

Training (`draw_train_augmentation` + `apply_train_augmentation`, or `augment_train_clip`
for decoded frames): a multi-scale random crop in the TSN style (each crop side is one of
`scales` times the short side, the two sides at most `max_distort` scale steps apart, so the
aspect ratio jitters; the position is uniform), resized to the model's input size, a
horizontal flip and, optionally, a modest colour jitter. The paper's image recipe (short side
480, random 450 crop, flip) is the same crop with `scales=(450 / 480,)` and `max_distort=0`:
`paper_image_scales(450, 480)`. The pipeline passes the crop box to
`tf.io.decode_and_crop_jpeg`, so the pixels outside the crop are not even decoded.

Evaluation (`eval_views`): resize the short side, then a centre crop, optionally more crops
and their mirrors ("views"), returned as a leading axis to be folded into the batch; the
per-video average of the logits is `keras_attnpool.metrics.average_per_video`.
"""

from typing import Dict, Sequence, Tuple

import numpy as np
import tensorflow as tf

# TSN's multi-scale crop sides, as fractions of the short side.
MULTISCALE_SCALES = (1.0, 0.875, 0.75, 0.66)
# Colour jitter strengths: brightness delta and hue delta in [0, 1] image units; contrast
# and saturation factors are drawn from [1 - s, 1 + s].
COLOR_JITTER = {"brightness": 0.15, "contrast": 0.15, "saturation": 0.15, "hue": 0.03}


def paper_image_scales(crop_size: int = 450, resize_short: int = 480) -> Tuple[float]:
    """The crop scale of "resize the short side to `resize_short`, random `crop_size` crop"."""
    if not 0 < crop_size <= resize_short:
        raise ValueError(f"crop_size ({crop_size}) must be in (0, resize_short={resize_short}]")
    return (crop_size / resize_short,)


def multiscale_crop_box(height: tf.Tensor, width: tf.Tensor, seed: tf.Tensor,
                        scales: Sequence[float] = MULTISCALE_SCALES,
                        max_distort: int = 1) -> tf.Tensor:
    """A random crop box (y, x, crop_height, crop_width), int32 [4], inside height x width.

    Crop sides are `scales[i] * min(height, width)` and `scales[j] * ...` with
    |i - j| <= max_distort, the pair (i, j) drawn uniformly; the position is uniform.
    """
    if not len(scales) or min(scales) <= 0 or max(scales) > 1:
        raise ValueError(f"scales must be fractions in (0, 1], got {scales!r}")
    if max_distort < 0:
        raise ValueError(f"max_distort must be >= 0, got {max_distort!r}")
    pairs = np.array([(i, j) for i in range(len(scales)) for j in range(len(scales))
                      if abs(i - j) <= max_distort], np.int32)
    pair_seed, y_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    pick = tf.random.stateless_uniform([], pair_seed, 0, len(pairs), dtype=tf.int32)
    height, width = tf.cast(height, tf.int32), tf.cast(width, tf.int32)
    short = tf.cast(tf.minimum(height, width), tf.float32)
    sides = tf.maximum(tf.cast(short * tf.constant(scales, tf.float32), tf.int32), 1)
    crop_h = tf.gather(sides, pairs[:, 0])[pick]
    crop_w = tf.gather(sides, pairs[:, 1])[pick]
    y = _uniform_int(y_seed, height - crop_h + 1)
    x = _uniform_int(x_seed, width - crop_w + 1)
    return tf.stack([y, x, crop_h, crop_w])


def _uniform_int(seed: tf.Tensor, upper: tf.Tensor) -> tf.Tensor:
    """An int in [0, upper) (upper >= 1, a tensor)."""
    u = tf.random.stateless_uniform([], seed, dtype=tf.float32)
    return tf.minimum(tf.cast(u * tf.cast(upper, tf.float32), tf.int32), upper - 1)


def draw_train_augmentation(height: tf.Tensor, width: tf.Tensor, seed: tf.Tensor,
                            scales: Sequence[float] = MULTISCALE_SCALES,
                            max_distort: int = 1) -> Dict[str, tf.Tensor]:
    """The one draw for a clip: {"crop_box": int32 [4], "flip": bool, "color_seed": [2]}."""
    crop_seed, flip_seed, color_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 3))
    flip = tf.random.stateless_uniform([], flip_seed) < 0.5
    return {"crop_box": multiscale_crop_box(height, width, crop_seed, scales, max_distort),
            "flip": flip, "color_seed": color_seed}


def apply_train_augmentation(cropped: tf.Tensor, draw: Dict[str, tf.Tensor],
                             image_size: int, color_jitter: bool = False) -> tf.Tensor:
    """Resize, flip and colour-jitter already-cropped frames [T, h, w, 3] -> float32
    [T, image_size, image_size, 3] in [0, 255]."""
    # Flip first: reversing the (usually uint8) crop moves a quarter of the bytes.
    cropped = tf.cond(draw["flip"], lambda: tf.reverse(cropped, axis=[2]), lambda: cropped)
    # TF's bilinear kernel is about a third faster on float32 than on uint8 input, and the
    # cast costs next to nothing (measured: 0.23 vs 0.37 CPU-ms for 3 crops to 224).
    frames = tf.image.resize(tf.cast(cropped, tf.float32), [image_size, image_size],
                             antialias=False)
    if not color_jitter:
        return frames  # bilinear weights are convex: already within [0, 255]
    return tf.clip_by_value(jitter_colors(frames, draw["color_seed"]), 0.0, 255.0)


def augment_train_clip(frames: tf.Tensor, seed: tf.Tensor, image_size: int,
                       scales: Sequence[float] = MULTISCALE_SCALES, max_distort: int = 1,
                       color_jitter: bool = False) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    """Training augmentation of decoded frames [T, H, W, 3]; returns (frames, draw)."""
    shape = tf.shape(frames)
    draw = draw_train_augmentation(shape[1], shape[2], seed, scales, max_distort)
    y, x, h, w = tf.unstack(draw["crop_box"])
    cropped = frames[:, y:y + h, x:x + w, :]
    return apply_train_augmentation(cropped, draw, image_size, color_jitter), draw


# RGB -> YIQ (NTSC). Hue is an angle in the IQ plane, so a hue shift is a rotation there.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.596, -0.274, -0.322],
                        [0.211, -0.523, 0.312]], np.float32)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)
_LUMA = _RGB_TO_YIQ[0]


def color_twist(saturation: tf.Tensor, hue: tf.Tensor) -> tf.Tensor:
    """The 3x3 RGB matrix of a saturation change (mixing with luma; 0 gives grey) followed
    by a hue shift (rotating I and Q by `hue` turns)."""
    mix = saturation * tf.eye(3) + (1.0 - saturation) * tf.ones([3, 1]) * _LUMA[None, :]
    angle = 2.0 * np.pi * hue
    cos, sin = tf.cos(angle), tf.sin(angle)
    rotate = tf.stack([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])
    return tf.constant(_YIQ_TO_RGB) @ rotate @ tf.constant(_RGB_TO_YIQ) @ mix


def draw_color_jitter(seed: tf.Tensor,
                      strength: Dict[str, float] = COLOR_JITTER) -> Dict[str, tf.Tensor]:
    """One draw of brightness delta (in [0, 1] units), contrast and saturation factors
    and hue shift (in turns), each uniform in its `strength` range."""
    u = tf.random.stateless_uniform([4], seed, -1.0, 1.0)
    return {"brightness": strength["brightness"] * u[0],
            "contrast": 1.0 + strength["contrast"] * u[1],
            "saturation": 1.0 + strength["saturation"] * u[2],
            "hue": strength["hue"] * u[3]}


def jitter_colors(frames: tf.Tensor, seed: tf.Tensor,
                  strength: Dict[str, float] = COLOR_JITTER) -> tf.Tensor:
    """Brightness, contrast, saturation and hue jitter of float frames [T, H, W, 3] in
    [0, 255], with one draw for the whole clip.

    All four are affine in RGB (hue as a rotation in YIQ, the usual fast approximation of an
    HSV hue shift), so they compose into one 3x3 matrix and a per-frame offset: one pass
    over the pixels instead of four (an HSV round trip per op costs more than decoding).
    Contrast scales around each frame's per-channel mean, as `tf.image.adjust_contrast`.
    """
    draw = draw_color_jitter(seed, strength)
    matrix = color_twist(draw["saturation"], draw["hue"])
    c = draw["contrast"]
    # The per-frame mean from every 4th row and column: the same to a fraction of a level,
    # at 1/16 of the cost.
    mean = tf.reduce_mean(frames[..., ::4, ::4, :], axis=[-3, -2], keepdims=True)
    # brightness: x + b; contrast: c (x - m) + m with m the mean after brightness.
    offset = (1.0 - c) * mean + 255.0 * draw["brightness"]
    pixels = tf.reshape(c * frames + offset, [-1, 3])
    return tf.reshape(tf.matmul(pixels, matrix, transpose_b=True), tf.shape(frames))


# Evaluation views: name -> (crop positions, with mirrors). Positions are fractions of the
# free space (y, x): (0.5, 0.5) is the centre crop.
_CENTRE = ((0.5, 0.5),)
_FIVE = ((0.5, 0.5), (0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0))
VIEWS = {
    "center": (_CENTRE, False),
    "center_flip": (_CENTRE, True),
    "three_crop": ("three", False),  # start, centre and end along the long side
    "three_crop_flip": ("three", True),
    "five_crop": (_FIVE, False),
    "ten_crop": (_FIVE, True),
}


def num_views(views: str) -> int:
    positions, flip = _views(views)
    return (3 if positions == "three" else len(positions)) * (2 if flip else 1)


def _views(views: str):
    if views not in VIEWS:
        raise ValueError(f"views must be one of {sorted(VIEWS)}, got {views!r}")
    return VIEWS[views]


def resize_short_side(frames: tf.Tensor, short_side: int) -> tf.Tensor:
    """Resizes [..., H, W, 3] so that min(H, W) == short_side; float32 out."""
    shape = tf.shape(frames)
    h, w = tf.cast(shape[-3], tf.float32), tf.cast(shape[-2], tf.float32)
    scale = short_side / tf.minimum(h, w)
    size = tf.maximum(tf.cast(tf.round(tf.stack([h, w]) * scale), tf.int32), short_side)
    return tf.image.resize(frames, size)


def eval_views(frames: tf.Tensor, crop_size: int, resize_short: int,
               views: str = "center") -> tf.Tensor:
    """Evaluation crops of frames [T, H, W, 3]: float32 [V, T, crop_size, crop_size, 3].

    The short side is resized to `resize_short`, then `num_views(views)` crops are taken
    (the centre crop first, the mirrored crops after the unmirrored ones).
    """
    if crop_size > resize_short:
        raise ValueError(f"crop_size ({crop_size}) must not exceed resize_short "
                         f"({resize_short})")
    positions, flip = _views(views)
    resized = resize_short_side(tf.cast(frames, tf.float32), resize_short)
    shape = tf.shape(resized)
    free_y, free_x = shape[1] - crop_size, shape[2] - crop_size
    if positions == "three":
        positions = ((0.5, 0.5), (0.0, 0.0), (1.0, 1.0))
    crops = []
    for fy, fx in positions:
        y = tf.cast(tf.round(fy * tf.cast(free_y, tf.float32)), tf.int32)
        x = tf.cast(tf.round(fx * tf.cast(free_x, tf.float32)), tf.int32)
        crop = resized[:, y:y + crop_size, x:x + crop_size, :]
        crops.append(tf.ensure_shape(crop, [None, crop_size, crop_size, 3]))
    if flip:
        crops += [tf.reverse(crop, axis=[2]) for crop in crops]
    return tf.stack(crops)
