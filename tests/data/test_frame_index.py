"""Frame indexes: entries point at each stored frame's record in the shard, the pipelines
read only the sampled bytes through them, and a stale index is reported."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from test_pipeline import identify, jpeg, train, write_shards  # noqa: E402

from keras_attnpool.data.input import pipeline, sampling, sources  # noqa: E402
from keras_attnpool.data.input.errors import input_error_message  # noqa: E402
from keras_attnpool.data.input.train import batch_uniforms  # noqa: E402
from keras_attnpool.data.input import indexed  # noqa: E402
from keras_attnpool.data.records import frame_index, stored_frame  # noqa: E402
from keras_attnpool.data.records.schema import parse_example  # noqa: E402


def noisy_frame(seed, height=24, width=32):
    """A JPEG whose size differs from frame to frame (offsets are not multiples)."""
    rng = np.random.default_rng(seed)
    return jpeg(rng.integers(0, 256, (height, width, 3)))


def mixed_videos():
    """Clips of several lengths with keypoints on some frames and odd ids."""
    videos = []
    for v, n in enumerate([4, 1, 7, 3, 5]):
        keypoints = [np.full((v % 3, 16, 3), t + 0.5, np.float32) if t % 2 else None
                     for t in range(n)]
        videos.append({"jpeg_frames": [noisy_frame(10 * v + t) for t in range(n)],
                       "label": v, "keypoints": keypoints, "fps": 25.0})
    return videos


def test_entries_point_at_the_record_of_every_stored_frame(tmp_path):
    files = write_shards(tmp_path, mixed_videos(), shards=2, index=True)
    for shard in files:
        data = open(shard, "rb").read()
        records = list(tf.data.TFRecordDataset(shard))
        entries = list(tf.data.TFRecordDataset(frame_index.index_path(shard)))
        assert len(entries) == len(records) > 0
        for serialized, entry in zip(records, entries):
            frames = parse_example(serialized)["frames"].numpy().tolist()
            positions = indexed.parse_index_entry(entry)["frame_records"].numpy().tolist()
            assert len(positions) == len(frames)
            starts = [p - stored_frame.RECORD_OFFSET for p in positions]
            assert [data[s:s + len(f)] for s, f in zip(starts, frames)] == frames


def test_an_entry_is_its_record_without_the_frames(tmp_path):
    files = write_shards(tmp_path, mixed_videos(), index=True)
    records = list(tf.data.TFRecordDataset(files[0]))
    entries = list(tf.data.TFRecordDataset(frame_index.index_path(files[0])))
    for serialized, entry in zip(records, entries):
        record, parsed = parse_example(serialized), indexed.parse_index_entry(entry)
        assert set(parsed) == set(record) - {"frames"} | {"frame_records"}
        for key in ("video_id", "label", "labels", "num_frames", "fps", "height", "width"):
            np.testing.assert_array_equal(parsed[key].numpy(), record[key].numpy())
        assert parsed["keypoints"].to_list() == record["keypoints"].to_list()
        assert len(entry.numpy()) < len(serialized.numpy()) / 2


def test_indexed_reading_touches_only_the_sampled_bytes(tmp_path):
    # One record of 30 frames; every frame that is not sampled gets its bytes scrambled
    # in the shard file (same length), which breaks the record's TFRecord checksum.
    n, seed = 30, 7
    chosen = sampling.segment_indices_from_uniforms(
        n, batch_uniforms(seed, 0, 1, 3)[0, :3]).numpy()
    files = write_shards(tmp_path, [(n, 0)], index=True)
    entry = indexed.parse_index_entry(
        next(iter(tf.data.TFRecordDataset(frame_index.index_path(files[0])))))
    stored = parse_example(next(iter(tf.data.TFRecordDataset(files[0]))))["frames"].numpy()
    data = bytearray(open(files[0], "rb").read())
    for t, position in enumerate(entry["frame_records"].numpy()):
        if t not in chosen:
            start = position - stored_frame.RECORD_OFFSET
            data[start:start + len(stored[t])] = b"\x00" * len(stored[t])
    open(files[0], "wb").write(bytes(data))
    frames, _ = next(iter(train(files, shuffle_buffer=1, batch_size=1, use_index=True)))
    assert [identify(frames[0, s, 8, 8].numpy()) for s in range(3)] == \
        [(0, int(t)) for t in chosen]
    with pytest.raises(tf.errors.DataLossError) as error:  # reading the whole record fails
        next(iter(train(files, shuffle_buffer=1, batch_size=1, use_index=False)))
    message = input_error_message(error.value)  # what the CLIs print
    assert message.startswith("reading the prepared records failed (DataLossError: ")
    assert "corrupted record" in message and "\n" not in message and "{{" not in message
    assert input_error_message(ValueError("other")) is None


def test_indexed_and_whole_records_give_the_same_batches(tmp_path):
    videos = mixed_videos()
    for video in videos:  # keypoints on every frame, for the heatmap targets
        video["keypoints"] = [np.full((1, 16, 3), [5.0, 6.0, 1.0], np.float32)] * len(
            video["jpeg_frames"])
    files = write_shards(tmp_path, videos * 3, shards=3, index=True)
    kwargs = dict(color_jitter=True, with_keypoints=True, heatmap_size=4, shuffle_buffer=4)
    pairs = zip(train(files, use_index=True, index_in_memory=False, **kwargs).take(4),
                train(files, use_index=False, **kwargs).take(4))
    for a, b in pairs:
        tf.nest.map_structure(lambda x, y: np.testing.assert_array_equal(x, y), a, b)
    evals = [list(pipeline.eval_dataset(files, image_size=16, batch_size=2, test_frames=3,
                                        views="three_crop_flip", use_index=use))
             for use in (True, False)]
    assert len(evals[0]) == len(evals[1]) == 8
    tf.nest.map_structure(lambda x, y: np.testing.assert_array_equal(x, y), *evals)


def test_a_batch_read_gives_each_rows_frames_from_its_own_shard(tmp_path):
    files = write_shards(tmp_path, mixed_videos() * 2, shards=2, index=True)
    entries = {f: [indexed.parse_index_entry(e) for e in
                   tf.data.TFRecordDataset(frame_index.index_path(f))] for f in files}
    rows = [(files[1], 1, [0, 2]), (files[0], 1, [2, 0]), (files[1], 2, [1, 1])]
    positions = tf.stack([tf.gather(entries[f][r]["frame_records"], t) for f, r, t in rows])
    shards = tf.constant([[f, f] for f, _, _ in rows])
    batch = indexed.read_frames(shards, positions).numpy()
    assert batch.shape == (3, 2)
    for (f, r, t), got in zip(rows, batch):
        record = parse_example(list(tf.data.TFRecordDataset(f))[r])
        # Each read JPEG is the one whose stored form the record holds.
        assert [stored_frame.store(jpeg) for jpeg in got.tolist()] == \
            tf.gather(record["frames"], t).numpy().tolist()


def test_use_index_needs_every_index(tmp_path):
    files = write_shards(tmp_path, [(4, 0), (5, 1)], shards=2)
    frame_index.write_index(files[0])
    with pytest.raises(FileNotFoundError, match="train-00001-of-00002.tfrecord.index"):
        train(files, use_index=True)
    # By default a missing index means reading whole records, for every shard.
    labels = [int(y[0]) for _, y in train(files, batch_size=1, repeat=False)]
    assert sorted(labels) == [0, 1]


def test_the_storage_layout_is_chosen_from_the_files(tmp_path):
    files = write_shards(tmp_path, [(4, 0), (5, 1)], shards=2)
    assert isinstance(sources.record_source(files), sources.WholeRecords)
    frame_index.write_index(files[0])
    assert isinstance(sources.record_source(files), sources.WholeRecords)  # one is missing
    frame_index.write_index(files[1])
    assert isinstance(sources.record_source(files), sources.IndexedShards)
    assert isinstance(sources.record_source(files, use_index=False), sources.WholeRecords)


def test_a_shard_changed_after_its_index_names_both_files(tmp_path):
    files = write_shards(tmp_path, [(6, 0), (6, 1)], index=True)
    # The shard is written again with other frames (longer JPEGs): offsets move.
    big = {"jpeg_frames": [noisy_frame(t) for t in range(6)], "label": 0}
    write_shards(tmp_path, [big, big])
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        next(iter(train(files, batch_size=2, use_index=True)))
    message = input_error_message(error.value)
    assert message.startswith(f"{files[0]}: sampled frames could not be read at the "
                              "positions its .index file gives (") and "\n" not in message
    assert "of the batch's 6, from this shard or another" in message and "prepare" in message


def test_write_index_reads_the_shard_when_not_given_the_records(tmp_path):
    files = write_shards(tmp_path, mixed_videos(), index=True)
    given = open(frame_index.index_path(files[0]), "rb").read()
    os.remove(frame_index.index_path(files[0]))
    frame_index.write_index(files[0])
    assert open(frame_index.index_path(files[0]), "rb").read() == given


def test_frames_are_read_through_tf_io_gfile_on_other_file_systems(tmp_path):
    # TensorFlow's in-memory file system stands in for gs:// and the like.
    local = write_shards(tmp_path, mixed_videos(), shards=2, index=True)
    remote = []
    for i, path in enumerate(local):
        target = f"ram://frame_index_test/{os.path.basename(path)}"
        for suffix in ("", frame_index.INDEX_SUFFIX):
            tf.io.gfile.copy(path + suffix, target + suffix, overwrite=True)
        remote.append(target)
    pairs = zip(train(remote, use_index=True).take(3), train(local, use_index=True).take(3))
    for a, b in pairs:
        tf.nest.map_structure(lambda x, y: np.testing.assert_array_equal(x, y), a, b)
