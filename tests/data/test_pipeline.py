"""The tf.data pipelines over prepared records, written here with `encode_example`.

Frames are flat colours that name themselves: red = 6 * frame + 4 (frame < 42), green =
16 * video + 8 (JPEG keeps flat colours to within a level or two), so a decoded pixel
says which frame of which video the pipeline sampled. Frames that must never be decoded
are invalid JPEG bytes.
"""

import json
import os
import subprocess
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_attnpool import metrics  # noqa: E402
from keras_attnpool.data.input import files as record_files  # noqa: E402
from keras_attnpool.data.input import augment, pipeline, sampling, sources  # noqa: E402
from keras_attnpool.data.input.train import batch_uniforms  # noqa: E402
from keras_attnpool.data.joints import INVALID_JOINT  # noqa: E402
from keras_attnpool.data.records import frame_index  # noqa: E402
from keras_attnpool.data.records.schema import encode_example, shard_name  # noqa: E402
from tools import bytes_read  # noqa: E402

GARBAGE = b"\xff\xd8 (a JPEG start marker, then bytes no decoder accepts)"
H, W = 24, 32


def jpeg(image) -> bytes:
    return tf.io.encode_jpeg(np.asarray(image, np.uint8), quality=95).numpy()


def flat_frame(video: int, frame: int) -> bytes:
    return jpeg(np.broadcast_to([6 * frame + 4, 16 * video + 8, 128], (H, W, 3)))


def write_shards(directory, videos, shards=1, split="train", index=False):
    """videos: list of (num_frames, label) or dicts of encode_example arguments; `index`
    writes each shard's frame index too, as prepare does."""
    files = [str(directory / shard_name(split, i, shards)) for i in range(shards)]
    writers = [tf.io.TFRecordWriter(f) for f in files]
    for v, video in enumerate(videos):
        if not isinstance(video, dict):
            num_frames, label = video
            video = {"jpeg_frames": [flat_frame(v, t) for t in range(num_frames)],
                     "label": label}
        video = {"height": H, "width": W, **video}
        writers[v % shards].write(encode_example(f"video{v}", **video))
    for w in writers:
        w.close()
    if index:
        for f in files:
            frame_index.write_index(f)
    return files


def identify(pixels):
    """(video, frame) from a decoded flat pixel [..., 3]."""
    return (int(round((float(pixels[1]) - 8) / 16)), int(round((float(pixels[0]) - 4) / 6)))


LENGTHS = [5, 9, 12, 3, 7, 10, 2, 8]


@pytest.fixture(params=[False, True], ids=["whole_records", "frame_index"])
def indexed(request):
    """Both ways the pipelines read frames: whole records, and through frame indexes."""
    return request.param


@pytest.fixture
def video_records(tmp_path, indexed):
    return write_shards(tmp_path, [(n, v) for v, n in enumerate(LENGTHS)], shards=3,
                        index=indexed)


def train(files, **kwargs):
    args = dict(num_segments=3, image_size=16, batch_size=4, seed=7, shuffle_buffer=8,
                color_jitter=False)
    return pipeline.train_dataset(files, **{**args, **kwargs})


def test_train_batches_have_the_documented_structure(video_records):
    frames, label = next(iter(train(video_records, color_jitter=True)))
    assert frames.shape == (4, 3, 16, 16, 3) and frames.dtype == tf.float32
    assert label.shape == (4,) and label.dtype == tf.int32
    assert 0 <= float(tf.reduce_min(frames)) and float(tf.reduce_max(frames)) <= 255


def test_image_mode_yields_images(tmp_path, indexed):
    files = write_shards(tmp_path, [(1, v % 3) for v in range(6)], shards=2, index=indexed)
    images, label = next(iter(train(files, num_segments=1, image_mode=True)))
    assert images.shape == (4, 16, 16, 3) and label.shape == (4,)
    with pytest.raises(ValueError, match="num_segments"):
        train(files, num_segments=3, image_mode=True)


def test_sampled_frames_lie_in_their_segments_for_every_clip(video_records):
    seen = set()
    for frames, label in train(video_records).take(12):
        for clip, clip_label in zip(frames.numpy(), label.numpy()):
            video, n = int(clip_label), LENGTHS[int(clip_label)]
            for segment in range(3):
                got_video, index = identify(clip[segment, 8, 8])
                assert got_video == video
                assert segment * n // 3 <= index < max((segment + 1) * n // 3,
                                                       segment * n // 3 + 1), (video, index)
                seen.add((video, index))
    assert len(seen) > 30  # the draws differ between clips and epochs


