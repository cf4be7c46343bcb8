"""Stored frames (`records.stored_frame`): TensorFlow's own reader finds a TFRecord record in
each, decoders see the JPEG it was, and records of format 1 (plain JPEG frames) give the
same batches as today's records, read whole or through their frame index."""

import io
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402
from test_frame_index import noisy_frame  # noqa: E402
from test_pipeline import jpeg, train  # noqa: E402

from keras_attnpool.data.input import pipeline, sources  # noqa: E402
from keras_attnpool.data.records import frame_index, stored_frame  # noqa: E402
from keras_attnpool.data.records.schema import encode_example, shard_name  # noqa: E402
from keras_attnpool.data.records.tfrecord import write_tfrecord  # noqa: E402


def _read_at(path, position, buffer_size=0):
    """What TensorFlow's TFRecordDatasetV2 yields when started at `position` of `path`,
    with errors dropped (as `indexed.read_frames` reads)."""
    def read(p):
        handle = tf.raw_ops.TFRecordDatasetV2(
            filenames=[path], compression_type="", buffer_size=tf.constant(buffer_size,
                                                                           tf.int64),
            byte_offsets=[p])
        records = tf.data.experimental.from_variant(handle, tf.TensorSpec([], tf.string))
        return records.ignore_errors().batch(100).get_single_element()
    return tf.function(read)(tf.constant(position, tf.int64)).numpy().tolist()


def test_tensorflow_reads_the_jpeg_at_the_record_offset(tmp_path):
    jpegs = [noisy_frame(s) for s in range(3)]
    stored = [stored_frame.store(j) for j in jpegs]
    path = str(tmp_path / "frames")
    with open(path, "wb") as f:  # stored frames back to back, after some other bytes
        f.write(b"\x0a\x07 other")
        f.write(b"".join(stored))
    start = len(b"\x0a\x07 other")
    for j, s in zip(jpegs, stored):
        # One record, then the guard stops the read; its data is the JPEG minus its start
        # marker, which jpeg_of puts back.
        for buffer_size in (0, 1 << 16):
            got = _read_at(path, start + stored_frame.RECORD_OFFSET, buffer_size)
            assert got == [j[2:]]
        assert stored_frame.jpeg_of(got[0]) == j
        start += len(s)
    assert len(stored[0]) == len(jpegs[0]) + stored_frame.OVERHEAD


def test_decoders_see_the_jpeg_it_was():
    image = np.random.default_rng(3).integers(0, 256, (20, 28, 3))
    plain = jpeg(image)
    stored = stored_frame.store(plain)
    assert stored != plain and stored.startswith(b"\xff\xd8")
    np.testing.assert_array_equal(tf.io.decode_jpeg(stored), tf.io.decode_jpeg(plain))
    np.testing.assert_array_equal(tf.io.decode_and_crop_jpeg(stored, [2, 3, 10, 12]),
                                  tf.io.decode_and_crop_jpeg(plain, [2, 3, 10, 12]))
    assert tf.io.extract_jpeg_shape(stored).numpy().tolist() == [20, 28, 3]
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(stored))),
                                  np.asarray(Image.open(io.BytesIO(plain))))


