"""Head registry: every pooling head `build_action_model` can put on a backbone, by name.

Like `backbones.BackboneSpec`, a `HeadSpec` says all that other code needs to know about a
head, so that nothing branches on head names or looks layers up by name:

- `layer`: the layer class (built by `make`), and the layer name it gets in a model;
- `taps`: which backbone outputs it reads ("final", or "pose" and "final");
- `attention_maps`: whether it has `attention_maps()` (pictures, served saliency maps);
- `keypoint_targets`: whether it trains against keypoint heatmaps (data + loss);
- `pools_over_time`: whether it can pool a clip's (B, T, H, W, C) features itself;
- `config_kwargs`: a training config -> the layer's keyword arguments.

`split_model(model)` finds a built model's backbone and head by type and returns them with
the head's spec: what summaries, pictures and serving run the trained parts with.

    spec = get_head_spec("attention")
    backbone, head, spec = split_model(model)
    maps = head.attention_maps(spec.head_inputs(backbone(frames)))
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Tuple

import keras
from keras import ops

from keras_attnpool.layers import (AttentionalPooling, PoseRegularizedAttention,
                                   SecondOrderPooling, common)
from keras_attnpool.layers.average_pooling import AveragePoolingHead


def _no_kwargs(config: Any) -> dict:
    return {}


def _attention_kwargs(config: Any) -> dict:
    return {"dropout": config.dropout, "rank": config.rank,
            "class_specific_bottom_up": config.class_specific_bottom_up}


def _dropout_kwargs(config: Any) -> dict:
    return {"dropout": config.dropout}


def _second_order_kwargs(config: Any) -> dict:
    return {"dropout": config.dropout, "projection_dim": 256}


@dataclasses.dataclass(frozen=True)
class HeadSpec:
    """What a head is and what it needs; see the module docstring."""

    name: str
    layer: type
    taps: Tuple[str, ...] = ("final",)
    attention_maps: bool = False
    keypoint_targets: bool = False
    pools_over_time: bool = False
    config_kwargs: Callable[[Any], dict] = _no_kwargs

    @property
    def layer_name(self) -> str:
        return f"{self.name}_head"

    def make(self, num_classes: int, **kwargs) -> keras.layers.Layer:
        """The head layer; unknown keyword arguments raise TypeError."""
        return self.layer(num_classes, name=self.layer_name, **kwargs)

    def head_inputs(self, features: Dict[str, Any]):
        """The head's input from a backbone's {"final", "pose"} outputs."""
        inputs = [features[tap] for tap in self.taps]
        return inputs[0] if len(inputs) == 1 else inputs

    def bottom_up(self, head: keras.layers.Layer, features: Dict[str, Any]):
        """float32 (B, h, w) saliency the head pools with (summed over the rank), or
        (B, h, w, K) for class-specific bottom-up maps; uniform 1 / (h w) for heads without
        attention maps (they weigh every position alike)."""
        final = features["final"]
        if not self.attention_maps:
            shape = ops.shape(final)[:3]
            return ops.ones(shape, "float32") / float(final.shape[1] * final.shape[2])
        maps = head.attention_maps(self.head_inputs(features))["bottom_up"]
        return ops.sum(ops.cast(maps, "float32"), axis=3)


_SPECS = (
    HeadSpec("attention", AttentionalPooling, attention_maps=True, pools_over_time=True,
             config_kwargs=_attention_kwargs),
    HeadSpec("pose_attention", PoseRegularizedAttention, taps=("pose", "final"),
             attention_maps=True, keypoint_targets=True, config_kwargs=_dropout_kwargs),
    HeadSpec("avg", AveragePoolingHead, config_kwargs=_dropout_kwargs),
    HeadSpec("second_order", SecondOrderPooling, config_kwargs=_second_order_kwargs),
)
HEAD_SPECS: Dict[str, HeadSpec] = {spec.name: spec for spec in _SPECS}
HEADS: Tuple[str, ...] = tuple(HEAD_SPECS)


def get_head_spec(name: str) -> HeadSpec:
    """The spec of head `name`; ValueError naming the accepted heads otherwise."""
    common.check_choice("head", name, HEADS)
    return HEAD_SPECS[name]


def _is_backbone(layer: keras.layers.Layer) -> bool:
    """`backbones.build_backbone`'s models: a keras.Model with {"final", "pose"} outputs."""
    return (isinstance(layer, keras.Model) and isinstance(layer.output, dict)
            and set(layer.output) == {"final", "pose"})


def split_model(model: keras.Model) -> Tuple[keras.Model, keras.layers.Layer, HeadSpec]:
    """(backbone, head layer, head spec) of a `build_action_model` model (image or clip).

    Raises:
        ValueError: the model does not hold exactly one backbone and one registered head.
    """
    backbones = [layer for layer in model.layers if _is_backbone(layer)]
    heads = [(layer, spec) for layer in model.layers for spec in _SPECS
             if type(layer) is spec.layer]
    if len(backbones) != 1 or len(heads) != 1:
        raise ValueError(
            f"model '{model.name}' must hold one backbone and one head as "
            f"`build_action_model` builds them (heads: {', '.join(HEADS)}); found "
            f"{len(backbones)} backbones and {len(heads)} heads.")
    (head, spec), = heads
    return backbones[0], head, spec