def test_the_pipeline_decodes_only_the_sampled_frames(tmp_path, indexed):
    # Row b of the first batch samples its frames with row b of batch_uniforms(seed, 0,
    # ...), whichever video lands there. Frames no row can sample are garbage.
    lengths = [30, 17, 40, 25]
    uniforms = batch_uniforms(7, 0, 4, 3)[:, :3]
    chosen = [[sampling.segment_indices_from_uniforms(n, uniforms[b]).numpy().tolist()
               for b in range(4)] for n in lengths]
    videos = [{"jpeg_frames": [flat_frame(v, t) if any(t in row for row in chosen[v])
                               else GARBAGE for t in range(n)], "label": v}
              for v, n in enumerate(lengths)]
    files = write_shards(tmp_path, videos, index=indexed)
    frames, label = next(iter(train(files, shuffle_buffer=1, batch_size=4)))
    assert sorted(label.numpy().tolist()) == [0, 1, 2, 3]
    for b, v in enumerate(label.numpy().tolist()):
        got = [identify(frames[b, s, 8, 8].numpy()) for s in range(3)]
        assert got == [(v, t) for t in chosen[v][b]]


def test_eval_decodes_only_the_uniform_frames_and_fails_on_a_bad_sampled_one(tmp_path,
                                                                             indexed):
    # 10 frames, 3 test frames -> indices 1, 5, 8; everything else is garbage.
    good = {"jpeg_frames": [flat_frame(0, t) if t in (1, 5, 8) else GARBAGE
                            for t in range(10)], "label": 4}
    files = write_shards(tmp_path, [good], index=indexed)
    frames, label, video_id = next(iter(pipeline.eval_dataset(
        files, image_size=16, batch_size=1, test_frames=3, resize_short=16)))
    assert [identify(frames[0, t, 8, 8].numpy()) for t in range(3)] == [(0, 1), (0, 5), (0, 8)]
    assert label.numpy().tolist() == [4] and video_id.numpy().tolist() == [b"video0"]
    bad = {"jpeg_frames": [flat_frame(0, t) if t != 5 else GARBAGE for t in range(10)],
           "label": 4}
    (tmp_path / "bad").mkdir()
    files = write_shards(tmp_path / "bad", [bad], index=indexed)
    with pytest.raises(tf.errors.InvalidArgumentError, match="JPEG"):
        next(iter(pipeline.eval_dataset(files, image_size=16, batch_size=1, test_frames=3)))


def test_same_seed_same_batches_other_seed_other_batches(video_records):
    def batches(seed):
        ds = train(video_records, seed=seed, color_jitter=True)
        return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds.take(3)]
    a, b, c = batches(7), batches(7), batches(8)
    for (fa, la), (fb, lb) in zip(a, b):
        np.testing.assert_array_equal(fa, fb)
        np.testing.assert_array_equal(la, lb)
    assert any(not np.array_equal(fa, fc) for (fa, _), (fc, _) in zip(a, c))


def test_skip_batches_gives_the_batches_that_follow(video_records):
    full = [tf.nest.map_structure(lambda t: t.numpy(), b)
            for b in train(video_records, color_jitter=True).take(5)]
    resumed = [tf.nest.map_structure(lambda t: t.numpy(), b)
               for b in train(video_records, color_jitter=True, skip_batches=3).take(2)]
    for a, b in zip(full[3:], resumed):
        tf.nest.map_structure(np.testing.assert_array_equal, a, b)


