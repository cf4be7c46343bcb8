"""In-graph preprocessing for exported models: the evaluation's resize and centre crop.

Served models see images of any size and must see what the evaluation saw. The evaluated
pixels went through two resizes:

1. `prepare` stored every frame with its short side shrunk to the records' `short_side`
   (never enlarged), with an antialiasing filter (PIL's bilinear for images, swscale's area
   filter for videos);
2. the evaluation (`augment.eval_views`) resized the stored frame's short side to
   `resize_short` with plain bilinear interpolation (no antialiasing) and took the centre
   crop (`augment.crop_at`).

Serving does the same two steps. Step 1 is the only antialiased one, and only for an image
whose short side is above the records' (a phone photo): without it a large photo is
sampled at a few pixels per output pixel, and its fine texture aliases into patterns that
the stored frames never held. Step 2 calls the evaluation's own functions, so a frame taken
from the records is served exactly as it was evaluated. Pixels stay float32 RGB in
[0, 255]: the backbone's own normalisation is inside the Keras model.
"""

from typing import Optional, Sequence

import tensorflow as tf

from keras_attnpool.data.input import augment


def served_short_side(size: Sequence[int], resize_short: Optional[int] = None) -> int:
    """The short side images are resized to before the centre crop of `size` (h, w).

    `resize_short` (None: the input size); a non-square input raises it to its long side,
    so that the crop fits whatever the image's orientation.
    """
    return max(int(resize_short or 0), *(int(side) for side in size))


def shrink_like_prepare(images: tf.Tensor, short_side: int) -> tf.Tensor:
    """float32 images [..., h, w, 3], short side shrunk to `short_side` with antialiasing
    (bilinear, as `prepare` stored the records' frames: the long side rounded, never
    enlarged); images not larger are returned unchanged."""
    shape = tf.shape(images)
    height, width = shape[-3], shape[-2]
    short = tf.minimum(height, width)

    def shrink():
        scale = short_side / tf.cast(short, tf.float32)
        size = tf.cast(tf.round(tf.cast(tf.stack([height, width]), tf.float32) * scale),
                       tf.int32)
        size = tf.where(tf.stack([height, width]) == short, short_side, tf.maximum(size, 1))
        return tf.image.resize(images, size, method="bilinear", antialias=True)

    return tf.cond(short > short_side, shrink, lambda: images)


def resize_and_centre_crop(images: tf.Tensor, size: Sequence[int],
                           resize_short: Optional[int] = None,
                           prepared_short_side: Optional[int] = None) -> tf.Tensor:
    """The evaluation's centre crop of images of any size (see the module docstring).

    Args:
        images: (B, h, w, 3) or (h, w, 3), any numeric dtype, RGB in [0, 255].
        size: (height, width) of the model's input.
        resize_short: the evaluation's short side before cropping (None: the input size).
        prepared_short_side: the records' stored short side; a larger image is first
            shrunk to it with antialiasing, as `prepare` did. None: the served short side
            itself (a larger image is shrunk straight to it, antialiased).

    Returns:
        float32 tensor of the same rank with spatial size `size`. An image already of that
        size is returned unchanged.
    """
    height, width = int(size[0]), int(size[1])
    short_side = served_short_side(size, resize_short)
    images = shrink_like_prepare(tf.cast(images, tf.float32),
                                 int(prepared_short_side or short_side))
    resized = augment.resize_short_side(images, short_side)
    return augment.crop_at(resized, 0.5, 0.5, height, width)


def check_not_empty(tensor: tf.Tensor, name: str) -> tf.Tensor:
    """`tensor` unchanged, after an InvalidArgument naming `name` if any axis is empty.

    An empty batch or a 0-pixel image would otherwise fail deep inside the network.
    """
    check = tf.debugging.Assert(
        tf.reduce_all(tf.shape(tensor) > 0),
        [f"{name}: every axis must be non-empty (at least one image, frame and pixel); got "
         "shape", tf.shape(tensor)], name=f"check_{name}_not_empty")
    with tf.control_dependencies([check]):
        return tf.identity(tensor)
