"""PoseRegularizedAttention and the masked heatmap loss, against NumPy."""

import numpy as np
import pytest

from keras_attnpool import PoseRegularizedAttention
from keras_attnpool.losses import INVALID_JOINT, MaskedHeatmapLoss, masked_heatmap_loss

RNG = np.random.default_rng(3)


def _numpy_forward(pose_x, final_x, weights):
    (pose_k, pose_b, heat_k, heat_b, bu_k, bu_b, td_k, td_b) = weights
    pose = np.maximum(pose_x @ pose_k + pose_b, 0)
    heatmaps = pose @ heat_k + heat_b
    bottom_up = pose @ bu_k + bu_b                        # (B, H, W, 1)
    top_down = np.einsum("bhwc,cpk->bhwpk", final_x, td_k) + td_b
    logits = (top_down[..., 0, :] * bottom_up).mean(axis=(1, 2))
    return logits, heatmaps


def test_matches_numpy_with_a_separate_pose_tap():
    pose_x = RNG.normal(size=(2, 4, 5, 3)).astype("float32")
    final_x = RNG.normal(size=(2, 4, 5, 6)).astype("float32")
    layer = PoseRegularizedAttention(4, num_keypoints=5, pose_channels=7)
    layer([pose_x, final_x])
    layer.set_weights([RNG.normal(scale=0.5, size=w.shape).astype("float32")
                       for w in layer.get_weights()])
    out = layer([pose_x, final_x])
    logits, heatmaps = _numpy_forward(pose_x, final_x, layer.get_weights())
    np.testing.assert_allclose(out["logits"], logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["pose_heatmaps"], heatmaps, rtol=1e-4, atol=1e-5)
    maps = layer.attention_maps([pose_x, final_x])
    np.testing.assert_allclose(
        np.mean(np.asarray(maps["top_down"])[..., 0, :] * np.asarray(maps["bottom_up"]),
                axis=(1, 2)), logits, rtol=1e-4, atol=1e-5)


def test_single_input_feeds_both_branches():
    features = RNG.normal(size=(2, 4, 4, 6)).astype("float32")
    layer = PoseRegularizedAttention(3, pose_channels=5)
    out = layer(features)
    logits, heatmaps = _numpy_forward(features, features, layer.get_weights())
    np.testing.assert_allclose(out["logits"], logits, rtol=1e-4, atol=1e-5)
    assert out["pose_heatmaps"].shape == (2, 4, 4, 16)


def test_mismatched_grids_are_rejected():
    layer = PoseRegularizedAttention(3, pose_channels=5)
    with pytest.raises(ValueError, match="same height and width"):
        layer([np.zeros((1, 8, 8, 4), "float32"), np.zeros((1, 4, 4, 6), "float32")])


@pytest.mark.parametrize("inputs, role", [
    ((2, 4, 4, 3, 6), "features"),
    ([(2, 4, 4), (2, 4, 4, 6)], "pose_features"),
    ([(2, 4, 4, 3), (2, 4, 6)], "final_features"),
], ids=["single", "pose", "final"])
def test_wrong_rank_names_the_layer_the_input_and_the_rank(inputs, role):
    data = ([np.zeros(s, "float32") for s in inputs] if isinstance(inputs, list)
            else np.zeros(inputs, "float32"))
    for method in ("__call__", "attention_maps"):
        layer = PoseRegularizedAttention(3, pose_channels=5, name="pose_head")
        with pytest.raises(ValueError, match=f"Layer 'pose_head' expects {role} of rank 4 "
                                             r"\(batch, height, width, channels\)"):
            getattr(layer, method)(data)


