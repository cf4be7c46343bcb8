"""How a frame's JPEG is stored in a record: as a JPEG that is also a TFRecord record.

Training reads only the sampled frames of a clip, at the byte positions its shard's frame
index gives (`frame_index`). TensorFlow's one reader that starts at a given byte position
is `TFRecordDataset` with `byte_offsets` (the raw op `TFRecordDatasetV2`), and it reads
TFRecord records. So a stored frame carries a record's framing where JPEG decoders skip it:

    FF D8 FF FE 00 0E    the JPEG's start-of-image marker, then a 12-byte comment segment
                         holding a TFRecord header (uint64 length, uint32 masked CRC-32C)
                         <- the record starts here: RECORD_OFFSET
    the rest of the JPEG (`length` bytes: its second marker .. its end-of-image marker)
    uint32               masked CRC-32C of that rest: the record's footer
    GUARD                12 bytes after the end of the image: a header whose checksum fails

Read at RECORD_OFFSET, the record's data is the JPEG without its start marker (`jpeg_of`,
and `input.indexed.read_frames` in TensorFlow, put it back), checked against its CRC.
Decoders (libjpeg, Pillow) read a stored frame as the JPEG it was: a comment is skipped and
nothing after the end-of-image marker is read, so the pixels are the same.

The guard ends a read started at a frame: the reader's next record fails its checksum,
and TFRecordDataset then moves on to its next file (which `ignore_errors` lets it do). One
dataset so reads the frames at many positions, each position given as a file of its own.
A stored frame takes `OVERHEAD` bytes more than its JPEG.
"""

from __future__ import annotations

import struct

from keras_attnpool.data.records.tfrecord import FOOTER_BYTES, HEADER_BYTES, masked_crc

JPEG_START = b"\xff\xd8"
_COMMENT = b"\xff\xfe" + struct.pack(">H", 2 + HEADER_BYTES)
RECORD_OFFSET = len(JPEG_START) + len(_COMMENT)
GUARD = bytes(8) + struct.pack("<I", masked_crc(bytes(8)) ^ 0xFFFFFFFF)
OVERHEAD = len(_COMMENT) + HEADER_BYTES + FOOTER_BYTES + len(GUARD)


def store(jpeg: bytes) -> bytes:
    """The stored form of a JPEG (unchanged if it is stored already)."""
    if is_stored(jpeg):
        return jpeg
    if not jpeg.startswith(JPEG_START):
        raise ValueError(f"a frame must be a JPEG (starts with {jpeg[:4]!r})")
    rest = jpeg[len(JPEG_START):]
    length = struct.pack("<Q", len(rest))
    return b"".join([JPEG_START, _COMMENT, length, struct.pack("<I", masked_crc(length)),
                     rest, struct.pack("<I", masked_crc(rest)), GUARD])


def is_stored(frame: bytes) -> bool:
    """Whether `frame` is in the stored form (its framing and both checksums hold)."""
    if len(frame) < OVERHEAD + len(JPEG_START) or not frame.startswith(JPEG_START + _COMMENT):
        return False
    header = frame[RECORD_OFFSET:RECORD_OFFSET + HEADER_BYTES]
    (length,) = struct.unpack("<Q", header[:8])
    start = RECORD_OFFSET + HEADER_BYTES
    if struct.unpack("<I", header[8:])[0] != masked_crc(header[:8]) or \
            start + length + FOOTER_BYTES + len(GUARD) != len(frame):
        return False
    footer = frame[start + length:start + length + FOOTER_BYTES]
    return struct.unpack("<I", footer)[0] == masked_crc(frame[start:start + length])


def jpeg_of(data: bytes) -> bytes:
    """The JPEG of a stored frame, from the data of the record read at RECORD_OFFSET."""
    return JPEG_START + data
