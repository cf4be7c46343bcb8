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
    return crop_box_from_uniforms(height, width, tf.random.stateless_uniform([3], seed),
                                  scales, max_distort)


def crop_box_from_uniforms(height: tf.Tensor, width: tf.Tensor, u: tf.Tensor,
                           scales: Sequence[float] = MULTISCALE_SCALES,
                           max_distort: int = 1) -> tf.Tensor:
    """`multiscale_crop_box` from three uniforms in [0, 1) (`u[..., :3]`: scale pair, y,
    x); works on a batch: height, width [...], u [..., 3] -> int32 [..., 4]."""
    if not len(scales) or min(scales) <= 0 or max(scales) > 1:
        raise ValueError(f"scales must be fractions in (0, 1], got {scales!r}")
    if max_distort < 0:
        raise ValueError(f"max_distort must be >= 0, got {max_distort!r}")
    pairs = np.array([(i, j) for i in range(len(scales)) for j in range(len(scales))
                      if abs(i - j) <= max_distort], np.int32)
    pick = tf.minimum(tf.cast(u[..., 0] * len(pairs), tf.int32), len(pairs) - 1)
    height, width = tf.cast(height, tf.int32), tf.cast(width, tf.int32)
    short = tf.cast(tf.minimum(height, width), tf.float32)
    # floor(short * scale), at least 1; in float32 as the sides always were.
    sides = tf.maximum(tf.cast(short[..., None] * tf.constant(scales, tf.float32), tf.int32),
                       1)
    crop_h = tf.gather(sides, tf.gather(pairs[:, 0], pick), batch_dims=pick.shape.rank)
    crop_w = tf.gather(sides, tf.gather(pairs[:, 1], pick), batch_dims=pick.shape.rank)
    y = _uniform_int(u[..., 1], height - crop_h + 1)
    x = _uniform_int(u[..., 2], width - crop_w + 1)
    return tf.stack([y, x, crop_h, crop_w], axis=-1)


def _uniform_int(u: tf.Tensor, upper: tf.Tensor) -> tf.Tensor:
    """An int in [0, upper) from a uniform u in [0, 1) (upper >= 1, a tensor)."""
    return tf.minimum(tf.cast(u * tf.cast(upper, tf.float32), tf.int32), upper - 1)


# Uniforms one training draw takes (`draw_from_uniforms`): crop (3), flip (1), colour (4).
NUM_DRAW_UNIFORMS = 8


def draw_train_augmentation(height: tf.Tensor, width: tf.Tensor, seed: tf.Tensor,
                            scales: Sequence[float] = MULTISCALE_SCALES,
                            max_distort: int = 1) -> Dict[str, tf.Tensor]:
    """The one draw for a clip: {"crop_box": int32 [4], "flip": bool, "color": float32
    [4]} (`draw_from_uniforms` with uniforms from `seed`)."""
    u = tf.random.stateless_uniform([NUM_DRAW_UNIFORMS], seed)
    return draw_from_uniforms(height, width, u, scales, max_distort)


def draw_from_uniforms(height: tf.Tensor, width: tf.Tensor, u: tf.Tensor,
                       scales: Sequence[float] = MULTISCALE_SCALES,
                       max_distort: int = 1) -> Dict[str, tf.Tensor]:
    """A clip's draw from `NUM_DRAW_UNIFORMS` uniforms in [0, 1) (or a batch of draws:
    height, width [...], u [..., 8]): the crop box, the flip, and `color`, the colour
    jitter's four uniforms in [-1, 1) (`color_jitter_from_uniforms`)."""
    return {"crop_box": crop_box_from_uniforms(height, width, u[..., :3], scales,
                                               max_distort),
            "flip": u[..., 3] < 0.5, "color": 2.0 * u[..., 4:8] - 1.0}


