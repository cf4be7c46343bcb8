"""Frame sampling: TSN segments (train), uniform test frames (eval), gathering encoded frames.

Every op runs eagerly and inside `tf.data.Dataset.map`, and the two must agree.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_attnpool.data.input import sampling  # noqa: E402


def eager_and_mapped(fn, *args):
    """fn(*args) eagerly and inside Dataset.map; asserts they are equal, returns the value."""
    eager = fn(*args)
    mapped = next(iter(tf.data.Dataset.from_tensors(args).map(fn)))
    if isinstance(eager, tf.RaggedTensor):
        assert eager.to_list() == mapped.to_list()
    else:
        np.testing.assert_array_equal(eager.numpy(), mapped.numpy())
    return eager


def tsn(num_segments):
    return lambda n, seed: sampling.segment_indices(n, num_segments, seed)


@pytest.mark.parametrize("num_frames,num_segments", [(10, 3), (100, 7), (3, 3), (37, 8)])
def test_segment_indices_lie_in_their_segments(num_frames, num_segments):
    for s in range(20):
        indices = eager_and_mapped(tsn(num_segments), tf.constant(num_frames),
                                   tf.constant([s, 7])).numpy()
        assert indices.dtype == np.int32 and indices.shape == (num_segments,)
        for i, index in enumerate(indices):
            start = i * num_frames // num_segments
            end = (i + 1) * num_frames // num_segments
            assert start <= index < end, (s, i, index, start, end)


def test_segment_indices_for_a_seeded_run_match_the_hand_derived_ones():
    # 10 frames, 3 segments: [0, 3), [3, 6), [6, 10) -> starts 0, 3, 6, lengths 3, 3, 4;
    # index = start + floor(u * length) with u the seed's three uniform draws.
    seed = tf.constant([42, 0])
    u = tf.random.stateless_uniform([3], seed).numpy()
    expected = np.array([0, 3, 6]) + np.floor(u * np.array([3, 3, 4])).astype(int)
    got = eager_and_mapped(tsn(3), tf.constant(10), seed).numpy()
    np.testing.assert_array_equal(got, expected)


def test_segment_indices_of_a_batch_are_those_of_its_rows():
    num_frames = tf.constant([10, 100, 3, 1, 37])
    u = tf.random.stateless_uniform([5, 4], [9, 9])
    batch = eager_and_mapped(sampling.segment_indices_from_uniforms, num_frames, u).numpy()
    assert batch.shape == (5, 4) and batch.dtype == np.int32
    for b in range(5):
        n = int(num_frames[b])
        starts = np.array([i * n // 4 for i in range(4)])
        lengths = np.maximum(np.array([(i + 1) * n // 4 for i in range(4)]) - starts, 1)
        expected = starts + np.floor(u[b].numpy() * lengths).astype(int)
        np.testing.assert_array_equal(batch[b], expected)


def test_segment_indices_reach_every_frame_of_a_segment():
    seen = set()
    for s in range(60):
        seen.update(tsn(3)(tf.constant(6), tf.constant([s, 1])).numpy().tolist())
    assert seen == {0, 1, 2, 3, 4, 5}


def test_segment_indices_are_deterministic_given_the_seed():
    a = tsn(5)(tf.constant(200), tf.constant([3, 4])).numpy()
    b = tsn(5)(tf.constant(200), tf.constant([3, 4])).numpy()
    np.testing.assert_array_equal(a, b)
    others = [tsn(5)(tf.constant(200), tf.constant([s, 4])).numpy() for s in range(4, 8)]
    assert any((o != a).any() for o in others)


@pytest.mark.parametrize("num_frames,expected", [
    (2, [0, 0, 1, 1]),  # a clip shorter than num_segments repeats its frames in order
    (1, [0, 0, 0, 0]),  # an image (1-frame record)
    (4, [0, 1, 2, 3]),
])
def test_short_clips_repeat_frames(num_frames, expected):
    got = eager_and_mapped(tsn(4), tf.constant(num_frames), tf.constant([1, 2]))
    np.testing.assert_array_equal(got.numpy(), expected)


@pytest.mark.parametrize("num_frames,test_frames,expected", [
    (100, 25, list(range(2, 100, 4))),  # the paper's 25 frames: 2, 6, ..., 98
    (10, 3, [1, 5, 8]),
    (3, 5, [0, 0, 1, 2, 2]),
    (25, 25, list(range(25))),
    (1, 4, [0, 0, 0, 0]),
    (7, 1, [3]),
])
def test_uniform_indices_are_the_segment_centres(num_frames, test_frames, expected):
    fn = lambda n: sampling.uniform_indices(n, test_frames)  # noqa: E731
    got = eager_and_mapped(fn, tf.constant(num_frames, tf.int64))
    assert got.dtype == tf.int32
    np.testing.assert_array_equal(got.numpy(), expected)


def test_uniform_indices_default_to_the_papers_25_frames():
    assert sampling.uniform_indices(tf.constant(250)).shape == (25,)


@pytest.mark.parametrize("bad", [0, -1, 2.0, None, True])
def test_counts_must_be_positive_python_ints(bad):
    with pytest.raises(ValueError, match="num_segments"):
        sampling.segment_indices(10, bad, [1, 2])
    with pytest.raises(ValueError, match="test_frames"):
        sampling.uniform_indices(10, bad)


def test_an_empty_clip_is_rejected():
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one frame"):
        sampling.segment_indices(tf.constant(0), 3, [1, 2])
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one frame"):
        sampling.uniform_indices(tf.constant(0), 3)


def test_gather_frames_picks_the_encoded_strings():
    frames = tf.constant([b"f0", b"f1", b"f2", b"f3"])
    got = eager_and_mapped(sampling.gather_frames, frames, tf.constant([3, 0, 0]))
    assert got.numpy().tolist() == [b"f3", b"f0", b"f0"]


def test_gather_keypoints_regroups_people_and_joints():
    person = np.arange(48, dtype=np.float32)  # one person: 16 joints x (x, y, valid)
    keypoints = tf.ragged.constant([[], person.tolist(), np.r_[person, person + 100].tolist()],
                                   dtype=tf.float32)
    got = eager_and_mapped(sampling.gather_keypoints, keypoints, tf.constant([2, 0, 1]))
    assert got.shape.as_list() == [3, None, 16, 3]
    assert got.row_lengths().numpy().tolist() == [2, 0, 1]
    dense = got.to_tensor().numpy()
    np.testing.assert_array_equal(dense[0, 1], (person + 100).reshape(16, 3))
    np.testing.assert_array_equal(dense[2, 0], person.reshape(16, 3))
    assert dense[0, 0, 5].tolist() == [15.0, 16.0, 17.0]  # joint 5 of person 0: x, y, valid
