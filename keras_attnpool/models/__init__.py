"""Backbones, pooling heads and the action-recognition model builder."""

from keras_attnpool.models.action_model import build_action_model
from keras_attnpool.models.backbones import (BACKBONES, PretrainedWeightsError, build_backbone,
                                             get_backbone_spec, list_backbones)
from keras_attnpool.models.heads import HEAD_SPECS, HEADS, HeadSpec, get_head_spec, split_model

__all__ = ["BACKBONES", "HEADS", "HEAD_SPECS", "HeadSpec", "PretrainedWeightsError",
           "build_action_model", "build_backbone", "get_backbone_spec", "get_head_spec",
           "list_backbones", "split_model"]