def test_skipped_records_are_not_decoded(tmp_path, indexed):
    # The first batch's records hold undecodable frames: skipping it must not touch them.
    videos = [{"jpeg_frames": [GARBAGE] * 4, "label": 0}] * 2 + [(4, 1)] * 2
    files = write_shards(tmp_path, videos, index=indexed)
    _, label = next(iter(train(files, shuffle_buffer=1, batch_size=2, skip_batches=1,
                               index_in_memory=False)))  # streamed: in file order
    assert label.numpy().tolist() == [1, 1]


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc")
def test_a_late_resume_gives_the_same_batches_without_reading_the_skipped_clips(tmp_path):
    files = write_shards(tmp_path, [(n, v) for v, n in enumerate(LENGTHS)], shards=3,
                         index=True)
    shard_bytes = sum(os.path.getsize(f) for f in files)
    late = 50_000  # batches: 200,000 clips, 600,000 sampled frames
    ds = train(files, batch_size=4, color_jitter=True, skip_batches=late)
    before = bytes_read()
    resumed = [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds.take(2)]
    read = bytes_read() - before
    # Reading the skipped clips' frames would read the shards over and over (25,000
    # epochs of them); the resumed stream reads little more than a few batches' frames.
    assert read < 3 * shard_bytes, (read, shard_bytes)
    # The same batches as the uninterrupted stream at that position: checked at a
    # position that the uninterrupted stream reaches quickly, with the same reading.
    near = 60
    full = [tf.nest.map_structure(lambda t: t.numpy(), b)
            for b in train(files, batch_size=4, color_jitter=True).take(near + 2)][near:]
    for a, b in zip(full, (tf.nest.map_structure(lambda t: t.numpy(), b) for b in train(
            files, batch_size=4, color_jitter=True, skip_batches=near).take(2))):
        tf.nest.map_structure(np.testing.assert_array_equal, a, b)
    assert resumed[0][0].shape == full[0][0].shape


def test_one_epoch_has_every_record_once_shuffled_across_shards(video_records):
    ds = train(video_records, repeat=False, drop_remainder=False)
    labels = np.concatenate([label.numpy() for _, label in ds])
    assert sorted(labels.tolist()) == list(range(len(LENGTHS)))
    # Unshuffled, the interleave reads shard 0, 1, 2 in turn: 0, 1, 2, 3, 4, ...
    assert labels.tolist() != list(range(len(LENGTHS)))


def test_an_index_in_memory_is_shuffled_whole_each_epoch(tmp_path):
    # 24 clips in 3 shards; batches of 4 over two epochs (12 batches).
    files = write_shards(tmp_path, [(3, v) for v in range(24)], shards=3, index=True)

    def labels(**kwargs):
        ds = train(files, batch_size=4, **kwargs).take(12)
        return np.concatenate([label.numpy() for _, label in ds]).tolist()
    held, streamed = labels(), labels(index_in_memory=False)
    assert sorted(held[:24]) == sorted(held[24:]) == list(range(24))  # exact epochs
    assert held[:24] != held[24:]            # a new order each epoch
    assert held == labels()                  # the same given the seed
    assert held != labels(seed=8)
    # Streamed, a buffer of 8 lets a record move only a few places; held, anywhere.

    def largest_jump(order):
        return max(abs(i - order.index(v)) for i, v in enumerate(sorted(set(order))))
    assert largest_jump(streamed[:24]) < largest_jump(held[:24])
    # Above the size limit, the indexes are streamed.
    sources.INDEX_IN_MEMORY_BYTES, limit = 0, sources.INDEX_IN_MEMORY_BYTES
    try:
        assert labels() == streamed
    finally:
        sources.INDEX_IN_MEMORY_BYTES = limit


def test_every_frame_of_a_clip_gets_the_same_augmentation(tmp_path):
    y, x = np.mgrid[0:H, 0:W]
    image = jpeg(np.stack([x * 7, y * 9, (x * y) % 200], -1))
    files = write_shards(tmp_path, [{"jpeg_frames": [image] * 6, "label": 0}] * 4)
    frames, _ = next(iter(train(files, num_segments=4, color_jitter=True, batch_size=4)))
    frames = frames.numpy()
    for t in range(1, 4):
        np.testing.assert_array_equal(frames[:, t], frames[:, 0])
    assert not np.array_equal(frames[0, 0], frames[1, 0])  # but clips differ


def test_multi_label_targets_pass_through_unchanged(tmp_path, indexed):
    targets = np.array([[1, -1, 0, np.nan, 1], [-1, -1, 1, 0, np.nan]], np.float32)
    files = write_shards(tmp_path, [
        {"jpeg_frames": [flat_frame(v, 0)], "labels": targets[v]} for v in range(2)],
        index=indexed)
    _, label = next(iter(train(files, num_segments=1, image_mode=True, batch_size=2,
                               shuffle_buffer=1)))
    assert label.dtype == tf.float32
    # In the shuffled order (which depends on TensorFlow's global seed too).
    order = np.argsort(label.numpy()[:, 0])
    np.testing.assert_array_equal(label.numpy()[order], targets[[1, 0]])  # NaN == NaN here
    _, label, _ = next(iter(pipeline.eval_dataset(files, image_size=16, batch_size=2,
                                                  image_mode=True)))
    np.testing.assert_array_equal(label.numpy(), targets)


