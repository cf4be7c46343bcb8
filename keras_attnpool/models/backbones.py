"""Backbone registry: keras.applications networks and a tiny CPU network, with feature taps.

Every entry knows the layer whose output the attention heads read (`final`), the layer the
pose branch reads (`pose`, of the same stride), its preprocessing and how big its feature
map is for a given input size. `build_backbone` returns a model from raw RGB in [0, 255] to
`{"final": (B, h, w, C), "pose": (B, h, w, C')}`.
"""

import dataclasses
import math
import os
from typing import Callable, Optional

import keras
from keras import ops

from keras_attnpool.layers import common

# Mean RGB of ImageNet in [0, 255], for "caffe"-style preprocessing (BGR, mean-subtracted).
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="keras_attnpool")
class Preprocess(keras.layers.Layer):
    """Maps raw RGB in [0, 255] to what a backbone was trained on.

    Modes: "caffe" (RGB->BGR, ImageNet mean subtracted: ResNet v1), "tf" (scaled to [-1, 1]:
    ResNet v2, Inception, MobileNetV2), "torch" ([0, 1], ImageNet mean/std), "none" (the
    backbone rescales inside: MobileNetV3, EfficientNetV2, ConvNeXt).
    """

    MODES = ("caffe", "tf", "torch", "none")

    def __init__(self, mode="tf", **kwargs):
        super().__init__(**kwargs)
        common.check_choice("mode", mode, self.MODES)
        self.mode = mode

    def call(self, images):
        x = ops.cast(images, self.compute_dtype)
        if self.mode == "caffe":
            return x[..., ::-1] - ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=x.dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, dtype=x.dtype)
            std = ops.convert_to_tensor(_TORCH_STD, dtype=x.dtype)
            return (x / 255.0 - mean) / std
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def _same_padding_size(size: int, stride: int) -> int:
    for _ in range(int(math.log2(stride))):
        size = math.ceil(size / 2)
    return size


def _convnext_size(size: int, stride: int) -> int:
    size //= 4  # 4x4 stem with stride 4, then 2x2 stride-2 downsamplings, all "valid"
    for _ in range(int(math.log2(stride)) - 2):
        size //= 2
    return size


def _inception_size(size: int, stride: int) -> int:
    del stride  # the Inception stems are "valid" convolutions: the size shrinks by more
    reduce = lambda s: (s - 3) // 2 + 1  # noqa: E731  3x3 stride 2, valid
    size = reduce(size) - 2  # conv 3x3/2, conv 3x3 (valid)
    size = reduce(size) - 2  # max-pool 3x3/2, conv 1x1, conv 3x3 (valid)
    return reduce(reduce(reduce(size)))  # max-pool, then the two grid reductions


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """What the model builder needs to know about one backbone."""

    name: str
    constructor: Callable[..., keras.Model]
    preprocessing: str
    pose_layer: Optional[str]  # None: the pose branch reads the final features
    stride: int = 32
    min_size: int = 32
    size_rule: Callable[[int, int], int] = _same_padding_size

    @property
    def has_imagenet_weights(self) -> bool:
        return self.name != "tiny"

    def feature_size(self, input_size: int) -> int:
        """Height (or width) of the final feature map for an input of this height (width)."""
        return self.size_rule(int(input_size), self.stride)


# The tiny backbone's batch-normalisation momentum (`_tiny_backbone` says why).
TINY_BN_MOMENTUM = 0.9


def _tiny_backbone(input_shape, weights=None, include_top=False, name="tiny"):
    """Six 3x3 conv + BN + ReLU layers, stride 8, 128 channels: small enough for a CPU.

    Runs on every Keras backend. On TensorFlow its batch normalisation is synchronized:
    the replicas of a `tf.distribute` strategy normalise with the statistics of the global
    batch. Keras supports that only there, so elsewhere each layer is plain
    BatchNormalization (a `.keras` file saved on TensorFlow records `synchronized=True` and
    therefore loads on TensorFlow only; one saved elsewhere loads everywhere).

    Its moving statistics follow the batches with momentum TINY_BN_MOMENTUM (0.9) rather
    than Keras' 0.99: the tiny backbone trains for a few hundred steps, and at 0.99 the
    statistics that inference uses would still carry a share 0.99^steps of their initial
    values (0 and 1; 9% after 240 steps) against per-channel variances of a few hundredths,
    so the evaluated model would normalise with a variance several times too large.
    """
    del include_top
    synchronized = keras.backend.backend() == "tensorflow"
    inputs = keras.Input(input_shape)
    x = inputs
    for block, (filters, stride) in enumerate([(32, 2), (64, 2), (128, 2)], start=1):
        for conv in (1, 2):
            prefix = f"tiny_block{block}_conv{conv}"
            x = keras.layers.Conv2D(filters, 3, strides=stride if conv == 1 else 1,
                                    padding="same", use_bias=False, name=prefix)(x)
            x = keras.layers.BatchNormalization(momentum=TINY_BN_MOMENTUM,
                                                synchronized=synchronized,
                                                name=f"{prefix}_bn")(x)
            x = keras.layers.ReLU(name=f"{prefix}_relu")(x)
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        model.load_weights(weights)
    return model


def _app(name):
    return getattr(keras.applications, name)