def apply_train_augmentation(cropped: tf.Tensor, draw: Dict[str, tf.Tensor],
                             image_size: int, color_jitter: bool = False) -> tf.Tensor:
    """Resize, flip and colour-jitter already-cropped frames [T, h, w, 3] -> float32
    [T, image_size, image_size, 3] in [0, 255]."""
    # Flip first: reversing the (usually uint8) crop moves a quarter of the bytes.
    cropped = tf.cond(draw["flip"], lambda: tf.reverse(cropped, axis=[2]), lambda: cropped)
    # TF's bilinear kernel is faster on float32 than on uint8 input, and the cast is cheap
    # next to it.
    frames = tf.image.resize(tf.cast(cropped, tf.float32), [image_size, image_size],
                             antialias=False)
    if not color_jitter:
        return frames  # bilinear weights are convex: already within [0, 255]
    return tf.clip_by_value(apply_color_jitter(frames, color_jitter_from_uniforms(
        draw["color"])), 0.0, 255.0)


def augment_train_clip(frames: tf.Tensor, seed: tf.Tensor, image_size: int,
                       scales: Sequence[float] = MULTISCALE_SCALES, max_distort: int = 1,
                       color_jitter: bool = False) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    """Training augmentation of decoded frames [T, H, W, 3]; returns (frames, draw)."""
    shape = tf.shape(frames)
    draw = draw_train_augmentation(shape[1], shape[2], seed, scales, max_distort)
    y, x, h, w = tf.unstack(draw["crop_box"])
    cropped = frames[:, y:y + h, x:x + w, :]
    return apply_train_augmentation(cropped, draw, image_size, color_jitter), draw


# --- augmentation on the accelerator -------------------------------------------------------
# With `train_dataset(augment_on="device")` the CPU decodes, per clip, a square window of the
# frames that holds the clip's crop, and leaves resampling (and colour jitter) to the
# accelerator: `device_augment` at the start of the training step. Keras recommends the same
# split for its preprocessing layers on a GPU; here the draws stay clip-consistent.