def test_eval_folds_views_and_frames_into_the_batch(video_records):
    ds = pipeline.eval_dataset(video_records, image_size=16, batch_size=3, test_frames=4,
                               views="ten_crop")
    batches = list(ds)
    assert [b[0].shape[0] for b in batches] == [30, 30, 20]  # 8 videos: 3, 3, 2 per batch
    frames, label, video_id = batches[0]
    assert frames.shape == (30, 4, 16, 16, 3)
    ids = video_id.numpy().tolist()
    assert ids[:10] == [ids[0]] * 10 and ids[10:20] == [ids[10]] * 10 and ids[0] != ids[10]
    for row in range(30):  # every view carries its own video's label and frames
        video, _ = identify(frames[row, 0, 8, 8].numpy())
        assert video == label[row] == int(ids[row][len(b"video"):])
    # n = 12 frames, 4 test frames -> 1, 4, 7, 10
    row = [r for r in range(30) if ids[r] == b"video2"]
    if row:
        got = [identify(frames[row[0], t, 8, 8].numpy())[1] for t in range(4)]
        assert got == [1, 4, 7, 10]
    folded = next(iter(pipeline.eval_dataset(video_records, image_size=16, batch_size=3,
                                             test_frames=4, views="center_flip",
                                             fold_frames=True)))
    assert folded[0].shape == (3 * 2 * 4, 16, 16, 3) and folded[1].shape == (24,)
    ids, mean, labels = metrics.average_per_video(folded[2].numpy(),
                                                  np.eye(24, dtype=np.float32),
                                                  folded[1].numpy())
    assert len(ids) == 3 and mean.shape == (3, 24)
    np.testing.assert_allclose(mean[0, :8], 1 / 8)  # the 8 rows (2 views x 4 frames)


def test_eval_order_is_fixed(video_records):
    def ids():
        ds = pipeline.eval_dataset(video_records, image_size=16, batch_size=4, test_frames=2)
        return np.concatenate([v.numpy() for _, _, v in ds]).tolist()
    first = ids()
    assert first == ids() and sorted(first) == sorted(f"video{v}".encode() for v in range(8))


def marker_image(joint_x=32.5, joint_y=24.5):
    """64 x 48: red rises with x (shows a flip), a green square around the joint."""
    y, x = np.mgrid[0:48, 0:64]
    image = np.stack([x * 3, np.zeros_like(x), np.zeros_like(x)], -1)
    image[22:27, 30:35, 1] = 255
    keypoints = np.zeros((1, 16, 3), np.float32)
    keypoints[0, 0] = (joint_x, joint_y, 1.0)  # right ankle
    return jpeg(image), keypoints


@pytest.mark.parametrize("image_mode", [True, False])
def test_heatmaps_follow_the_crop_and_flip_of_the_frames(tmp_path, image_mode, indexed):
    image, keypoints = marker_image()
    frames_per_record = 1 if image_mode else 3
    files = write_shards(tmp_path, [{"jpeg_frames": [image] * frames_per_record,
                                     "keypoints": [keypoints] * frames_per_record,
                                     "label": 1}] * 4, index=indexed)
    ds = train(files, num_segments=frames_per_record, image_mode=image_mode,
               image_size=32, with_keypoints=True, heatmap_size=8, heatmap_shape="gaussian",
               scales=(0.75,), max_distort=0)
    flips = set()
    for frames, targets in ds.take(4):
        maps = targets["pose_heatmaps"].numpy()
        assert targets["logits"].numpy().tolist() == [1, 1, 1, 1]
        if not image_mode:
            assert maps.shape == (4, 3, 8, 8, 16)
            frames, maps = frames[:, 1], maps[:, 1]
        assert maps.shape == (4, 8, 8, 16)
        for frame, heat in zip(frames.numpy(), maps):
            flipped = frame[16, 0, 0] > frame[16, -1, 0]
            flips.add(bool(flipped))
            seen, missing = (5, 0) if flipped else (0, 5)  # right ankle <-> left ankle
            np.testing.assert_array_equal(heat[..., missing], INVALID_JOINT)
            green = np.clip(frame[..., 1] - 128, 0, None)
            marker = np.array(np.unravel_index(green.argmax(), green.shape)) / 32
            peak = np.array(np.unravel_index(heat[..., seen].argmax(), (8, 8)))
            assert (np.abs(marker * 8 - (peak + 0.5)) <= 1.0).all(), (marker * 8, peak)
    assert flips == {True, False}


