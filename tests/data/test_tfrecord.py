"""The TFRecord files prepare writes without TensorFlow are TensorFlow's, byte for byte."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_attnpool.data.records import tfrecord  # noqa: E402

RECORDS = [b"", b"x", bytes(range(256)) * 3, np.random.default_rng(0).bytes(70_000)]


def test_written_bytes_are_tensorflows(tmp_path):
    ours, theirs = tmp_path / "ours.tfrecord", tmp_path / "theirs.tfrecord"
    tfrecord.write_tfrecord(str(ours), RECORDS)
    with tf.io.TFRecordWriter(str(theirs)) as writer:
        for record in RECORDS:
            writer.write(record)
    assert ours.read_bytes() == theirs.read_bytes()
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(ours))] == RECORDS
    assert list(tfrecord.read_tfrecord(str(theirs))) == RECORDS


def test_data_offsets_point_at_each_records_data(tmp_path):
    path = tmp_path / "a.tfrecord"
    tfrecord.write_tfrecord(str(path), RECORDS)
    data = path.read_bytes()
    for record, start in zip(RECORDS, tfrecord.data_offsets(map(len, RECORDS))):
        assert data[start:start + len(record)] == record


@pytest.mark.parametrize("damage, what", [
    (lambda b: b[:-2], "the file ends inside the record"),
    (lambda b: b[:len(b) - 5], "the file ends inside the record"),
    (lambda b: b + b"\0" * 5, "the file ends inside a record's header"),
])
def test_truncated_or_padded_files_name_file_and_offset(tmp_path, damage, what):
    path = tmp_path / "a.tfrecord"
    tfrecord.write_tfrecord(str(path), RECORDS)
    path.write_bytes(damage(path.read_bytes()))
    last = sum(12 + len(r) + 4 for r in RECORDS[:-1])
    at = last if what != "the file ends inside a record's header" else last + 12 + 70_000 + 4
    with pytest.raises(tfrecord.CorruptRecordError,
                       match=f"^{path}: corrupted record at byte {at} \\({what}\\)"):
        list(tfrecord.read_tfrecord(str(path)))


def test_a_flipped_byte_is_found_in_the_right_file(tmp_path):
    files = [tmp_path / f"{i}.tfrecord" for i in range(3)]
    for path in files:
        tfrecord.write_tfrecord(str(path), RECORDS)
    assert tfrecord.first_corrupt_file([str(f) for f in files]) is None
    data = bytearray(files[1].read_bytes())
    start = (12 + 4) * 2 + 1  # the third record's: after records of 0 and 1 bytes
    data[start + 12 + len(RECORDS[2]) // 2] ^= 0x40
    files[1].write_bytes(bytes(data))
    error = tfrecord.first_corrupt_file([str(f) for f in files])
    assert str(error).startswith(f"{files[1]}: corrupted record at byte {start} (its data "
                                 "fail their checksum)")
    # TensorFlow's own reader agrees that the file is damaged (and names no file).
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset(str(files[1])))