def test_built_layer_holds_its_inputs():
    layer = PoseRegularizedAttention(3, pose_channels=5, name="pose_head")
    pair = [np.zeros((1, 4, 4, 3), "float32"), np.zeros((1, 4, 4, 6), "float32")]
    layer(pair)
    with pytest.raises(ValueError, match='Layer "pose_head" expects 2 input'):
        layer(pair[1])
    with pytest.raises(ValueError, match="'pose_head' .*expected ndim=4, found ndim=5"):
        layer.attention_maps([pair[0], np.zeros((1, 2, 4, 4, 6), "float32")])
    with pytest.raises(ValueError, match="'pose_head' .*axis -1 of input shape to have value 3"):
        layer([np.zeros((1, 4, 4, 5), "float32"), pair[1]])
    with pytest.raises(ValueError, match="same height and width"):
        layer([np.zeros((1, 4, 4, 3), "float32"), np.zeros((1, 2, 2, 6), "float32")])


@pytest.mark.parametrize("kwargs, name", [
    ({"num_classes": 0}, "num_classes"),
    ({"num_classes": 3, "num_keypoints": 0}, "num_keypoints"),
    ({"num_classes": 3, "pose_channels": -1}, "pose_channels"),
])
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}` must be"):
        PoseRegularizedAttention(**kwargs)


def test_masked_loss_counts_only_valid_joints():
    target = RNG.uniform(size=(2, 3, 3, 4)).astype("float32")
    prediction = RNG.uniform(size=(2, 3, 3, 4)).astype("float32")
    valid = np.array([[1, 0, 1, 1], [0, 0, 0, 1]], "float32")
    per_joint = ((target - prediction) ** 2).mean(axis=(1, 2))
    expected = (per_joint * valid).sum(axis=1)
    np.testing.assert_allclose(masked_heatmap_loss(target, prediction, valid), expected,
                               rtol=1e-6)
    # The Keras loss reads the mask from targets filled with INVALID_JOINT.
    marked = target.copy()
    for sample, joint in zip(*np.nonzero(valid == 0)):
        marked[sample, ..., joint] = INVALID_JOINT
    np.testing.assert_allclose(MaskedHeatmapLoss()(marked, prediction), expected.mean(),
                               rtol=1e-6)
    # A missing joint's prediction can be anything.
    wild = prediction.copy()
    wild[0, ..., 1] = 100.0
    np.testing.assert_allclose(MaskedHeatmapLoss()(marked, wild), expected.mean(), rtol=1e-6)


def test_masked_loss_of_a_clip_is_the_mean_over_its_frames():
    target = RNG.uniform(size=(2, 3, 4, 4, 5)).astype("float32")
    prediction = RNG.uniform(size=(2, 3, 4, 4, 5)).astype("float32")
    target[1, 2, ..., 3] = INVALID_JOINT  # joint 3 missing in the last frame of clip 1
    per_frame = np.stack([
        np.stack([masked_heatmap_loss(target[b, t][None], prediction[b, t][None])[0]
                  for t in range(3)]) for b in range(2)])
    np.testing.assert_allclose(masked_heatmap_loss(target, prediction), per_frame.mean(axis=1),
                               rtol=1e-6)
    squared = ((target[1, 2] - prediction[1, 2]) ** 2).mean(axis=(0, 1))
    np.testing.assert_allclose(per_frame[1, 2], squared[[0, 1, 2, 4]].sum(), rtol=1e-6)


@pytest.mark.tensorflow_only("traces attention_maps in a tf.function, as the serving export does")
def test_attention_maps_traced_with_unknown_sizes():
    import tensorflow as tf

    pair = [RNG.normal(size=(2, 4, 5, 3)).astype("float32"),
            RNG.normal(size=(2, 4, 5, 6)).astype("float32")]
    layer = PoseRegularizedAttention(4, num_keypoints=5, pose_channels=7)
    layer(pair)
    traced = tf.function(layer.attention_maps, input_signature=[[
        tf.TensorSpec((None, None, None, 3), tf.float32),
        tf.TensorSpec((None, None, None, 6), tf.float32)]])
    for key, expected in layer.attention_maps(pair).items():
        np.testing.assert_allclose(traced([tf.constant(x) for x in pair])[key], expected,
                                   rtol=1e-6)
