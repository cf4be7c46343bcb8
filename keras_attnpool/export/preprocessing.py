"""In-graph preprocessing for exported models: decode, resize, centre crop.

Served models see images of any size. As at evaluation, each image is resized so that its
short side is `resize_short` (default: the model's input size; evaluation pipelines that
resize to e.g. 256 before a 224 crop pass that) and covers the input size, then the centre
(height, width) window is kept. Pixels stay float32 RGB in [0, 255]: the backbone's own
normalisation is inside the Keras model.

The resize is bilinear with antialiasing: served images can be far larger than the model's
input (a phone photo), and training frames were shrunk the same way (PIL's bilinear, which
antialiases, when records were prepared). At the input size itself it is the identity.
"""

from typing import Optional, Sequence

import tensorflow as tf

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def resize_and_centre_crop(images: tf.Tensor, size: Sequence[int],
                           resize_short: Optional[int] = None) -> tf.Tensor:
    """Resizes the short side to `resize_short` (covering `size`), then crops the centre.

    Args:
        images: (B, h, w, 3) or (h, w, 3), any numeric dtype, RGB in [0, 255].
        size: (height, width) of the model's input.
        resize_short: short side before cropping; None: just cover `size` (for a square
            input, the short side becomes the input size).

    Returns:
        float32 tensor of the same rank with spatial size `size`. An image already of that
        size is returned unchanged.
    """
    height, width = int(size[0]), int(size[1])
    images = tf.cast(images, tf.float32)
    shape = tf.shape(images)
    in_height = tf.cast(shape[-3], tf.float32)
    in_width = tf.cast(shape[-2], tf.float32)
    scale = tf.maximum(height / in_height, width / in_width)
    if resize_short:
        scale = tf.maximum(scale, resize_short / tf.minimum(in_height, in_width))
    # max(): rounding must never leave the image a pixel short of the crop.
    new_height = tf.maximum(height, tf.cast(tf.round(in_height * scale), tf.int32))
    new_width = tf.maximum(width, tf.cast(tf.round(in_width * scale), tf.int32))
    resized = tf.image.resize(images, tf.stack([new_height, new_width]), method="bilinear",
                              antialias=True)
    top = (new_height - height) // 2
    left = (new_width - width) // 2
    cropped = resized[..., top:top + height, left:left + width, :]
    return tf.ensure_shape(cropped, images.shape[:-3] + (height, width, 3))


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


def _check_image_format(data: tf.Tensor, index: tf.Tensor) -> tf.Operation:
    """An InvalidArgument naming the element when it is neither JPEG nor PNG."""
    is_png = tf.equal(tf.strings.substr(data, 0, len(_PNG_SIGNATURE)), _PNG_SIGNATURE)
    return tf.debugging.Assert(
        tf.logical_or(tf.io.is_jpeg(data), is_png),
        ["image_bytes: element", index,
         "is not a JPEG or PNG image (empty, truncated at the start, or another format); "
         "send the raw bytes of a .jpg or .png file (REST: {\"b64\": base64 of the file}). "
         "Its first bytes:", tf.strings.substr(data, 0, 8)],
        name="check_image_bytes",
    )


def decode_and_resize(image_bytes: tf.Tensor, size: Sequence[int],
                      resize_short: Optional[int] = None) -> tf.Tensor:
    """JPEG or PNG bytes (B,) of any size -> float32 (B, height, width, 3) RGB in [0, 255].

    A corrupt element raises `tf.errors.InvalidArgumentError`: the format check names the
    element's index; a damaged body fails in the decoder ("Invalid JPEG data", "Invalid PNG
    data").
    """
    height, width = int(size[0]), int(size[1])

    def one(index):
        data = image_bytes[index]
        with tf.control_dependencies([_check_image_format(data, index)]):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
        return resize_and_centre_crop(image, (height, width), resize_short)

    count = tf.shape(image_bytes)[0]
    return tf.map_fn(one, tf.range(count),
                     fn_output_signature=tf.TensorSpec((height, width, 3), tf.float32))
