"""Every public layer honours the Keras layer contract (see layer_contract.py)."""

import keras
import numpy as np
import pytest

from keras_attnpool import AttentionalPooling, PoseRegularizedAttention, SecondOrderPooling

import layer_contract

RNG = np.random.default_rng(0)
IMAGE = RNG.normal(size=(2, 5, 6, 8)).astype("float32")
VIDEO = RNG.normal(size=(2, 3, 5, 6, 8)).astype("float32")
POSE_PAIR = [RNG.normal(size=(2, 5, 6, 4)).astype("float32"), IMAGE]

# Every argument away from its default: a field missing from get_config shows up.
CASES = {
    "attention_defaults": (AttentionalPooling, {"num_classes": 3}, IMAGE, (2, 3)),
    "attention_all_args": (
        AttentionalPooling,
        {"num_classes": 3, "rank": 2, "class_specific_bottom_up": True, "use_bias": False,
         "dropout": 0.25, "activation": "sigmoid", "top_down_initializer": "he_normal",
         "bottom_up_initializer": "glorot_normal", "top_down_bias_initializer": "ones",
         "bottom_up_bias_initializer": "zeros", "kernel_regularizer": "l2", "seed": 7},
        IMAGE, (2, 3)),
    "attention_video": (AttentionalPooling, {"num_classes": 4, "rank": 3}, VIDEO, (2, 4)),
    "second_order_defaults": (SecondOrderPooling, {"num_classes": 3}, IMAGE, (2, 3)),
    "second_order_all_args": (
        SecondOrderPooling,
        {"num_classes": 3, "projection_dim": 5, "use_bias": False, "dropout": 0.25,
         "activation": "sigmoid", "kernel_initializer": "he_normal", "kernel_regularizer": "l2",
         "epsilon": 1e-6, "seed": 7},
        VIDEO, (2, 3)),
    "pose_single_input": (
        PoseRegularizedAttention, {"num_classes": 3, "pose_channels": 6}, IMAGE,
        {"logits": (2, 3), "pose_heatmaps": (2, 5, 6, 16)}),
    "pose_all_args": (
        PoseRegularizedAttention,
        {"num_classes": 3, "num_keypoints": 4, "pose_channels": 6, "use_bias": False,
         "dropout": 0.25, "activation": "sigmoid", "top_down_initializer": "he_normal",
         "bottom_up_initializer": "glorot_normal", "bottom_up_bias_initializer": "ones",
         "pose_initializer": "he_uniform", "kernel_regularizer": "l2", "seed": 7},
        POSE_PAIR, {"logits": (2, 3), "pose_heatmaps": (2, 5, 6, 4)}),
}


def _targets(expected_shape):
    if isinstance(expected_shape, dict):
        return {k: RNG.normal(size=v).astype("float32") for k, v in expected_shape.items()}
    return RNG.normal(size=expected_shape).astype("float32")


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_round_trip(case):
    layer_cls, kwargs, _, _ = CASES[case]
    config = layer_contract.check_config_round_trip(layer_cls, kwargs)
    for key, value in kwargs.items():
        if isinstance(value, (int, float, bool)) and not isinstance(value, str):
            assert config[key] == value, key


@pytest.mark.parametrize("case", sorted(CASES))
def test_symbolic_and_eager_call(case):
    layer_contract.check_symbolic_and_eager(*CASES[case])


@pytest.mark.parametrize("case", sorted(CASES))
def test_save_and_load(case, tmp_path):
    layer_cls, kwargs, data, _ = CASES[case]
    layer_contract.check_save_and_load(layer_cls, kwargs, data, tmp_path)


@pytest.mark.parametrize("case", sorted(CASES))
def test_training_step(case):
    layer_cls, kwargs, data, shape = CASES[case]
    layer_contract.check_training_step(layer_cls, kwargs, data, _targets(shape))


@pytest.mark.parametrize("case", sorted(CASES))
def test_mixed_precision(case):
    layer_cls, kwargs, data, _ = CASES[case]
    layer_contract.check_mixed_precision(layer_cls, kwargs, data)


def test_activation_is_applied():
    logits = AttentionalPooling(3, activation=None, seed=1)
    probabilities = AttentionalPooling.from_config({**logits.get_config(), "activation": "softmax"})
    probabilities.build(IMAGE.shape)
    logits.build(IMAGE.shape)
    probabilities.set_weights(logits.get_weights())
    expected = keras.ops.softmax(logits(IMAGE))
    np.testing.assert_allclose(probabilities(IMAGE), expected, rtol=1e-6)
