"""build_action_model on the tiny backbone: images, clips, heads, saving, bad arguments."""

import keras
import numpy as np
import pytest

from keras_attnpool import AttentionalPooling, build_action_model, list_backbones
from keras_attnpool.models.heads import HEADS

RNG = np.random.default_rng(4)
SHAPE = (32, 40, 3)
IMAGES = RNG.uniform(0, 255, size=(2,) + SHAPE).astype("float32")
CLIPS = RNG.uniform(0, 255, size=(2, 3) + SHAPE).astype("float32")


@pytest.mark.parametrize("head", HEADS)
def test_image_model_outputs(head):
    model = build_action_model(5, backbone="tiny", head=head, input_shape=SHAPE)
    assert model.input.name == "image" or model.inputs[0].name == "image"
    out = model(IMAGES)
    logits = out["logits"] if head == "pose_attention" else out
    assert logits.shape == (2, 5) and logits.dtype == "float32"
    if head == "pose_attention":
        assert out["pose_heatmaps"].shape == (2, 4, 5, 16)


@pytest.mark.parametrize("head", HEADS)
def test_clip_model_averages_frame_logits(head):
    image_model = build_action_model(5, backbone="tiny", head=head, input_shape=SHAPE)
    clip_model = build_action_model(5, backbone="tiny", head=head, input_shape=SHAPE,
                                    num_frames=3)
    assert clip_model.inputs[0].name == "frames"
    clip_model.set_weights(image_model.get_weights())
    out = clip_model(CLIPS)
    frame_out = [image_model(CLIPS[:, t]) for t in range(3)]
    if head == "pose_attention":
        frame_logits = [o["logits"] for o in frame_out]
        np.testing.assert_allclose(out["pose_heatmaps"][:, 1], frame_out[1]["pose_heatmaps"],
                                   rtol=1e-4, atol=1e-4)
    else:
        frame_logits = frame_out
    logits = out["logits"] if head == "pose_attention" else out
    np.testing.assert_allclose(logits, np.mean(frame_logits, axis=0), rtol=1e-4, atol=1e-4)


def test_attention_can_pool_over_time_and_space():
    model = build_action_model(5, backbone="tiny", head="attention", input_shape=SHAPE,
                               num_frames=3, temporal_pooling="attention", rank=2)
    head = model.get_layer("attention_head")
    backbone = model.get_layer("tiny_backbone")
    features = np.stack([backbone(CLIPS[:, t])["final"] for t in range(3)], axis=1)
    assert features.shape == (2, 3, 4, 5, 128)
    np.testing.assert_allclose(model(CLIPS), head(features), rtol=1e-4, atol=1e-4)


def test_preprocessing_is_inside_the_model():
    """Inputs are raw RGB in [0, 255]: the tiny backbone maps them to [-1, 1] itself."""
    model = build_action_model(3, backbone="tiny", head="avg", input_shape=SHAPE)
    backbone = model.get_layer("tiny_backbone")
    preprocess = backbone.get_layer("preprocess")
    np.testing.assert_allclose(preprocess(np.array([[[[0.0, 127.5, 255.0]]]])), [[[[-1, 0, 1]]]])


def test_save_and_load_keras_file(tmp_path):
    model = build_action_model(4, backbone="tiny", head="pose_attention", input_shape=SHAPE,
                               num_frames=3, pose_channels=8, dropout=0.5)
    path = tmp_path / "model.keras"
    model.save(path)
    revived = keras.saving.load_model(path, safe_mode=True)
    for key in ("logits", "pose_heatmaps"):
        np.testing.assert_allclose(revived(CLIPS)[key], model(CLIPS)[key], rtol=1e-5, atol=1e-5)


def test_head_kwargs_reach_the_head():
    model = build_action_model(4, backbone="tiny", head="attention", input_shape=SHAPE, rank=3,
                               class_specific_bottom_up=True)
    head = model.get_layer("attention_head")
    assert isinstance(head, AttentionalPooling)
    assert head.rank == 3 and head.class_specific_bottom_up


def test_mixed_precision_model_trains():
    keras.config.set_dtype_policy("mixed_float16")
    model = build_action_model(3, backbone="tiny", head="attention", input_shape=SHAPE)
    assert model.output.dtype == "float32"
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(IMAGES, np.array([0, 2]), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize("kwargs, pattern", [
    ({"backbone": "resnet9000"}, r"Unknown `backbone`: 'resnet9000'. Accepted values: .*'tiny'"),
    ({"head": "max"}, r"Unknown `head`: 'max'. Accepted values: 'attention', 'pose_attention'"),
    ({"num_classes": 0}, r"`num_classes` must be an integer >= 1"),
    ({"rank": 0}, r"`rank` must be an integer >= 1"),
    ({"num_frames": 0}, r"`num_frames` must be an integer >= 1"),
    ({"temporal_pooling": "max"}, r"Unknown `temporal_pooling`: 'max'. Accepted values"),
    ({"head": "avg", "num_frames": 2, "temporal_pooling": "attention"}, r"head='attention'"),
    ({"input_shape": (4, 4, 3)}, r"`input_shape` .* too small .* >= 8"),
    ({"input_shape": (32, 32)}, r"`input_shape` must be \(height, width, 3\)"),
])
def test_bad_arguments_raise_value_error_naming_them(kwargs, pattern):
    arguments = {"num_classes": 3, "backbone": "tiny", "input_shape": SHAPE, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        build_action_model(**arguments)


def test_list_backbones_names_the_registry():
    names = list_backbones()
    for expected in ("tiny", "resnet50", "resnet101", "resnet152", "resnet101_v2",
                     "inception_v3", "inception_resnet_v2", "mobilenet_v2",
                     "mobilenet_v3_large", "efficientnet_v2_s", "convnext_tiny"):
        assert expected in names


def test_missing_weights_file_is_named(tmp_path):
    missing = tmp_path / "nope.weights.h5"
    with pytest.raises(FileNotFoundError, match="nope.weights.h5"):
        build_action_model(3, backbone="tiny", input_shape=SHAPE, weights=missing)
