"""AttentionalPooling against the paper's math, written out in NumPy."""

import keras
import numpy as np
import pytest

from keras_attnpool import AttentionalPooling

RNG = np.random.default_rng(1)


def _randomise(layer, scale=0.3):
    """Kernels and biases of a real, non-trivial size (the default init is near zero)."""
    layer.set_weights([RNG.normal(scale=scale, size=w.shape).astype("float32")
                       for w in layer.get_weights()])


def _second_order_scores(features, top_down_kernel, bottom_up_kernel):
    """(1/n) Tr(X^T X W_k) with W_k = sum_p b_(k)^(p) a_k^(p)T, one sample at a time."""
    batch, channels = features.shape[0], features.shape[-1]
    rank, num_classes = top_down_kernel.shape[1:]
    scores = np.zeros((batch, num_classes))
    for b in range(batch):
        x = features[b].reshape(-1, channels).astype(np.float64)
        gram = x.T @ x
        for k in range(num_classes):
            w = np.zeros((channels, channels))
            for p in range(rank):
                bottom_up = (bottom_up_kernel[:, p, k] if bottom_up_kernel.ndim == 3
                             else bottom_up_kernel[:, p])
                w += np.outer(bottom_up, top_down_kernel[:, p, k])
            scores[b, k] = np.trace(gram @ w) / x.shape[0]
    return scores


@pytest.mark.parametrize("rank", [1, 3])
@pytest.mark.parametrize("class_specific", [False, True])
@pytest.mark.parametrize("shape", [(2, 4, 5, 6), (2, 3, 4, 5, 6)], ids=["image", "video"])
def test_no_bias_is_low_rank_second_order_pooling(rank, class_specific, shape):
    features = RNG.normal(size=shape).astype("float32")
    layer = AttentionalPooling(4, rank=rank, class_specific_bottom_up=class_specific,
                               use_bias=False)
    layer.build(shape)
    _randomise(layer)
    expected = _second_order_scores(
        features, np.asarray(layer.top_down_kernel), np.asarray(layer.bottom_up_kernel))
    np.testing.assert_allclose(layer(features), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rank", [1, 3])
@pytest.mark.parametrize("class_specific", [False, True])
@pytest.mark.parametrize("shape", [(2, 4, 5, 6), (2, 3, 4, 5, 6)], ids=["image", "video"])
def test_output_is_mean_of_attention_map_products(rank, class_specific, shape):
    features = RNG.normal(size=shape).astype("float32")
    layer = AttentionalPooling(4, rank=rank, class_specific_bottom_up=class_specific)
    layer.build(shape)
    _randomise(layer)
    maps = layer.attention_maps(features)
    top_down, bottom_up = np.asarray(maps["top_down"]), np.asarray(maps["bottom_up"])
    grid = shape[:-1]
    assert top_down.shape == grid + (rank, 4)
    assert bottom_up.shape == grid + ((rank, 4) if class_specific else (rank,))
    if not class_specific:
        bottom_up = bottom_up[..., None]
    positions = tuple(range(1, len(shape) - 1))
    expected = (top_down * bottom_up).sum(axis=-2).mean(axis=positions)
    np.testing.assert_allclose(layer(features), expected, rtol=1e-4, atol=1e-5)


def test_maps_are_the_two_1x1_convolutions():
    features = RNG.normal(size=(1, 3, 3, 5)).astype("float32")
    layer = AttentionalPooling(2, rank=2)
    layer.build(features.shape)
    _randomise(layer)
    top_down_kernel, bottom_up_kernel, top_down_bias, bottom_up_bias = layer.get_weights()
    maps = layer.attention_maps(features)
    x = features[0, 1, 2]
    np.testing.assert_allclose(maps["bottom_up"][0, 1, 2], x @ bottom_up_kernel + bottom_up_bias,
                               rtol=1e-5)
    np.testing.assert_allclose(maps["top_down"][0, 1, 2],
                               np.einsum("c,cpk->pk", x, top_down_kernel) + top_down_bias,
                               rtol=1e-5)


@pytest.mark.parametrize("rank", [1, 2])
def test_constant_bottom_up_is_average_pooling_and_a_linear_classifier(rank):
    features = RNG.normal(size=(3, 4, 5, 6)).astype("float32")
    layer = AttentionalPooling(4, rank=rank)
    layer.build(features.shape)
    _randomise(layer)
    top_down_kernel, _, top_down_bias, _ = layer.get_weights()
    constant = np.array([0.5, 2.0][:rank], "float32")
    layer.bottom_up_kernel.assign(np.zeros(layer.bottom_up_kernel.shape, "float32"))
    layer.bottom_up_bias.assign(constant)

    classifier = keras.Sequential([keras.layers.GlobalAveragePooling2D(),
                                   keras.layers.Dense(4)])
    classifier.build(features.shape)
    classifier.layers[-1].set_weights([np.einsum("cpk,p->ck", top_down_kernel, constant),
                                       np.einsum("pk,p->k", top_down_bias, constant)])
    np.testing.assert_allclose(layer(features), classifier(features), rtol=1e-5, atol=1e-5)


def test_default_initialisation_starts_as_average_pooling():
    layer = AttentionalPooling(3)
    layer.build((1, 4, 4, 8))
    maps = layer.attention_maps(RNG.normal(size=(2, 4, 4, 8)).astype("float32"))
    np.testing.assert_allclose(maps["bottom_up"], 1.0, atol=0.05)


def test_dropout_only_in_training_and_only_on_top_down():
    features = np.abs(RNG.normal(size=(2, 4, 4, 8))).astype("float32")
    layer = AttentionalPooling(3, dropout=0.5, seed=3)
    layer.build(features.shape)
    _randomise(layer)
    np.testing.assert_allclose(layer(features, training=False), layer(features), rtol=1e-6)
    trained = np.asarray(layer(features, training=True))
    assert not np.allclose(trained, layer(features))
    # With the top-down kernel zero, only biases remain there: dropout on X cannot matter,
    # so dropout must not touch the bottom-up path.
    layer.top_down_kernel.assign(np.zeros(layer.top_down_kernel.shape, "float32"))
    np.testing.assert_allclose(layer(features, training=True), layer(features), rtol=1e-5)


def test_mixed_precision_pooling_does_not_overflow():
    """Per-position products ~1e3 over 15x15 positions sum past float16's 65504."""
    features = np.full((2, 15, 15, 4), 16.0, "float32")
    reference = AttentionalPooling(2, use_bias=False)
    reference.build(features.shape)
    reference.set_weights([np.full(w.shape, 2.0, "float32") for w in reference.get_weights()])
    expected = np.asarray(reference(features))
    assert np.all(expected > 1000) and np.all(expected * 225 > 65504)
    keras.config.set_dtype_policy("mixed_float16")
    layer = AttentionalPooling(2, use_bias=False)
    layer.build(features.shape)
    layer.set_weights(reference.get_weights())
    out = np.asarray(layer(features.astype("float16"))).astype("float32")
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, expected, rtol=1e-3)


