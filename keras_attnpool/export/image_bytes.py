"""Served image files -> pixels, each file checked before it is decoded.

`serving_default` takes the bytes of image files from clients, in a batch. Each element is
checked in turn, and a check that fails raises `tf.errors.InvalidArgumentError` naming the
element's index (a batch fails as a whole, as TF Serving answers a request):

1. the format, from the first bytes: JPEG, PNG, GIF (its first frame is served) or BMP;
2. that the file is whole: a JPEG's marker segments must lead to its start of scan, and an
   end-of-image marker must follow; a PNG must hold its IEND chunk. The decoders' own
   errors for a truncated upload do not say which element it was;
3. the size, read from the header (`tf.io.extract_jpeg_shape`, the PNG IHDR chunk, the GIF
   screen descriptor, the BMP info header), at most `max_pixels`: decoding allocates the
   whole image, and the resize float copies of it, before anything else could refuse it.

The messages hold no bytes of the input: TensorFlow writes an assertion's data into the
error text, and bytes that are not UTF-8 there reach a Python client as a
`UnicodeDecodeError` instead of the error.
"""

from typing import Optional, Sequence

import tensorflow as tf

from keras_attnpool.export.preprocessing import resize_and_centre_crop

FORMATS = ("JPEG", "PNG", "GIF", "BMP")
# 8000 x 8000: above the photos of today's phone cameras, below the images whose decoding
# and resizing would take a serving process's memory (`max_image_pixels` at export).
DEFAULT_MAX_PIXELS = 64_000_000
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC, which never change
_JPEG_END = b"\xff\xd9"
_JPEG_START_OF_SCAN = 0xDA
_HEADER_BYTES = 32


def image_format(data: tf.Tensor) -> tf.Tensor:
    """int32 index into FORMATS from a file's first bytes; len(FORMATS) for any other."""
    known = tf.stack([tf.io.is_jpeg(data),
                      tf.equal(tf.strings.substr(data, 0, len(_PNG_SIGNATURE)), _PNG_SIGNATURE),
                      tf.equal(tf.strings.substr(data, 0, 3), b"GIF"),
                      tf.equal(tf.strings.substr(data, 0, 2), b"BM"),
                      tf.constant(True)])
    return tf.cast(tf.argmax(tf.cast(known, tf.int32)), tf.int32)


def _header(data: tf.Tensor) -> tf.Tensor:
    """The first `_HEADER_BYTES` bytes as int64, zero-padded when the file is shorter."""
    padded = tf.strings.join([tf.strings.substr(data, 0, _HEADER_BYTES),
                              b"\0" * _HEADER_BYTES])
    raw = tf.io.decode_raw(tf.strings.substr(padded, 0, _HEADER_BYTES), tf.uint8)
    return tf.cast(raw, tf.int64)


def _number(header: tf.Tensor, offset: int, length: int, little_endian: bool) -> tf.Tensor:
    order = range(length) if little_endian else reversed(range(length))
    return sum(header[offset + i] * (256 ** k) for k, i in enumerate(order))


def _header_size(data: tf.Tensor, kind: tf.Tensor, whole: tf.Tensor) -> tf.Tensor:
    """int64 [height, width] read from the header of a file of format `kind`; a JPEG's
    header is parsed only when `whole` (the control dependency on the completeness check
    alone does not keep the parser from running first inside the map's loop)."""
    header = _header(data)

    def jpeg():
        return tf.cond(whole, lambda: tf.cast(tf.io.extract_jpeg_shape(data)[:2], tf.int64),
                       lambda: tf.zeros([2], tf.int64))

    def png():  # IHDR: width, height, big-endian
        return tf.stack([_number(header, 20, 4, False), _number(header, 16, 4, False)])

    def gif():  # logical screen: width, height, little-endian
        return tf.stack([_number(header, 8, 2, True), _number(header, 6, 2, True)])

    def bmp():  # BITMAPINFOHEADER: width, height as signed int32 (height < 0: top-down)
        signed = [_number(header, offset, 4, True) for offset in (22, 18)]
        return tf.abs(tf.stack([tf.where(v >= 2 ** 31, v - 2 ** 32, v) for v in signed]))

    return tf.switch_case(kind, [jpeg, png, gif, bmp])