def moving_marker_video(video, num_frames):
    """48 x 64 frames, red rising with x; in each frame a green square at its own place
    (different for every video and frame), with the right ankle's keypoint at its centre."""
    y, x = np.mgrid[0:48, 0:64]
    frames, keypoints = [], []
    for t in range(num_frames):
        # Inside x in [17, 47): within every full-height crop of scale 1.0.
        cx, cy = 19 + (video * 7 + t * 13) % 26, 5 + (video * 17 + t * 11) % 38
        image = np.stack([x * 3, np.zeros_like(x), np.zeros_like(x)], -1)
        image[cy - 2:cy + 3, cx - 2:cx + 3, 1] = 255
        points = np.zeros((1, 16, 3), np.float32)
        points[0, 0] = (cx + 0.5, cy + 0.5, 1.0)
        frames.append(jpeg(image))
        keypoints.append(points)
    return {"jpeg_frames": frames, "keypoints": keypoints, "label": video, "height": 48,
            "width": 64}


def test_each_frames_heatmaps_come_from_its_own_keypoints(tmp_path, indexed):
    # Every clip of a batch samples its own frames; each sampled frame's heatmap must peak
    # where that frame's marker landed (a keypoint of another frame or clip would not).
    videos = [moving_marker_video(v, n) for v, n in enumerate([4, 9, 6, 12, 5, 8, 7, 10])]
    files = write_shards(tmp_path, videos, shards=3, index=indexed)
    ds = train(files, image_size=32, with_keypoints=True, heatmap_size=8,
               heatmap_shape="gaussian", scales=(1.0,), max_distort=0)
    checked = 0
    for clips, targets in ds.take(6):
        for clip, clip_maps in zip(clips.numpy(), targets["pose_heatmaps"].numpy()):
            for frame, heat in zip(clip, clip_maps):
                flipped = frame[16, 0, 0] > frame[16, -1, 0]
                seen = 5 if flipped else 0  # right ankle <-> left ankle
                green = np.clip(frame[..., 1] - 128, 0, None)
                marker = np.array(np.unravel_index(green.argmax(), green.shape)) / 32
                peak = np.array(np.unravel_index(heat[..., seen].argmax(), (8, 8)))
                assert (np.abs(marker * 8 - (peak + 0.5)) <= 1.0).all(), (marker * 8, peak)
                checked += 1
    assert checked == 6 * 4 * 3


def gradient_frame(height, width, shift=0):
    y, x = np.mgrid[0:height, 0:width]
    return jpeg(np.stack([x * 5 + shift, y * 6, (x + y) * 3], -1))


def test_device_augmentation_finishes_the_cpu_pipelines_batches(tmp_path, indexed):
    # Smooth frames of two sizes (canvas 24 from the first record; the 16-px one is
    # padded): the crops resampled on the device match the CPU's to within the
    # half-pixel difference of corner-aligned sampling; the heatmap targets are the same.
    image, keypoints = marker_image()
    videos = []
    for v in range(8):
        h, w = (24, 32) if v % 2 == 0 else (16, 20)
        frames = [gradient_frame(h, w, 4 * t + v) for t in range(5)]
        videos.append({"jpeg_frames": frames, "label": v, "height": h, "width": w,
                       "keypoints": [keypoints] * 5})
    files = write_shards(tmp_path, videos, shards=2, index=indexed)
    kwargs = dict(image_size=20, color_jitter=True, with_keypoints=True, heatmap_size=4)
    cpu = list(train(files, **kwargs).take(3))
    device = list(train(files, augment_on="device", **kwargs).take(3))
    for (frames, target), (inputs, device_target) in zip(cpu, device):
        assert sorted(inputs) == ["boxes", "color", "frames"]
        assert inputs["frames"].dtype == tf.uint8 and inputs["frames"].shape == (4, 3, 24,
                                                                                 24, 3)
        tf.nest.map_structure(np.testing.assert_array_equal, target, device_target)
        finished = augment.device_augment(inputs, 20).numpy()
        assert finished.shape == frames.shape
        diff = np.abs(finished - frames.numpy())
        assert diff.mean() < 2.0 and np.median(diff) < 1.5, diff.mean()


