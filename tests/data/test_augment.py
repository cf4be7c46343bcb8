"""Clip-consistent augmentation, evaluation views and keypoint heatmap targets.

Every op runs eagerly and inside `tf.data.Dataset.map`, and the two must agree. Frames are
built so that their content says where a crop came from: channel 0 holds 2 * x + 1,
channel 1 holds 2 * y + 1 (both exact in float32 and within [0, 255] for small frames), and
channel 2 the frame number.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_attnpool.data.input import augment, heatmaps  # noqa: E402
from keras_attnpool.data.joints import INVALID_JOINT, MPII_FLIP  # noqa: E402


def eager_and_mapped(fn, *args):
    """fn(*args) eagerly and inside Dataset.map; asserts they are equal, returns the value."""
    eager = fn(*args)
    mapped = next(iter(tf.data.Dataset.from_tensors(args).map(fn)))
    tf.nest.map_structure(_assert_same, eager, mapped)
    return eager


def _assert_same(a, b):
    if a.dtype.is_floating:
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-4)
    else:
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def position_frames(num_frames=3, height=40, width=60):
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.stack([np.stack([2 * x + 1, 2 * y + 1, np.full_like(x, 50.0 * t)], -1)
                       for t in range(num_frames)])
    return tf.constant(frames)


# --- training crop, flip, colour ------------------------------------------------------------

def test_multiscale_crop_sides_come_from_the_scales_and_stay_inside():
    # short side 240: sides floor(240 * (1, .875, .75, .66)) = 240, 210, 180, 158.
    sides = [240, 210, 180, 158]
    allowed = {(sides[i], sides[j]) for i in range(4) for j in range(4) if abs(i - j) <= 1}
    seen = set()
    for s in range(80):
        box = eager_and_mapped(lambda h, w, seed: augment.multiscale_crop_box(h, w, seed),
                               tf.constant(240), tf.constant(320), tf.constant([s, 3]))
        y, x, h, w = box.numpy().tolist()
        assert (h, w) in allowed
        assert 0 <= y and y + h <= 240 and 0 <= x and x + w <= 320
        seen.add((h, w))
    assert seen == allowed  # every allowed pair, aspect jitter included, is drawn


def test_paper_image_recipe_is_a_square_crop_of_450_480_of_the_short_side():
    scales = augment.paper_image_scales(450, 480)
    for s in range(10):
        box = augment.multiscale_crop_box(480, 640, tf.constant([s, 0]), scales, max_distort=0)
        assert box.numpy()[2:].tolist() == [450, 450]
    box = augment.multiscale_crop_box(256, 341, tf.constant([0, 0]), scales, max_distort=0)
    assert box.numpy()[2:].tolist() == [240, 240]  # floor(256 * 450 / 480)
    with pytest.raises(ValueError, match="crop_size"):
        augment.paper_image_scales(500, 480)


def test_bad_scales_are_rejected():
    with pytest.raises(ValueError, match="scales"):
        augment.multiscale_crop_box(10, 10, tf.constant([0, 0]), scales=(1.2,))
    with pytest.raises(ValueError, match="max_distort"):
        augment.multiscale_crop_box(10, 10, tf.constant([0, 0]), max_distort=-1)


def test_one_draw_holds_crop_flip_and_colour():
    fn = lambda h, w, seed: augment.draw_train_augmentation(h, w, seed)  # noqa: E731
    draw = eager_and_mapped(fn, tf.constant(240), tf.constant(320), tf.constant([4, 4]))
    assert sorted(draw) == ["color", "crop_box", "flip"]
    assert draw["crop_box"].shape == (4,) and draw["flip"].dtype == tf.bool
    assert draw["color"].shape == (4,)
    assert -1 <= float(tf.reduce_min(draw["color"])) <= float(tf.reduce_max(draw["color"])) < 1


def test_a_batch_of_draws_is_the_draws_of_its_rows():
    u = tf.random.stateless_uniform([6, augment.NUM_DRAW_UNIFORMS], [2, 5])
    heights, widths = tf.constant([240, 240, 256, 90, 480, 20]), tf.constant(
        [320, 180, 341, 120, 640, 20])
    fn = lambda h, w, u: augment.draw_from_uniforms(h, w, u)  # noqa: E731
    batch = eager_and_mapped(fn, heights, widths, u)
    for b in range(6):
        row = augment.draw_from_uniforms(heights[b], widths[b], u[b])
        for key in row:
            np.testing.assert_array_equal(batch[key][b].numpy(), row[key].numpy())
    # the uniforms' roles: the flip is u[3] < 0.5, colour 2 u - 1
    np.testing.assert_array_equal(batch["flip"].numpy(), u[:, 3].numpy() < 0.5)
    np.testing.assert_allclose(batch["color"].numpy(), 2 * u[:, 4:].numpy() - 1)


def _train(seed, size):
    frames = position_frames()
    return augment.augment_train_clip(frames, seed, size, scales=(0.5,), max_distort=0,
                                      color_jitter=False)


def test_every_frame_of_a_clip_gets_the_same_crop_and_flip():
    # One scale of 0.5 of the short side 40 -> 20 x 20 crops resized to 20: pixels are
    # copied exactly, so the content names the crop's position.
    flips = set()
    for s in range(12):
        fn = lambda seed: _train(seed, 20)  # noqa: E731
        clip, draw = eager_and_mapped(fn, tf.constant([s, 9]))
        clip = clip.numpy()
        y, x, h, w = draw["crop_box"].numpy().tolist()
        assert (h, w) == (20, 20)
        columns = 2 * np.arange(x, x + w) + 1.0
        if draw["flip"].numpy():
            columns = columns[::-1]
        for t in range(3):
            np.testing.assert_array_equal(clip[t, 0, :, 0], columns)
            np.testing.assert_array_equal(clip[t, :, 0, 1], 2 * np.arange(y, y + h) + 1.0)
            np.testing.assert_array_equal(clip[t, ..., 2], 50.0 * t)
        flips.add(bool(draw["flip"].numpy()))
    assert flips == {True, False}


def test_train_augmentation_resizes_and_is_deterministic_given_the_seed():
    a, _ = _train(tf.constant([1, 2]), 32)
    b, _ = _train(tf.constant([1, 2]), 32)
    assert a.shape == (3, 32, 32, 3) and a.dtype == tf.float32
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    others = [_train(tf.constant([s, 2]), 32)[0].numpy() for s in range(2, 6)]
    assert any(not np.array_equal(o, a.numpy()) for o in others)


def test_colour_jitter_is_one_draw_per_clip():
    frame = np.random.default_rng(0).uniform(0, 255, (1, 8, 8, 3)).astype(np.float32)
    clip = tf.constant(np.repeat(frame, 4, axis=0))
    out = eager_and_mapped(augment.jitter_colors, clip, tf.constant([5, 6])).numpy()
    assert not np.allclose(out[0], frame[0], atol=0.5)  # it did change the colours
    for t in range(1, 4):
        np.testing.assert_allclose(out[t], out[0], rtol=1e-6)


def test_colour_jitter_with_zero_strength_is_the_identity():
    zero = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0}
    frames = position_frames(2, 6, 5)
    out = augment.jitter_colors(frames, tf.constant([1, 1]), zero)
    np.testing.assert_allclose(out.numpy(), frames.numpy(), atol=1e-3)


def test_colour_jitter_of_a_batch_applies_each_rows_own_draw():
    frames = tf.constant(np.random.default_rng(1).uniform(0, 255, (3, 2, 8, 8, 3)),
                         tf.float32)
    u = tf.random.stateless_uniform([3, 4], [7, 7], -1.0, 1.0)
    batch = eager_and_mapped(
        lambda f, u: augment.apply_color_jitter(f, augment.color_jitter_from_uniforms(u)),
        frames, u).numpy()
    for b in range(3):
        row = augment.apply_color_jitter(frames[b], augment.color_jitter_from_uniforms(u[b]))
        np.testing.assert_allclose(batch[b], row.numpy(), rtol=1e-5, atol=1e-3)
    assert not np.allclose(batch[0], batch[1])


def test_colour_twist_by_hand():
    red = np.array([255.0, 0.0, 0.0], np.float32)
    twist = eager_and_mapped(augment.color_twist, tf.constant(0.0), tf.constant(0.0))
    grey = twist.numpy() @ red
    np.testing.assert_allclose(grey, [0.299 * 255] * 3, atol=1e-3)  # saturation 0: luma
    turn = augment.color_twist(tf.constant(1.0), tf.constant(1.0)).numpy()
    np.testing.assert_allclose(turn, np.eye(3), atol=1e-5)  # a full hue turn changes nothing
    half = augment.color_twist(tf.constant(1.0), tf.constant(0.5)).numpy() @ red
    # half a turn negates I and Q: the opposite hue (cyan-ish) of the same luma
    np.testing.assert_allclose(0.299 * half[0] + 0.587 * half[1] + 0.114 * half[2],
                               0.299 * 255, atol=1e-2)
    assert half[0] < half[1] and half[0] < half[2]


def test_brightness_draw_is_applied_as_an_offset():
    only = {"brightness": 0.1, "contrast": 0.0, "saturation": 0.0, "hue": 0.0}
    seed = tf.constant([3, 3])
    delta = eager_and_mapped(lambda s: augment.draw_color_jitter(s, only),
                             seed)["brightness"].numpy()
    assert delta == pytest.approx(0.1 * tf.random.stateless_uniform([4], seed, -1, 1)[0])
    frames = tf.fill([2, 4, 4, 3], 100.0)
    out = augment.jitter_colors(frames, seed, only).numpy()
    np.testing.assert_allclose(out, 100.0 + 255.0 * delta, rtol=1e-5)


# --- augmentation finished on the accelerator ----------------------------------------------

def test_the_window_holds_every_crop_and_is_square():
    for height, width in ((240, 320), (320, 240), (256, 256), (90, 400)):
        for s in range(40):
            box = augment.multiscale_crop_box(height, width, tf.constant([s, 1]))
            window = eager_and_mapped(augment.crop_window, tf.constant(height),
                                      tf.constant(width), box).numpy()
            y, x, h, w = box.numpy()
            wy, wx, side, side2 = window
            assert side == side2 == min(height, width)
            assert 0 <= wy <= y and y + h <= wy + side <= height
            assert 0 <= wx <= x and x + w <= wx + side <= width


def test_the_decoded_region_holds_the_crop_and_margin_and_starts_on_a_block_column():
    # Inside the window; the crop and REGION_MARGIN pixels on each side where the window
    # has them; the left edge on a DECODE_COLUMNS column unless that is outside the window.
    m, columns = augment.REGION_MARGIN, augment.DECODE_COLUMNS
    height, width, aligned = 240, 320, 0
    for s in range(200):
        box = augment.multiscale_crop_box(height, width, tf.constant([s, 2]))
        window = augment.crop_window(height, width, box)
        region = eager_and_mapped(augment.resampled_region, box, window).numpy()
        (y, x, h, w), (wy, wx, side, _) = box.numpy(), window.numpy()
        ry, rx, rh, rw = region
        assert wy <= ry <= max(y - m, wy) and min(y + h + m, wy + side) == ry + rh
        assert wx <= rx <= max(x - m, wx) and min(x + w + m, wx + side) == rx + rw
        wanted = (x - m) // columns * columns
        assert rx == (wanted if wanted >= wx else wx)
        aligned += rx % columns == 0
    assert aligned > 100  # most crops leave room for it


@pytest.mark.parametrize("flip", [False, True])
def test_device_augment_resamples_the_crop_with_corners_aligned(flip):
    # Two clips of position frames; each is cut to its window and padded to a canvas of 50,
    # as the pipeline does; the result must be the crop resized corner to corner (TF1's
    # align_corners=True bilinear), mirrored when flipped.
    frames = position_frames(2, 40, 60)
    crops = [(3, 17, 30, 25), (10, 0, 28, 40)]
    canvas, clips, boxes, expected = 50, [], [], []
    for box in crops:
        box = tf.constant(box)
        window = augment.crop_window(40, 60, box)
        wy, wx, side, _ = window.numpy()
        clip = frames[:, wy:wy + side, wx:wx + side]
        clips.append(tf.pad(clip, [[0, 0], [0, canvas - side], [0, canvas - side], [0, 0]]))
        boxes.append(augment.canvas_box(box, window, canvas, tf.constant(flip)))
        y, x, h, w = box.numpy()
        want = tf.compat.v1.image.resize_bilinear(frames[:, y:y + h, x:x + w], [16, 16],
                                                  align_corners=True)
        expected.append(tf.reverse(want, [2]) if flip else want)
    inputs = {"frames": tf.cast(tf.stack(clips), tf.uint8), "boxes": tf.stack(boxes)}
    out = eager_and_mapped(lambda i: augment.device_augment(i, 16), inputs).numpy()
    assert out.shape == (2, 2, 16, 16, 3)
    np.testing.assert_allclose(out, tf.stack(expected).numpy(), atol=2e-3)


@pytest.mark.parametrize("height,width", [(64, 40), (33, 50), (64, 96)])
def test_device_augment_reads_only_the_decoded_region(height, width):
    # The pipeline decodes of each window only `resampled_region` (the crop and a margin)
    # onto the canvas. Resampling that must give, bit for bit, what resampling the whole
    # window decoded (`decode_and_crop_jpeg` of the window, as the pipeline did before)
    # gives: for crops anywhere (at the window's edges, whole-frame ones, edges on even
    # columns and on 16-px boundaries, where libjpeg's chroma upsampling differs at a
    # decoded region's edge), enlarged or reduced, mirrored or not; frames of 4:2:0 JPEG
    # noise, odd sizes. With no margin this fails.
    from keras_attnpool.data.input.decode import decode_onto_canvas

    canvas, rng, n = 64, np.random.default_rng(height), 40
    encoded = tf.constant([tf.io.encode_jpeg(rng.integers(0, 256, (height, width, 3),
                                                          np.uint8), quality=90).numpy()
                           for _ in range(2)])
    u = tf.constant(rng.random((n, 4)), tf.float32)
    boxes = augment.crop_box_from_uniforms(tf.fill([n], height), tf.fill([n], width),
                                           u[:, :3], scales=(1.0, 0.75, 0.5, 0.25))
    for box, flip in zip(boxes, u[:, 3] < 0.5):
        window = augment.crop_window(height, width, box)
        side = int(window[2])
        whole = np.zeros((2, canvas, canvas, 3), np.uint8)
        whole[:, :side, :side] = [tf.io.decode_and_crop_jpeg(e, window, channels=3)
                                  for e in encoded]
        region = augment.resampled_region(box, window)
        part = decode_onto_canvas(encoded, 2, region, window, canvas).numpy()
        y, x, h, w = (region - tf.concat([window[:2], [0, 0]], 0)).numpy()
        outside = np.ones((canvas, canvas), bool)
        outside[y:y + h, x:x + w] = False
        assert not part[:, outside].any()
        box_on_canvas = augment.canvas_box(box, window, canvas, flip)[None]
        for size in (8, 96):
            want = augment.device_augment({"frames": whole[None], "boxes": box_on_canvas},
                                          size)
            got = augment.device_augment({"frames": part[None], "boxes": box_on_canvas},
                                         size)
            np.testing.assert_array_equal(got.numpy(), want.numpy())
    eager_and_mapped(lambda e, r, w: decode_onto_canvas(e, 2, r, w, canvas), encoded,
                     region, window)


def test_device_augment_of_images_and_with_colour():
    image = tf.cast(position_frames(1, 20, 20)[0], tf.uint8)
    box = augment.canvas_box(tf.constant([0, 0, 20, 20]), tf.constant([0, 0, 20, 20]), 20,
                             tf.constant(False))
    plain = augment.device_augment({"frames": image[None], "boxes": box[None]}, 20)
    np.testing.assert_allclose(plain.numpy()[0], image.numpy(), atol=1e-3)  # identity
    color = tf.constant([[0.5, -0.3, 0.8, 0.1]])
    jittered = augment.device_augment({"frames": image[None], "boxes": box[None],
                                       "color": color}, 20).numpy()
    want = augment.apply_color_jitter(tf.cast(image[None], tf.float32),
                                      augment.color_jitter_from_uniforms(color))
    np.testing.assert_allclose(jittered, np.clip(want.numpy(), 0, 255), atol=1e-3)


# --- evaluation views -----------------------------------------------------------------------

def test_eval_centre_crop_after_resizing_the_short_side():
    # 40 x 60, short side already 40: no resize; a 20 crop sits at y = 10, x = 20.
    fn = lambda f: augment.eval_views(f, crop_size=20, resize_short=40)  # noqa: E731
    views = eager_and_mapped(fn, position_frames()).numpy()
    assert views.shape == (1, 3, 20, 20, 3)
    np.testing.assert_array_equal(views[0, :, 0, :, 0], np.tile(2 * np.arange(20, 40) + 1.0,
                                                                (3, 1)))
    np.testing.assert_array_equal(views[0, 1, :, 0, 1], 2 * np.arange(10, 30) + 1.0)


def test_resize_short_side_keeps_the_aspect_ratio():
    fn = lambda f: augment.resize_short_side(f, 20)  # noqa: E731
    out = eager_and_mapped(fn, position_frames(2))
    assert out.shape == (2, 20, 30, 3)
    assert augment.resize_short_side(tf.zeros([60, 40, 3]), 30).shape == (45, 30, 3)


@pytest.mark.parametrize("views,first_columns", [
    ("center", [20]),
    ("center_flip", [20, 39]),  # the mirror starts at the crop's last column
    ("three_crop", [20, 0, 40]),  # centre, then both ends of the long side
    ("three_crop_flip", [20, 0, 40, 39, 19, 59]),
    ("five_crop", [20, 0, 40, 0, 40]),
    ("ten_crop", [20, 0, 40, 0, 40, 39, 19, 59, 19, 59]),
])
def test_eval_views_take_the_documented_crops(views, first_columns):
    fn = lambda f: augment.eval_views(f, crop_size=20, resize_short=40, views=views)  # noqa
    out = eager_and_mapped(fn, position_frames(1)).numpy()
    assert out.shape == (augment.num_views(views), 1, 20, 20, 3)
    assert (out[:, 0, 0, 0, 0] - 1) / 2 == pytest.approx(first_columns)


def test_eval_views_reject_bad_arguments():
    with pytest.raises(ValueError, match="views"):
        augment.eval_views(position_frames(1), 20, 40, views="seven_crop")
    with pytest.raises(ValueError, match="resize_short"):
        augment.eval_views(position_frames(1), 50, 40)


# --- keypoint heatmaps ----------------------------------------------------------------------

def one_joint(x, y, joint=0, people=1):
    """[1 frame, people, 16, 3] with only `joint` of person 0 valid at (x, y)."""
    keypoints = np.zeros((1, people, 16, 3), np.float32)
    keypoints[0, 0, joint] = (x, y, 1.0)
    return tf.constant(keypoints)


def heat(keypoints, box, flip, shape="gaussian", size=(8, 8), width=200):
    fn = lambda k, b, f: heatmaps.keypoint_heatmaps(k, b, f, width, size, shape)  # noqa
    return eager_and_mapped(fn, keypoints, tf.constant(box), tf.constant(flip)).numpy()


@pytest.mark.parametrize("shape", ["gaussian", "disk"])
def test_heatmap_peak_is_where_the_joint_lands_in_the_crop(shape):
    # Stored frame 200 wide; crop y=20, x=100, 80 x 80. Joint at (132, 62) -> crop-relative
    # (0.4, 0.525) -> on an 8 x 8 map, column floor(3.2) = 3, row floor(4.2) = 4.
    maps = heat(one_joint(132, 62), [20, 100, 80, 80], False, shape)
    assert maps.shape == (1, 8, 8, 16)
    channel = maps[0, ..., 0]
    assert np.unravel_index(channel.argmax(), channel.shape) == (4, 3)
    assert channel.max() == pytest.approx(1.0) and channel.min() == pytest.approx(0.0)
    np.testing.assert_array_equal(maps[0, ..., 1:], INVALID_JOINT)  # nobody has them


def test_disk_radius_is_five_percent_of_the_image_width():
    # Width 200 -> radius 10 px; an 80 x 80 crop on a 16 x 16 map: 10 px = 2 cells. The
    # centre (40, 40) sits on the corner of cells 7 and 8: those 2 x 2 cells are covered,
    # the next ring partly, and the one after that not at all.
    maps = heat(one_joint(40, 40), [0, 0, 80, 80], False, "disk", size=(16, 16))
    channel = maps[0, ..., 0]
    np.testing.assert_allclose(channel[7:9, 7:9], 1.0)
    assert (0 < channel[6, 7:9]).all() and (channel[6, 7:9] < 1).all()
    assert (channel[5, :] == 0).all() and (channel[:, 10] == 0).all()
    assert (channel[7:9, 9] > 0).all() and (channel[7:9, 6] > 0).all()


def test_flip_mirrors_the_map_and_swaps_left_and_right_channels():
    # Joint 0 (right ankle) at crop-relative x 0.4; mirrored: x 0.6 -> column 4, and it is
    # now the LEFT ankle (channel 5). Channel 0 shows the original left ankle: nobody has it.
    maps = heat(one_joint(132, 62, joint=0), [20, 100, 80, 80], True)
    assert MPII_FLIP[5] == 0
    channel = maps[0, ..., 5]
    assert np.unravel_index(channel.argmax(), channel.shape) == (4, 4)
    np.testing.assert_array_equal(maps[0, ..., 0], INVALID_JOINT)
    unflipped = heat(one_joint(132, 62, joint=0), [20, 100, 80, 80], False)
    np.testing.assert_allclose(channel, unflipped[0, :, ::-1, 0], atol=1e-6)


def test_centre_joints_keep_their_channel_under_flip():
    maps = heat(one_joint(140, 60, joint=9), [20, 100, 80, 80], True)  # head top, x 0.5
    assert maps[0, ..., 9].max() == pytest.approx(1.0)


def test_all_people_share_a_channel_and_a_joint_out_of_the_crop_is_valid_but_empty():
    keypoints = np.zeros((1, 2, 16, 3), np.float32)
    keypoints[0, 0, 3] = (110, 30, 1)  # left hip of person 0, inside the crop
    keypoints[0, 1, 3] = (170, 90, 1)  # left hip of person 1, inside the crop
    keypoints[0, 1, 4] = (10, 10, 1)  # left knee of person 1, far outside the crop
    maps = heat(tf.constant(keypoints), [20, 100, 80, 80], False)[0]
    hips = maps[..., 3]
    # crop-relative (0.125, 0.125) and (0.875, 0.875): symmetric peaks, scaled to 1
    assert hips[0, 0] == pytest.approx(hips[7, 7], abs=1e-6)
    assert hips[1, 1] == pytest.approx(1.0) and hips[6, 6] == pytest.approx(1.0)
    assert hips[0, 7] < 0.01
    np.testing.assert_array_equal(maps[..., 4], 0.0)  # valid target: "not in view"
    np.testing.assert_array_equal(maps[..., 5], INVALID_JOINT)


def test_the_edge_of_a_joint_just_outside_the_crop_is_not_scaled_up():
    # Left edge of the crop at x = 100; a joint at x = 95 with a 10 px disk pokes 5 px in.
    maps = heat(one_joint(95, 60), [20, 100, 80, 80], False, "disk")[0, ..., 0]
    assert 0 < maps[:, 0].max() < 0.5
    assert (maps[:, 1:] == 0).all()


def test_frames_without_people_give_all_invalid_channels():
    empty = tf.zeros([2, 0, 16, 3])
    maps = heatmaps.keypoint_heatmaps(empty, [0, 0, 10, 10], False, 10, (4, 4))
    np.testing.assert_array_equal(maps.numpy(), np.full((2, 4, 4, 16), INVALID_JOINT))
    with pytest.raises(ValueError, match="shape"):
        heatmaps.keypoint_heatmaps(empty, [0, 0, 10, 10], False, 10, (4, 4), shape="square")
