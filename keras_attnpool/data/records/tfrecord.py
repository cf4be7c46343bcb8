"""The TFRecord file format, written and read without TensorFlow.

`prepare` writes every shard and frame index through here, so that preparing a dataset
never loads TensorFlow (its parent process included); the pipelines read the same files
with `tf.data.TFRecordDataset`. A file is a sequence of records, each framed as

    uint64 length   little-endian
    uint32 masked CRC-32C of the length bytes
    byte   data[length]
    uint32 masked CRC-32C of the data

(the masking is TensorFlow's: rotate right by 15 bits, add 0xa282ead8). Files are
uncompressed. `read_tfrecord` checks both checksums and names the file and the byte offset
of a record that fails them, which TensorFlow's reader does not name.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO, Iterable, Iterator, Sequence

import google_crc32c

HEADER_BYTES, FOOTER_BYTES = 12, 4
_MASK_DELTA = 0xA282EAD8


class CorruptRecordError(ValueError):
    """A record of a TFRecord file whose framing or checksum is wrong."""


def shard_name(split: str, index: int, count: int) -> str:
    """A shard's file name (`records.schema`)."""
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """One record as it is stored."""
    length = struct.pack("<Q", len(data))
    return b"".join([length, struct.pack("<I", masked_crc(length)), data,
                     struct.pack("<I", masked_crc(data))])


def write_tfrecord(path: str, records: Iterable[bytes]) -> None:
    """Writes serialised records to an uncompressed TFRecord file (shards and indexes)."""
    with open(os.fspath(path), "wb") as f:
        for record in records:
            f.write(frame(record))


def data_offsets(record_lengths: Iterable[int]) -> Iterator[int]:
    """Where the data of each record of a TFRecord file starts, from the records' lengths."""
    position = 0
    for length in record_lengths:
        yield position + HEADER_BYTES
        position += HEADER_BYTES + length + FOOTER_BYTES


def _corrupt(path: str, offset: int, what: str) -> CorruptRecordError:
    return CorruptRecordError(
        f"{path}: corrupted record at byte {offset} ({what}); the file was damaged after "
        "it was written: prepare it again (training/prepare.py --overwrite)")


def _read_record(f: BinaryIO, path: str, offset: int) -> bytes | None:
    """The record starting at `offset` (the file positioned there), checked; None at the
    end of the file."""
    header = f.read(HEADER_BYTES)
    if not header:
        return None
    if len(header) < HEADER_BYTES:
        raise _corrupt(path, offset, "the file ends inside a record's header")
    length_bytes, length_crc = header[:8], struct.unpack("<I", header[8:])[0]
    if masked_crc(length_bytes) != length_crc:
        raise _corrupt(path, offset, "its length fails its checksum")
    (length,) = struct.unpack("<Q", length_bytes)
    data = f.read(length)
    footer = f.read(FOOTER_BYTES)
    if len(data) < length or len(footer) < FOOTER_BYTES:
        raise _corrupt(path, offset, "the file ends inside the record")
    if masked_crc(data) != struct.unpack("<I", footer)[0]:
        raise _corrupt(path, offset, "its data fail their checksum")
    return data


def read_tfrecord(path: str) -> Iterator[bytes]:
    """The records of a TFRecord file, each checked against its checksums.

    Raises:
        CorruptRecordError: naming the file and the byte offset of the first bad record.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        offset = 0
        while (data := _read_record(f, path, offset)) is not None:
            yield data
            offset += HEADER_BYTES + len(data) + FOOTER_BYTES


def first_corrupt_file(paths: Sequence[str]) -> CorruptRecordError | None:
    """The error of the first of `paths` that holds a corrupted record, or None when every
    record of every file passes its checksums (the files are read whole)."""
    for path in paths:
        try:
            for _ in read_tfrecord(path):
                pass
        except CorruptRecordError as error:
            return error
    return None
