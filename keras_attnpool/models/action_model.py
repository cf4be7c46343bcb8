"""`build_action_model`: a backbone and a pooling head, for images or for clips of frames."""

import keras
from keras import ops

from keras_attnpool.layers import common
from keras_attnpool.models import backbones
from keras_attnpool.models.heads import HEADS, get_head_spec

TEMPORAL_POOLING = ("consensus", "attention")


@keras.saving.register_keras_serializable(package="keras_attnpool")
class FoldFrames(keras.layers.Layer):
    """(B, T, ...) -> (B*T, ...): lets a single-frame network run on every frame at once."""

    def call(self, inputs):
        return ops.reshape(inputs, (-1,) + tuple(inputs.shape[2:]))

    def compute_output_shape(self, input_shape):
        batch, frames = input_shape[0], input_shape[1]
        folded = None if batch is None or frames is None else batch * frames
        return (folded,) + tuple(input_shape[2:])


@keras.saving.register_keras_serializable(package="keras_attnpool")
class UnfoldFrames(keras.layers.Layer):
    """(B*T, ...) -> (B, T, ...), the inverse of `FoldFrames`."""

    def __init__(self, num_frames, **kwargs):
        super().__init__(**kwargs)
        common.check_positive_int("num_frames", num_frames)
        self.num_frames = num_frames

    def call(self, inputs):
        return ops.reshape(inputs, (-1, self.num_frames) + tuple(inputs.shape[1:]))

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None else input_shape[0] // self.num_frames
        return (batch, self.num_frames) + tuple(input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "num_frames": self.num_frames}


def _as_float32(outputs):
    """Names the outputs and returns them in float32 whatever the dtype policy."""
    if isinstance(outputs, dict):
        return {key: keras.layers.Activation("linear", dtype="float32", name=key)(value)
                for key, value in outputs.items()}
    return keras.layers.Activation("linear", dtype="float32", name="logits")(outputs)


def _check_arguments(num_classes, head, num_frames, temporal_pooling):
    common.check_positive_int("num_classes", num_classes)
    common.check_choice("head", head, HEADS)
    if num_frames is not None:
        common.check_positive_int("num_frames", num_frames)
    common.check_choice("temporal_pooling", temporal_pooling, TEMPORAL_POOLING)
    pooling_heads = [name for name in HEADS if get_head_spec(name).pools_over_time]
    if temporal_pooling == "attention" and head not in pooling_heads:
        raise ValueError(
            f"`temporal_pooling='attention'` pools over time and space with head="
            f"{' or '.join(map(repr, pooling_heads))}; got head={head!r}. Use "
            "temporal_pooling='consensus' with that head."
        )


def build_action_model(num_classes, backbone="resnet101", head="attention",
                       input_shape=(450, 450, 3), num_frames=None, weights=None,
                       temporal_pooling="consensus", name=None, **head_kwargs):
    """A Functional action-recognition model: raw RGB in [0, 255] in, float32 logits out.

    Args:
        num_classes: number of action classes.
        backbone: a name from `list_backbones()`.
        head: "attention" (`AttentionalPooling`), "pose_attention"
            (`PoseRegularizedAttention`, reading the backbone's pose tap), "avg" (average
            pooling + linear classifier) or "second_order" (`SecondOrderPooling`).
        input_shape: (height, width, 3) of one frame. The paper used 450 -> 15x15 ResNet maps.
        num_frames: None for images (input `image` (B, H, W, 3)); T for clips (input `frames`
            (B, T, H, W, 3)).
        weights: None, "imagenet", or the path of a local weights file for the backbone.
        temporal_pooling: for clips, "consensus" runs the image model on every frame and
            averages the logits (the TSN consensus the paper used); "attention" lets
            `AttentionalPooling` pool over time and space together.
        name: model name.
        **head_kwargs: passed to the head (for "avg": `dropout`).

    Returns:
        A `keras.Model` whose output is the logits (B, num_classes), or for
        head="pose_attention" a dict `{"logits", "pose_heatmaps"}` (heatmaps (B, [T,] h, w, J)).
    """
    _check_arguments(num_classes, head, num_frames, temporal_pooling)
    network = backbones.build_backbone(backbone, input_shape, weights)
    spec = get_head_spec(head)
    head_layer = spec.make(num_classes, **head_kwargs)
    name = name or f"{backbone}_{head}"
    if num_frames is None:
        inputs = keras.Input(tuple(input_shape), name="image")
        features = network(inputs)
        outputs = head_layer(spec.head_inputs(features))
        return keras.Model(inputs, _as_float32(outputs), name=name)

    inputs = keras.Input((num_frames,) + tuple(input_shape), name="frames")
    features = network(FoldFrames(name="fold_frames")(inputs))
    if temporal_pooling == "attention":
        clip_features = UnfoldFrames(num_frames, name="unfold_features")(features["final"])
        return keras.Model(inputs, _as_float32(head_layer(clip_features)), name=name)
    outputs = head_layer(spec.head_inputs(features))
    if isinstance(outputs, dict):
        outputs = {key: UnfoldFrames(num_frames, name=f"unfold_{key}")(value)
                   for key, value in outputs.items()}
        outputs["logits"] = _consensus(outputs["logits"])
    else:
        outputs = _consensus(UnfoldFrames(num_frames, name="unfold_logits")(outputs))
    return keras.Model(inputs, _as_float32(outputs), name=name)


def _consensus(frame_logits):
    """(B, T, K) -> (B, K): the mean of the per-frame logits."""
    return keras.layers.GlobalAveragePooling1D(name="consensus")(frame_logits)