_A = _app
_SPECS = [
    BackboneSpec("tiny", _tiny_backbone, "tf", "tiny_block3_conv1_relu", stride=8, min_size=8),
    BackboneSpec("resnet50", _A("ResNet50"), "caffe", None),
    BackboneSpec("resnet101", _A("ResNet101"), "caffe", None),
    BackboneSpec("resnet152", _A("ResNet152"), "caffe", None),
    BackboneSpec("resnet50_v2", _A("ResNet50V2"), "tf", None),
    BackboneSpec("resnet101_v2", _A("ResNet101V2"), "tf", None),
    BackboneSpec("resnet152_v2", _A("ResNet152V2"), "tf", None),
    BackboneSpec("inception_v3", _A("InceptionV3"), "tf", "mixed9", min_size=75,
                 size_rule=_inception_size),
    BackboneSpec("inception_resnet_v2", _A("InceptionResNetV2"), "tf", "block8_9_ac",
                 min_size=75, size_rule=_inception_size),
    BackboneSpec("mobilenet_v2", _A("MobileNetV2"), "tf", "block_16_project_BN"),
    BackboneSpec("mobilenet_v3_small", _A("MobileNetV3Small"), "none", "expanded_conv_10_add"),
    BackboneSpec("mobilenet_v3_large", _A("MobileNetV3Large"), "none", "expanded_conv_14_add"),
    BackboneSpec("efficientnet_v2_b0", _A("EfficientNetV2B0"), "none", "block6h_add"),
    BackboneSpec("efficientnet_v2_s", _A("EfficientNetV2S"), "none", "block6o_add"),
    BackboneSpec("convnext_tiny", _A("ConvNeXtTiny"), "none",
                 "convnext_tiny_stage_3_block_1_identity", size_rule=_convnext_size),
    BackboneSpec("convnext_small", _A("ConvNeXtSmall"), "none",
                 "convnext_small_stage_3_block_1_identity", size_rule=_convnext_size),
]
BACKBONES = {spec.name: spec for spec in _SPECS}


def list_backbones():
    """Names accepted by `build_action_model(backbone=...)`."""
    return sorted(BACKBONES)


def get_backbone_spec(name: str) -> BackboneSpec:
    common.check_choice("backbone", name, list_backbones())
    return BACKBONES[name]


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights were asked for but could not be fetched or read."""


def _construct(spec: BackboneSpec, input_shape, weights):
    """The backbone network with its weights; only a failure to get weights says weights."""
    if weights == "imagenet":
        if not spec.has_imagenet_weights:
            raise ValueError(
                "Backbone 'tiny' has no ImageNet weights; pass weights=None or a file.")
        return _construct_with_imagenet_weights(spec, input_shape)
    if weights is not None:
        weights = os.fspath(weights)
        if not os.path.isfile(weights):
            raise FileNotFoundError(
                f"`weights` file not found: {weights}. Pass None, 'imagenet', or the path of "
                f"a local weights file for backbone '{spec.name}' (include_top=False)."
            )
    # Built without weights, then loaded: what keras.applications does with a path, and
    # an error from building the architecture itself is then not reported as a weights one.
    network = spec.constructor(input_shape=input_shape, include_top=False, weights=None)
    if weights is not None:
        try:
            network.load_weights(weights)
        except Exception as error:  # h5py and Keras raise several kinds for a wrong file
            raise PretrainedWeightsError(
                f"Could not load weights file {weights} into backbone '{spec.name}': {error}. "
                "It must be the keras.applications 'notop' weights of that architecture."
            ) from error
    return network


def _construct_with_imagenet_weights(spec: BackboneSpec, input_shape):
    try:
        return spec.constructor(input_shape=input_shape, include_top=False, weights="imagenet")
    except Exception as error:  # keras.utils.get_file raises a bare Exception on fetch failure
        raise PretrainedWeightsError(
            f"Could not download ImageNet weights for backbone '{spec.name}' ({error}). "
            "On a machine with network, run keras.applications once or download the "
            "'..._notop.h5' file named in that URL, then pass weights='/path/to/file.h5' "
            "(or put the file in ~/.keras/models/)."
        ) from error


def build_backbone(name: str, input_shape=(224, 224, 3), weights=None) -> keras.Model:
    """Raw RGB in [0, 255] -> {"final": features, "pose": features for the pose branch}.

    Args:
        name: a name from `list_backbones()`.
        input_shape: (height, width, 3); any size >= the backbone's minimum.
        weights: None (random), "imagenet" (needs network or Keras's cache), or a path.
    """
    spec = get_backbone_spec(name)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"`input_shape` must be (height, width, 3); got {input_shape}.")
    if min(input_shape[:2]) < spec.min_size:
        raise ValueError(
            f"`input_shape` {input_shape} is too small for backbone '{name}': height and "
            f"width must be >= {spec.min_size}."
        )
    network = _construct(spec, input_shape, weights)
    final = network.output
    pose = final if spec.pose_layer is None else network.get_layer(spec.pose_layer).output
    features = keras.Model(network.input, {"final": final, "pose": pose}, name=network.name)
    images = keras.Input(input_shape, name="image")
    outputs = features(Preprocess(spec.preprocessing, name="preprocess")(images))
    return keras.Model(images, outputs, name=f"{name}_backbone")