def test_device_augmentation_of_images_and_a_canvas_too_small(tmp_path):
    files = write_shards(tmp_path, [
        {"jpeg_frames": [gradient_frame(16, 20)], "label": 0, "height": 16, "width": 20},
        {"jpeg_frames": [gradient_frame(24, 32)], "label": 1}])
    inputs, label = next(iter(train(files, num_segments=1, image_mode=True, batch_size=2,
                                    shuffle_buffer=1, augment_on="device",
                                    canvas_size=30)))
    assert inputs["frames"].shape == (2, 30, 30, 3) and "color" not in inputs
    assert label.numpy().tolist() == [0, 1]
    images, _ = next(iter(train(files, num_segments=1, image_mode=True, batch_size=2,
                                shuffle_buffer=1)))
    finished = augment.device_augment(inputs, 16)
    assert np.abs(finished.numpy() - images.numpy()).mean() < 2.0
    # The canvas comes from the first record (16 px): the second does not fit.
    with pytest.raises(tf.errors.InvalidArgumentError, match="canvas_size"):
        next(iter(train(files, num_segments=1, image_mode=True, batch_size=2,
                        shuffle_buffer=1, augment_on="device")))
    with pytest.raises(ValueError, match="augment_on"):
        train(files, augment_on="gpu")


def test_keypoint_options_are_checked(video_records):
    with pytest.raises(ValueError, match="heatmap_size"):
        train(video_records, with_keypoints=True)


def test_missing_records_name_the_pattern(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        train(str(tmp_path / "nothing-here-*.tfrecord"))


def test_split_record_files_reads_the_manifest_or_globs(tmp_path):
    write_shards(tmp_path, [(2, 0)] * 3, shards=2, split="test")
    assert [os.path.basename(f) for f in record_files.split_record_files(str(tmp_path), "test")] \
        == ["test-00000-of-00002.tfrecord", "test-00001-of-00002.tfrecord"]
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"shards": {"test": ["test-00001-of-00002.tfrecord"]}}))
    assert record_files.split_record_files(str(tmp_path), "test") == \
        [str(tmp_path / "test-00001-of-00002.tfrecord")]


DISTRIBUTED = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from keras_attnpool.data.input import pipeline
    files = sys.argv[1:]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    make = lambda batch, ctx=None: pipeline.train_dataset(
        files, num_segments=2, image_size=8, batch_size=batch, seed=3, input_context=ctx)
    reference = next(iter(make(4)))
    x, y = next(iter(strategy.experimental_distribute_dataset(make(4))))
    parts = strategy.experimental_local_results(x)
    labels = strategy.experimental_local_results(y)
    step = tf.function(lambda x, y: strategy.run(
        lambda a, b: tf.reduce_sum(a) + tf.cast(tf.reduce_sum(b), tf.float32), (x, y)))
    totals = strategy.experimental_local_results(step(x, y))
    fx, fy = next(iter(strategy.distribute_datasets_from_function(
        lambda ctx: make(ctx.get_per_replica_batch_size(4), ctx))))
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "shapes": [list(p.shape) for p in parts],
        "devices": [p.device for p in parts],
        "same_as_reference": bool(np.array_equal(np.concatenate(parts), reference[0])
                                  and np.array_equal(np.concatenate(labels), reference[1])),
        "steps": len(totals),
        "from_function_shapes": [list(p.shape) for p in
                                 strategy.experimental_local_results(fx)],
    }))
""")


def test_distributed_input_over_two_logical_cpus(video_records, tmp_path):
    # Logical devices must be set before TF initialises its devices: a fresh process.
    script = tmp_path / "distributed.py"
    script.write_text(DISTRIBUTED)
    result = subprocess.run([sys.executable, str(script), *video_records],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2 and report["steps"] == 2
    assert report["shapes"] == [[2, 2, 8, 8, 3], [2, 2, 8, 8, 3]]
    assert report["devices"][0].endswith("CPU:0") and report["devices"][1].endswith("CPU:1")
    assert report["same_as_reference"]
    assert report["from_function_shapes"] == [[2, 2, 8, 8, 3], [2, 2, 8, 8, 3]]


def test_file_names_with_glob_characters_and_empty_inputs(tmp_path, indexed):
    odd = tmp_path / "clips [v2]"
    odd.mkdir()
    files = write_shards(odd, [(2, 0)] * 2, index=indexed)
    assert record_files.list_record_files(files) == files
    assert next(iter(train(files, batch_size=2)))[1].numpy().tolist() == [0, 0]
    with pytest.raises(ValueError, match="no record files"):
        record_files.list_record_files([])
    empty = str(tmp_path / "empty.tfrecord")
    tf.io.TFRecordWriter(empty).close()
    with pytest.raises(ValueError, match="no records"):
        train(empty)
