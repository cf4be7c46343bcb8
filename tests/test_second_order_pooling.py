"""SecondOrderPooling against bilinear pooling written out in NumPy."""

import numpy as np
import pytest

from keras_attnpool import SecondOrderPooling

RNG = np.random.default_rng(2)


def _bilinear_scores(features, classifier, bias, projection=None, projection_bias=None,
                     epsilon=1e-12):
    scores = []
    for sample in features:
        x = sample.reshape(-1, sample.shape[-1]).astype(np.float64)
        if projection is not None:
            x = x @ projection + projection_bias
        g = (x.T @ x / len(x)).reshape(-1)
        g = np.sign(g) * np.sqrt(np.abs(g) + epsilon)
        g = g / np.sqrt(np.sum(g ** 2) + epsilon)
        scores.append(g @ classifier + bias)
    return np.stack(scores)


@pytest.mark.parametrize("shape", [(2, 4, 5, 6), (2, 3, 4, 5, 6)], ids=["image", "video"])
def test_matches_numpy_bilinear_pooling(shape):
    features = RNG.normal(size=shape).astype("float32")
    layer = SecondOrderPooling(3)
    layer.build(shape)
    layer.set_weights([RNG.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
    kernel, bias = layer.get_weights()
    np.testing.assert_allclose(layer(features), _bilinear_scores(features, kernel, bias),
                               rtol=1e-4, atol=1e-5)


def test_projection_first():
    features = RNG.normal(size=(2, 4, 5, 16)).astype("float32")
    layer = SecondOrderPooling(3, projection_dim=4)
    layer.build(features.shape)
    layer.set_weights([RNG.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
    projection, projection_bias, kernel, bias = layer.get_weights()
    assert kernel.shape == (16, 3)
    np.testing.assert_allclose(
        layer(features),
        _bilinear_scores(features, kernel, bias, projection, projection_bias),
        rtol=1e-4, atol=1e-5)


def test_descriptor_is_unit_norm():
    layer = SecondOrderPooling(3)
    descriptor = np.asarray(layer.bilinear_features(RNG.normal(size=(2, 3, 3, 5)) * 100))
    np.testing.assert_allclose(np.linalg.norm(descriptor, axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("kwargs, name", [
    ({"num_classes": 0}, "num_classes"),
    ({"num_classes": 3, "projection_dim": 0}, "projection_dim"),
    ({"num_classes": 3, "dropout": -0.1}, "dropout"),
])
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}` must be"):
        SecondOrderPooling(**kwargs)


@pytest.mark.parametrize("shape, expected", [((2, 8), "expected min_ndim=4, found ndim=2"),
                                             ((2, 1, 2, 3, 4, 8), "expected max_ndim=5")])
def test_wrong_rank_names_the_layer_and_the_accepted_ranks(shape, expected):
    layer = SecondOrderPooling(3, name="bilinear")
    with pytest.raises(ValueError, match=f"layer 'bilinear' .*{expected}"):
        layer(np.zeros(shape, "float32"))
    with pytest.raises(ValueError, match=f"layer 'bilinear' .*{expected}"):
        layer.bilinear_features(np.zeros(shape, "float32"))
    layer(np.zeros((1, 3, 3, 8), "float32"))
    with pytest.raises(ValueError, match=f"layer 'bilinear' .*{expected}"):
        layer.bilinear_features(np.zeros(shape, "float32"))