def crop_window(height: tf.Tensor, width: tf.Tensor, crop_box: tf.Tensor) -> tf.Tensor:
    """The square window (y, x, side, side), side = min(height, width), that holds
    `crop_box` (whose sides are at most the short side), centred on it where the frame
    allows: int32 [4] (or [..., 4] for a batch: height, width [...], crop_box [..., 4])."""
    height, width = tf.cast(height, tf.int32), tf.cast(width, tf.int32)
    side = tf.minimum(height, width)
    y, x, h, w = tf.unstack(tf.cast(crop_box, tf.int32), 4, axis=-1)
    # h, w <= side, so the centred window holds the crop, and shifting it back inside the
    # frame keeps it holding the crop.
    window_y = tf.clip_by_value(y + (h - side) // 2, 0, height - side)
    window_x = tf.clip_by_value(x + (w - side) // 2, 0, width - side)
    return tf.stack([window_y, window_x, side, side], axis=-1)


def canvas_box(crop_box: tf.Tensor, window: tf.Tensor, canvas: int,
               flip: tf.Tensor) -> tf.Tensor:
    """The `tf.image.crop_and_resize` box (y1, x1, y2, x2) of `crop_box` on a canvas of
    side `canvas` whose top-left corner holds `window`: float32 [4] (or [..., 4]). The box
    runs from the crop's first pixel centre to its last (corners aligned); x1 > x2
    mirrors the crop."""
    y, x, h, w = tf.unstack(tf.cast(crop_box, tf.float32), 4, axis=-1)
    top, left = tf.unstack(tf.cast(window[..., :2], tf.float32), 2, axis=-1)
    scale = float(max(canvas - 1, 1))
    y1, y2 = (y - top) / scale, (y - top + h - 1.0) / scale
    x1, x2 = (x - left) / scale, (x - left + w - 1.0) / scale
    return tf.stack([y1, tf.where(flip, x2, x1), y2, tf.where(flip, x1, x2)], axis=-1)


# Pixels decoded around a crop for `device_augment`: corner-aligned bilinear sampling at the
# crop's first and last pixel centres can give the next row or column the weight of a
# rounding error, and libjpeg's chroma upsampling at the edge of a decoded region lacks the
# neighbour it uses inside the frame, so the pixel at that edge can differ (by tens of
# levels) from the whole frame's: two pixels keep both away from what is read.
REGION_MARGIN = 2
# libjpeg decodes a region from the block column at or left of its first column (every 16
# px in a 4:2:0 JPEG, every 8 in a 4:4:4 one). A region that starts on such a column is
# decoded straight into its output; any other one row by row into a buffer and copied out
# (TensorFlow's `decode_and_crop_jpeg`), which adds about 5% to the decoding time.
DECODE_COLUMNS = 16


def resampled_region(crop_box: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """The part of `window` to decode for `device_augment` to resample `crop_box` as if
    the whole window had been decoded: the crop and `REGION_MARGIN` pixels around it,
    widened on the left to the `DECODE_COLUMNS` column that libjpeg decodes from anyway
    (where that is inside the window). int32 (y, x, h, w) in frame coordinates, [4] (or
    [..., 4])."""
    y, x, h, w = tf.unstack(tf.cast(crop_box, tf.int32), 4, axis=-1)
    window_y, window_x, side, _ = tf.unstack(tf.cast(window, tf.int32), 4, axis=-1)
    m = REGION_MARGIN
    top = tf.maximum(y - m, window_y)
    left = tf.maximum((x - m) // DECODE_COLUMNS * DECODE_COLUMNS, window_x)
    bottom = tf.minimum(y + h + m, window_y + side)
    right = tf.minimum(x + w + m, window_x + side)
    return tf.stack([top, left, bottom - top, right - left], axis=-1)


def device_augment(inputs: Dict[str, tf.Tensor], image_size: int) -> tf.Tensor:
    """Finishes the training augmentation of an `augment_on="device"` batch on whatever
    device runs it: crop, resize and flip by `tf.image.crop_and_resize`, then the colour
    jitter when the batch carries `color`.

    Args:
        inputs: {"frames": uint8 [B, T, C, C, 3] (or [B, C, C, 3] for images), "boxes":
            float32 [B, 4], optionally "color": float32 [B, 4]}, as the pipeline yields.
        image_size: side of the model input.

    Returns:
        float32 [B, T, image_size, image_size, 3] (or [B, image_size, image_size, 3]) in
        [0, 255].
    """
    frames, boxes = inputs["frames"], inputs["boxes"]
    shape = tf.shape(frames)
    flat = tf.reshape(frames, tf.concat([[-1], shape[-3:]], 0))
    count = tf.shape(flat)[0]
    per_row = count // tf.shape(boxes)[0]  # frames per clip: the same box for all
    out = tf.image.crop_and_resize(tf.cast(flat, tf.float32),
                                   tf.repeat(boxes, per_row, axis=0), tf.range(count),
                                   [image_size, image_size])
    out = tf.reshape(out, tf.concat([shape[:-3], [image_size, image_size, 3]], 0))
    if "color" not in inputs:
        return out  # bilinear weights are convex: already within [0, 255]
    jitter = color_jitter_from_uniforms(inputs["color"])
    return tf.clip_by_value(apply_color_jitter(out, jitter), 0.0, 255.0)


# RGB -> YIQ (NTSC). Hue is an angle in the IQ plane, so a hue shift is a rotation there.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.596, -0.274, -0.322],
                        [0.211, -0.523, 0.312]], np.float32)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)
_LUMA = _RGB_TO_YIQ[0]


def color_twist(saturation: tf.Tensor, hue: tf.Tensor) -> tf.Tensor:
    """The 3x3 RGB matrix of a saturation change (mixing with luma; 0 gives grey) followed
    by a hue shift (rotating I and Q by `hue` turns); [..., 3, 3] for a batch [...]."""
    saturation = tf.convert_to_tensor(saturation, tf.float32)[..., None, None]
    mix = saturation * tf.eye(3) + (1.0 - saturation) * tf.ones([3, 1]) * _LUMA[None, :]
    angle = 2.0 * np.pi * tf.convert_to_tensor(hue, tf.float32)
    cos, sin = tf.cos(angle), tf.sin(angle)
    one, zero = tf.ones_like(cos), tf.zeros_like(cos)
    rotate = tf.stack([tf.stack([one, zero, zero], -1), tf.stack([zero, cos, -sin], -1),
                       tf.stack([zero, sin, cos], -1)], -2)
    return tf.constant(_YIQ_TO_RGB) @ rotate @ tf.constant(_RGB_TO_YIQ) @ mix


def draw_color_jitter(seed: tf.Tensor,
                      strength: Dict[str, float] = COLOR_JITTER) -> Dict[str, tf.Tensor]:
    """One draw of brightness delta (in [0, 1] units), contrast and saturation factors
    and hue shift (in turns), each uniform in its `strength` range."""
    return color_jitter_from_uniforms(tf.random.stateless_uniform([4], seed, -1.0, 1.0),
                                      strength)


def color_jitter_from_uniforms(u: tf.Tensor, strength: Dict[str, float] = COLOR_JITTER
                               ) -> Dict[str, tf.Tensor]:
    """`draw_color_jitter` from four uniforms in [-1, 1) (u [..., 4]: a batch of draws)."""
    return {"brightness": strength["brightness"] * u[..., 0],
            "contrast": 1.0 + strength["contrast"] * u[..., 1],
            "saturation": 1.0 + strength["saturation"] * u[..., 2],
            "hue": strength["hue"] * u[..., 3]}


def jitter_colors(frames: tf.Tensor, seed: tf.Tensor,
                  strength: Dict[str, float] = COLOR_JITTER) -> tf.Tensor:
    """Brightness, contrast, saturation and hue jitter of float frames [T, H, W, 3] in
    [0, 255], with one draw for the whole clip (`draw_color_jitter`, `apply_color_jitter`).
    """
    return apply_color_jitter(frames, draw_color_jitter(seed, strength))


def apply_color_jitter(frames: tf.Tensor, draw: Dict[str, tf.Tensor]) -> tf.Tensor:
    """Applies a colour-jitter draw to float frames [..., H, W, 3] in [0, 255].

    The draw's values are scalars (one clip or image), or have the leading (batch) shape
    of `frames`, one draw per batch row. All four changes are affine in RGB (hue as a
    rotation in YIQ, the usual fast approximation of an HSV hue shift), so they compose
    into one 3x3 matrix and a per-frame offset: one pass over the pixels instead of four
    (and no HSV round trip per op). Contrast scales around each
    frame's per-channel mean, as `tf.image.adjust_contrast`.
    """
    batch_rank = draw["contrast"].shape.rank
    extra = [1] * (frames.shape.rank - batch_rank)

    def per_row(value):  # [batch...] -> [batch..., 1, ..., 1], broadcasting over frames
        return tf.reshape(value, tf.concat([tf.shape(value), extra], 0))
    matrix = color_twist(draw["saturation"], draw["hue"])
    c = per_row(draw["contrast"])
    # The per-frame mean from every 4th row and column: the same to a fraction of a level,
    # at 1/16 of the cost.
    mean = tf.reduce_mean(frames[..., ::4, ::4, :], axis=[-3, -2], keepdims=True)
    # brightness: x + b; contrast: c (x - m) + m with m the mean after brightness.
    offset = (1.0 - c) * mean + 255.0 * per_row(draw["brightness"])
    shape = tf.shape(frames)
    pixels = tf.reshape(c * frames + offset, tf.concat([shape[:batch_rank], [-1, 3]], 0))
    return tf.reshape(tf.matmul(pixels, matrix, transpose_b=True), shape)


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


def crop_at(frames: tf.Tensor, fy: float, fx: float, crop_height: int,
            crop_width: int) -> tf.Tensor:
    """The crop_height x crop_width window of frames [..., H, W, 3] at fractions (fy, fx)
    of the free space: offsets round(f * free), halves to even as `tf.round` does, so
    (0.5, 0.5) is the centre crop. The one crop-position rule: the evaluation views and
    the served centre crop (`keras_attnpool.export.preprocessing`) both take it from here.
    """
    shape = tf.shape(frames)
    free_y, free_x = shape[-3] - crop_height, shape[-2] - crop_width
    y = tf.cast(tf.round(fy * tf.cast(free_y, tf.float32)), tf.int32)
    x = tf.cast(tf.round(fx * tf.cast(free_x, tf.float32)), tf.int32)
    crop = frames[..., y:y + crop_height, x:x + crop_width, :]
    return tf.ensure_shape(crop, frames.shape[:-3] + (crop_height, crop_width, 3))


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
    if positions == "three":
        positions = ((0.5, 0.5), (0.0, 0.0), (1.0, 1.0))
    crops = [crop_at(resized, fy, fx, crop_size, crop_size) for fy, fx in positions]
    if flip:
        crops += [tf.reverse(crop, axis=[2]) for crop in crops]
    return tf.stack(crops)