def test_works_after_a_backbone_in_sequential():
    backbone = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(8, 3, strides=2)])
    model = keras.Sequential([backbone])
    model.add(AttentionalPooling(5))
    out = model(np.zeros((2, 16, 16, 3), "float32"))
    assert out.shape == (2, 5)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(np.random.rand(4, 16, 16, 3), np.array([0, 1, 2, 3]), epochs=1, verbose=0)


@pytest.mark.parametrize("kwargs, name", [
    ({"num_classes": 0}, "num_classes"),
    ({"num_classes": 2.5}, "num_classes"),
    ({"num_classes": 3, "rank": 0}, "rank"),
    ({"num_classes": 3, "dropout": 1.0}, "dropout"),
])
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}` must be"):
        AttentionalPooling(**kwargs)


WRONG_RANKS = [((2, 8), "expected min_ndim=4, found ndim=2"),
               ((2, 4, 8), "expected min_ndim=4, found ndim=3"),
               ((2, 1, 2, 3, 4, 8), "expected max_ndim=5, found ndim=6")]


@pytest.mark.parametrize("shape, expected", WRONG_RANKS)
def test_wrong_rank_names_the_layer_and_the_accepted_ranks(shape, expected):
    layer = AttentionalPooling(3, name="head")
    with pytest.raises(ValueError, match=f"layer 'head' .*{expected}"):
        layer(np.zeros(shape, "float32"))
    with pytest.raises(ValueError, match=f"layer 'head' .*{expected}"):
        layer.attention_maps(np.zeros(shape, "float32"))
    assert not layer.built


@pytest.mark.parametrize("shape, expected", WRONG_RANKS)
def test_built_layer_rejects_a_wrong_rank_in_attention_maps(shape, expected):
    layer = AttentionalPooling(3, name="head")
    layer(np.zeros((1, 4, 4, 8), "float32"))
    with pytest.raises(ValueError, match=f"layer 'head' .*{expected}"):
        layer.attention_maps(np.zeros(shape, "float32"))


def test_built_layer_rejects_another_channel_count():
    layer = AttentionalPooling(3, name="head")
    layer(np.zeros((1, 4, 4, 8), "float32"))
    for method in (layer, layer.attention_maps):
        with pytest.raises(ValueError, match="layer 'head' .*axis -1 of input shape to have "
                                             "value 8"):
            method(np.zeros((1, 4, 4, 6), "float32"))


def test_unknown_channel_count_is_rejected_when_building():
    with pytest.raises(ValueError, match="'head' needs a known channel count"):
        AttentionalPooling(3, name="head")(keras.KerasTensor((None, 4, 4, None)))


@pytest.mark.tensorflow_only("traces attention_maps in a tf.function, as the serving export does")
@pytest.mark.parametrize("shape", [(2, 4, 5, 8), (2, 3, 4, 5, 8)], ids=["image", "video"])
def test_attention_maps_traced_with_unknown_sizes(shape):
    import tensorflow as tf

    features = RNG.normal(size=shape).astype("float32")
    layer = AttentionalPooling(3, rank=2)
    layer.build(shape)
    _randomise(layer)
    unknown = tf.TensorSpec((None,) * (len(shape) - 1) + (8,), tf.float32)
    traced = tf.function(layer.attention_maps, input_signature=[unknown])
    for key, expected in layer.attention_maps(features).items():
        # Traced and eager kernels may sum in another order: float32 rounding only.
        np.testing.assert_allclose(traced(tf.constant(features))[key], expected, rtol=1e-5,
                                   atol=1e-6)
    with pytest.raises(ValueError, match="axis -1 of input shape to have value 8"):
        tf.function(layer.attention_maps).get_concrete_function(
            tf.TensorSpec((None, None, None, 6), tf.float32))
