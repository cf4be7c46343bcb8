"""AveragePoolingHead (head="avg"): the Keras layer contract and NumPy correctness."""

import numpy as np
import pytest

from keras_attnpool.layers.average_pooling import AveragePoolingHead

import layer_contract

RNG = np.random.default_rng(0)
IMAGE = RNG.normal(size=(2, 5, 6, 8)).astype("float32")
CASES = {
    "defaults": {"num_classes": 3},
    # Every argument away from its default: a field missing from get_config shows up.
    "all_args": {"num_classes": 3, "use_bias": False, "dropout": 0.25, "activation": "sigmoid",
                 "kernel_initializer": "he_normal", "kernel_regularizer": "l2", "seed": 7},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_contract(case, tmp_path):
    kwargs = CASES[case]
    config = layer_contract.check_config_round_trip(AveragePoolingHead, kwargs)
    assert all(config[k] == v for k, v in kwargs.items() if isinstance(v, (int, float)))
    layer_contract.check_symbolic_and_eager(AveragePoolingHead, kwargs, IMAGE, (2, 3))
    layer_contract.check_save_and_load(AveragePoolingHead, kwargs, IMAGE, tmp_path)
    layer_contract.check_training_step(AveragePoolingHead, kwargs, IMAGE,
                                       RNG.normal(size=(2, 3)).astype("float32"))
    layer_contract.check_mixed_precision(AveragePoolingHead, kwargs, IMAGE)


def test_scores_are_the_mean_feature_times_the_classifier():
    layer = AveragePoolingHead(3)
    layer.build(IMAGE.shape)
    kernel = RNG.normal(size=(8, 3)).astype("float32")
    bias = RNG.normal(size=(3,)).astype("float32")
    layer.set_weights([kernel, bias])
    expected = IMAGE.mean(axis=(1, 2)) @ kernel + bias
    np.testing.assert_allclose(layer(IMAGE), expected, rtol=1e-5, atol=1e-6)


def test_wrong_rank_names_the_layer():
    with pytest.raises(ValueError, match="avg_head"):
        AveragePoolingHead(3, name="avg_head")(np.ones((2, 5, 6, 7, 8), "float32"))
