"""Every registered backbone with every head; feature-map sizes; weights files; offline ImageNet."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_attnpool import build_action_model, list_backbones
from keras_attnpool.models import (PretrainedWeightsError, backbones, build_backbone,
                                   get_backbone_spec)
from keras_attnpool.models.heads import HEADS, get_head_spec

# Small, odd sizes: "same" and "valid" padding round differently there.
SIZE = {"inception_v3": 107, "inception_resnet_v2": 107, "tiny": 45}
DEFAULT_SIZE = 99


def _head_kwargs(head):
    return {"pose_attention": {"pose_channels": 16},
            "second_order": {"projection_dim": 16}}.get(head, {})


@pytest.mark.slow
@pytest.mark.parametrize("index, name", list(enumerate(list_backbones())))
def test_backbone_builds_with_every_head_and_documented_map_size(index, name):
    """Every head on the backbone's feature maps (one backbone built), and the whole
    model through build_action_model with one head per backbone, in turn, so that every
    head is built that way too."""
    spec = get_backbone_spec(name)
    size = SIZE.get(name, DEFAULT_SIZE)
    backbone = build_backbone(name, (size, size, 3))
    features = backbone(np.full((1, size, size, 3), 128.0, "float32"))
    side = spec.feature_size(size)
    assert features["final"].shape[1:3] == (side, side)
    assert features["pose"].shape[1:3] == (side, side)
    for head in HEADS:
        head_spec = get_head_spec(head)
        out = head_spec.make(7, **_head_kwargs(head))(head_spec.head_inputs(features))
        logits = out["logits"] if head == "pose_attention" else out
        assert logits.shape == (1, 7) and np.all(np.isfinite(logits)), head
    head = HEADS[index % len(HEADS)]
    model = build_action_model(7, backbone=name, head=head, input_shape=(size, size, 3),
                               **_head_kwargs(head))
    out = model(np.full((1, size, size, 3), 128.0, "float32"))
    logits = out["logits"] if head == "pose_attention" else out
    assert logits.shape == (1, 7)
    assert np.all(np.isfinite(logits))


@pytest.mark.slow
@pytest.mark.parametrize("name, size, side", [("resnet101", 450, 15), ("resnet50", 224, 7),
                                              ("inception_v3", 299, 8),
                                              ("convnext_tiny", 450, 14)])
def test_feature_map_size_at_paper_and_standard_inputs(name, size, side):
    assert get_backbone_spec(name).feature_size(size) == side
    backbone = build_backbone(name, (size, size, 3))
    assert backbone.output["final"].shape[1:3] == (side, side)


@pytest.mark.slow
def test_local_weights_file_is_loaded(tmp_path):
    """A keras.applications 'notop' weights file, as a user would download it."""
    source = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(64, 64, 3))
    rng = np.random.default_rng(0)
    source.set_weights([rng.normal(size=w.shape).astype("float32") for w in source.weights])
    path = tmp_path / "resnet50_notop.weights.h5"
    source.save_weights(path)
    model = build_action_model(3, backbone="resnet50", head="avg", input_shape=(64, 64, 3),
                               weights=str(path))
    network = model.get_layer("resnet50_backbone").get_layer(source.name)
    for expected, loaded in zip(source.weights, network.weights):
        np.testing.assert_array_equal(np.asarray(expected), np.asarray(loaded))


@pytest.mark.slow
def test_imagenet_without_network_says_how_to_pass_a_file(tmp_path):
    """No cached file and no route to the weights: one clear error, no traceback from Keras."""
    code = (
        "from keras_attnpool import build_action_model\n"
        "from keras_attnpool.models import PretrainedWeightsError\n"
        "try:\n"
        "    build_action_model(3, backbone='mobilenet_v2', input_shape=(64, 64, 3),"
        " weights='imagenet')\n"
        "except PretrainedWeightsError as error:\n"
        "    print('ERROR:', error)\n"
    )
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras_home"), "TF_CPP_MIN_LOG_LEVEL": "2",
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            timeout=300)
    assert "ERROR: Could not download ImageNet weights for backbone 'mobilenet_v2'" in result.stdout
    assert "pass weights='/path/to/file.h5'" in result.stdout


def test_tiny_has_no_imagenet_weights():
    with pytest.raises(ValueError, match="no ImageNet weights"):
        build_backbone("tiny", (32, 32, 3), weights="imagenet")


def test_tiny_backbone_runs_on_this_backend():
    """Builds and runs on any backend; its BatchNormalization synchronizes on TensorFlow only."""
    backbone = build_backbone("tiny", (40, 48, 3))
    features = backbone(np.full((2, 40, 48, 3), 128.0, "float32"))
    assert tuple(features["final"].shape) == (2, 5, 6, 128)
    assert tuple(features["pose"].shape) == (2, 5, 6, 128)
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(features["final"])))
    network = backbone.get_layer("tiny")
    norms = [layer for layer in network.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 6
    on_tensorflow = keras.backend.backend() == "tensorflow"
    assert all(layer.synchronized == on_tensorflow for layer in norms)


def test_tiny_moving_statistics_follow_the_batches_within_a_short_run():
    """The tiny backbone trains for a few hundred steps: after 80 training-mode passes its
    moving statistics (what the evaluated model normalises with) must be those of the
    batches, not still their initial 0 and 1 (at Keras' momentum 0.99, 45% of those would
    remain, against batch variances far from 1)."""
    backbone = build_backbone("tiny", (32, 32, 3))
    network = backbone.get_layer("tiny")
    images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    inputs = backbone.get_layer("preprocess")(images)
    for _ in range(80):
        network(inputs, training=True)
    norms = [layer for layer in network.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        seen = keras.ops.convert_to_numpy(
            keras.Model(network.input, layer.input)(inputs, training=True))
        np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_variance),
                                   seen.var(axis=(0, 1, 2)), rtol=0.05, err_msg=layer.name)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_mean),
                                   seen.mean(axis=(0, 1, 2)), rtol=0.05, atol=1e-3,
                                   err_msg=layer.name)


def _tiny_weights_file(tmp_path):
    source = build_backbone("tiny", (16, 16, 3)).get_layer("tiny")
    rng = np.random.default_rng(0)
    source.set_weights([rng.normal(size=w.shape).astype("float32") for w in source.weights])
    path = tmp_path / "tiny.weights.h5"
    source.save_weights(path)
    return source, path


def test_tiny_weights_file_is_loaded(tmp_path):
    source, path = _tiny_weights_file(tmp_path)
    network = build_backbone("tiny", (24, 24, 3), weights=path).get_layer("tiny")
    for expected, loaded in zip(source.weights, network.weights):
        np.testing.assert_array_equal(np.asarray(expected), np.asarray(loaded))


def test_wrong_weights_file_names_the_file(tmp_path):
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = tmp_path / "dense.weights.h5"
    other.save_weights(path)
    with pytest.raises(PretrainedWeightsError, match=f"Could not load weights file {path}"):
        build_backbone("tiny", (16, 16, 3), weights=path)


def test_building_error_without_weights_is_not_called_a_weights_error():
    """An architecture that cannot be built says so, not 'Could not load weights file None'."""
    with pytest.raises(ValueError) as error:
        backbones._construct(get_backbone_spec("resnet50"), (16, 16, 3), weights=None)
    assert "weights file" not in str(error.value)