def _jpeg_scan_start(data: tf.Tensor) -> tf.Tensor:
    """Offset of the first start-of-scan marker, walking the marker segments from the start
    of image by their lengths (so markers inside metadata, such as an EXIF thumbnail's,
    are skipped); -1 when the segments break off or run past the end."""
    size = tf.strings.length(data)

    def body(position, state):
        b = tf.cast(tf.io.decode_raw(tf.strings.substr(data, position, 4), tf.uint8), tf.int32)
        marker = b[1]
        fill = tf.equal(marker, 0xFF)
        standalone = ((marker >= 0xD0) & (marker <= 0xD8)) | tf.equal(marker, 0x01)
        length = b[2] * 256 + b[3]
        broken = tf.not_equal(b[0], 0xFF) | (~fill & ~standalone & (length < 2))
        state = tf.where(broken, 2, tf.where(tf.equal(marker, _JPEG_START_OF_SCAN), 1, 0))
        step = tf.where(fill, 1, tf.where(standalone, 2, 2 + length))
        return position + tf.where(tf.equal(state, 0), step, 0), state

    position, state = tf.while_loop(
        lambda position, state: tf.equal(state, 0) & (position + 4 <= size),
        body, [tf.constant(2), tf.constant(0)])
    return tf.where(tf.equal(state, 1), position, -1)


def _contains(data: tf.Tensor, marker: bytes) -> tf.Tensor:
    return tf.size(tf.strings.split(data, sep=marker, maxsplit=1)) > 1


def _is_whole(data: tf.Tensor, kind: tf.Tensor) -> tf.Tensor:
    def jpeg():
        start = _jpeg_scan_start(data)
        return (start >= 0) & _contains(
            tf.strings.substr(data, tf.maximum(start, 0), tf.strings.length(data)), _JPEG_END)

    def png():
        return _contains(data, _PNG_END)

    def other():  # GIF, BMP: left to the decoder
        return tf.constant(True)

    return tf.switch_case(kind, [jpeg, png, other, other])


def check_image(data: tf.Tensor, index: tf.Tensor, max_pixels: int) -> tf.Operation:
    """The checks of the module docstring for one element; a no-op group when it passes."""
    num_bytes = tf.strings.length(data)
    kind = image_format(data)
    known = tf.debugging.Assert(
        kind < len(FORMATS),
        ["image_bytes: element", index, f"is not a {', '.join(FORMATS[:-1])} or "
         f"{FORMATS[-1]} image (empty, or another format); send the bytes of such a file "
         "(REST: {\"b64\": base64 of the file}). Its size in bytes:", num_bytes],
        name="check_image_format")
    with tf.control_dependencies([known]):
        kind = tf.minimum(kind, len(FORMATS) - 1)
        name = tf.gather(tf.constant(FORMATS), kind)
        is_whole = _is_whole(data, kind)
        whole = tf.debugging.Assert(
            is_whole,
            ["image_bytes: element", index, "is an incomplete", name, "file (truncated: "
             "its end marker is missing); send the whole file. Its size in bytes:",
             num_bytes], name="check_image_whole")
    with tf.control_dependencies([whole]):
        height_width = _header_size(data, kind, is_whole)
        small_enough = tf.debugging.Assert(
            tf.reduce_prod(height_width) <= max_pixels,
            ["image_bytes: element", index, "is a", name, "of (height, width)", height_width,
             f"pixels, more than the {max_pixels} pixels this model decodes (max_image_pixels"
             ", set at export); send a smaller image: the model sees it resized to a few "
             "hundred pixels anyway."], name="check_image_size")
    return tf.group(known, whole, small_enough)


def decode_and_resize(image_bytes: tf.Tensor, size: Sequence[int],
                      resize_short: Optional[int] = None,
                      prepared_short_side: Optional[int] = None,
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> tf.Tensor:
    """Image files (B,) of any size -> float32 (B, height, width, 3) RGB in [0, 255],
    each checked (module docstring), decoded, then resized and centre-cropped
    (`preprocessing.resize_and_centre_crop`)."""
    height, width = int(size[0]), int(size[1])

    def one(index):
        data = image_bytes[index]
        with tf.control_dependencies([check_image(data, index, max_pixels)]):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
        return resize_and_centre_crop(image, (height, width), resize_short,
                                      prepared_short_side)

    count = tf.shape(image_bytes)[0]
    return tf.map_fn(one, tf.range(count),
                     fn_output_signature=tf.TensorSpec((height, width, 3), tf.float32))
