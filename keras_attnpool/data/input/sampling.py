"""Which frames of a clip to use: TSN segment sampling (train) and uniform sampling (eval).

The samplers return frame *indices*; `gather_frames` applies them to the still-encoded JPEG
frames of a parsed record, so that only the sampled frames are ever decoded. Every function
is made of TF ops and works eagerly and inside `tf.data.Dataset.map`.

Segments: a clip of `n` frames is cut into `k` equal segments; segment `i` covers frames
`[floor(i * n / k), floor((i + 1) * n / k))`. A segment shorter than one frame (only when
`n < k`) is widened to the single frame at its start, so short clips repeat frames in order
rather than fail. Images are 1-frame records: every sampler returns index 0 for them.
"""

from typing import Tuple

import tensorflow as tf

from keras_attnpool.data.joints import NUM_JOINTS

# Test frames per clip in the paper's HMDB51 protocol (predictions averaged over them).
PAPER_TEST_FRAMES = 25


def _segment_bounds(num_frames: tf.Tensor, num_segments: int) -> Tuple[tf.Tensor, tf.Tensor]:
    """Start and length (at least 1) of each of `num_segments` equal segments, int32
    [..., num_segments] for num_frames [...]."""
    n = tf.cast(num_frames, tf.int32)
    tf.debugging.assert_positive(n, message="a clip needs at least one frame")
    n = n[..., None]
    i = tf.range(num_segments, dtype=tf.int32)
    # Integer arithmetic: float rounding would move bounds by one frame for long clips.
    start = (i * n) // num_segments
    end = ((i + 1) * n) // num_segments
    return start, tf.maximum(end - start, 1)


def segment_indices(num_frames: tf.Tensor, num_segments: int, seed: tf.Tensor) -> tf.Tensor:
    """TSN training sampling: one random frame index in each of `num_segments` segments.

    Args:
        num_frames: scalar, the number of frames in the clip (>= 1).
        num_segments: how many frames to sample (a Python int, so shapes stay static).
        seed: int32/int64 tensor of shape [2]; the same seed gives the same indices.

    Returns:
        int32 [num_segments], non-decreasing, each index inside its segment.
    """
    _check_count("num_segments", num_segments)
    u = tf.random.stateless_uniform([num_segments], seed=seed, dtype=tf.float32)
    return segment_indices_from_uniforms(num_frames, u)


def segment_indices_from_uniforms(num_frames: tf.Tensor, u: tf.Tensor) -> tf.Tensor:
    """`segment_indices` from one uniform in [0, 1) per segment, for one clip or a batch:
    num_frames [...] and u [..., num_segments] -> int32 [..., num_segments]; the frame in
    segment i is its start + floor(u[i] * its length)."""
    num_segments = u.shape[-1]
    _check_count("num_segments", num_segments)
    start, length = _segment_bounds(num_frames, num_segments)
    offset = tf.cast(tf.floor(u * tf.cast(length, tf.float32)), tf.int32)
    # u < 1, but float rounding of u * length can still reach length: clamp.
    return start + tf.minimum(offset, length - 1)


def uniform_indices(num_frames: tf.Tensor, test_frames: int = PAPER_TEST_FRAMES) -> tf.Tensor:
    """Evaluation sampling: `test_frames` uniformly spaced indices, the centre of each segment.

    For `n` frames, index `i` is `floor((2 i + 1) n / (2 test_frames))`: e.g. 100 frames and
    25 test frames give 2, 6, 10, ..., 98; 3 frames and 5 test frames give 0, 0, 1, 2, 2.

    Returns:
        int32 [test_frames].
    """
    _check_count("test_frames", test_frames)
    n = tf.cast(num_frames, tf.int32)
    tf.debugging.assert_positive(n, message="a clip needs at least one frame")
    i = tf.range(test_frames, dtype=tf.int32)
    return ((2 * i + 1) * n) // (2 * test_frames)


def gather_frames(frames: tf.Tensor, indices: tf.Tensor) -> tf.Tensor:
    """The sampled frames, still JPEG-encoded: tf.string [len(indices)].

    Gathering on the encoded strings is what lets the pipeline decode only these frames.
    """
    return tf.gather(frames, indices)


def gather_keypoints(keypoints: tf.RaggedTensor, indices: tf.Tensor) -> tf.RaggedTensor:
    """Per sampled frame, all people's keypoints: ragged float32 [T, (people), 16, 3].

    `keypoints` is the record's ragged [num_frames, (people * 16 * 3)] feature; frames
    without keypoints give zero people.
    """
    return people_keypoints(tf.gather(keypoints, indices))


def people_keypoints(flat: tf.RaggedTensor) -> tf.RaggedTensor:
    """Ragged [T, (people * 16 * 3)] keypoints -> ragged float32 [T, (people), 16, 3]."""
    flat = flat.with_row_splits_dtype(tf.int64)
    people = tf.RaggedTensor.from_uniform_row_length(
        tf.RaggedTensor.from_uniform_row_length(flat.values, 3), NUM_JOINTS)
    return tf.RaggedTensor.from_row_lengths(people, flat.row_lengths() // (3 * NUM_JOINTS))


def _check_count(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive Python int (it fixes the clip's static "
                         f"shape), got {value!r}")