def test_store_is_idempotent_and_checks_its_input():
    plain = noisy_frame(1)
    stored = stored_frame.store(plain)
    assert stored_frame.store(stored) == stored
    assert stored_frame.is_stored(stored) and not stored_frame.is_stored(plain)
    damaged = bytearray(stored)
    damaged[len(damaged) // 2] ^= 1
    assert not stored_frame.is_stored(bytes(damaged))
    with pytest.raises(ValueError, match="must be a JPEG"):
        stored_frame.store(b"GIF89a")


def _format_1_record(video_id, frames, label, keypoints, height, width):
    """A record as format 1 wrote it: plain JPEG frames, built with TensorFlow's classes."""
    def feature(kind, values):
        return tf.train.Feature(**{kind: {"bytes_list": tf.train.BytesList,
                                          "float_list": tf.train.FloatList,
                                          "int64_list": tf.train.Int64List}[kind](
                                              value=values)})
    return tf.train.SequenceExample(
        context=tf.train.Features(feature={
            "video_id": feature("bytes_list", [video_id.encode()]),
            "label": feature("int64_list", [label]), "labels": feature("float_list", []),
            "num_frames": feature("int64_list", [len(frames)]),
            "fps": feature("float_list", [25.0]), "height": feature("int64_list", [height]),
            "width": feature("int64_list", [width])}),
        feature_lists=tf.train.FeatureLists(feature_list={
            "frames": tf.train.FeatureList(feature=[feature("bytes_list", [f])
                                                    for f in frames]),
            "keypoints": tf.train.FeatureList(feature=[
                feature("float_list", [] if k is None else k.ravel().tolist())
                for k in keypoints])})).SerializeToString()


def _both_formats(tmp_path, samples, shards=2):
    """The same samples as format-1 shards (no index) and as today's (with indexes)."""
    old, new = tmp_path / "format1", tmp_path / "format2"
    old.mkdir(), new.mkdir()
    names = [shard_name("train", i, shards) for i in range(shards)]
    for i, name in enumerate(names):
        mine = samples[i::shards]
        write_tfrecord(str(old / name), [_format_1_record(*s) for s in mine])
        write_tfrecord(str(new / name), [encode_example(
            s[0], s[1], label=s[2], fps=25.0, height=s[4], width=s[5], keypoints=s[3])
            for s in mine])
        frame_index.write_index(str(new / name))
    return [str(old / n) for n in names], [str(new / n) for n in names]


def _videos(n=6):
    out = []
    for v in range(n):
        frames = [noisy_frame(100 * v + t) for t in range(4 + v)]
        keypoints = [np.full((1, 16, 3), [3.0 + t, 4.0, 1.0], np.float32) for t in
                     range(len(frames))]
        out.append((f"v{v}", frames, v % 3, keypoints, 24, 32))
    return out


def _assert_same(a, b):
    tf.nest.map_structure(lambda x, y: np.testing.assert_array_equal(x, y), a, b)


@pytest.mark.parametrize("mode", ["video", "video_keypoints", "images", "device"])
def test_format_1_records_give_the_same_batches(tmp_path, mode):
    samples = _videos()
    if mode == "images":
        samples = [(v, f[:1], y, k[:1], h, w) for v, f, y, k, h, w in samples]
    old, new = _both_formats(tmp_path, samples)
    kwargs = {"video": dict(color_jitter=True),
              "video_keypoints": dict(with_keypoints=True, heatmap_size=4),
              "images": dict(num_segments=1, image_mode=True),
              "device": dict(augment_on="device", canvas_size=24)}[mode]
    assert isinstance(sources.record_source(new), sources.IndexedShards)
    # (Indexes held in memory are shuffled as a whole: another order by design.)
    streams = [train(old, **kwargs), train(new, use_index=False, **kwargs),
               train(new, use_index=True, index_in_memory=False, **kwargs)]
    reference = list(streams[0].take(4))
    for stream in streams[1:]:
        for a, b in zip(reference, stream.take(4)):
            _assert_same(a, b)
    if mode == "video":
        evals = [list(pipeline.eval_dataset(files, image_size=16, batch_size=2,
                                            test_frames=3, views="three_crop_flip",
                                            use_index=use))
                 for files, use in ((old, None), (new, True), (new, False))]
        assert len(evals[0]) == 3
        _assert_same(evals[0], evals[1])
        _assert_same(evals[0], evals[2])


def test_a_format_1_index_is_read_as_whole_records(tmp_path, caplog):
    old, _ = _both_formats(tmp_path, _videos(2), shards=1)
    # Format 1's index: positions of the plain JPEGs, which only a Python read could use.
    entry = tf.train.SequenceExample.FromString(
        _format_1_record("v0", [b"\xff\xd8a"], 0, [None], 8, 8))
    entry.context.feature["frame_offsets"].int64_list.value[:] = [40]
    entry.context.feature["frame_lengths"].int64_list.value[:] = [3]
    del entry.feature_lists.feature_list["frames"]
    write_tfrecord(frame_index.index_path(old[0]), [entry.SerializeToString()] * 2)
    with caplog.at_level("WARNING"):
        assert isinstance(sources.record_source(old), sources.WholeRecords)
    assert "format 1" in caplog.text and "--overwrite" in caplog.text
    with pytest.raises(ValueError, match="format 1"):
        sources.record_source(old, use_index=True)
    with pytest.raises(ValueError, match="not in their stored form"):
        frame_index.write_index(old[0])
