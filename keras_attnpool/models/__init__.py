"""Backbones and the action-recognition model builder."""

from keras_attnpool.models.action_model import HEADS, build_action_model
from keras_attnpool.models.backbones import (BACKBONES, PretrainedWeightsError, build_backbone,
                                             get_backbone_spec, list_backbones)

__all__ = ["BACKBONES", "HEADS", "PretrainedWeightsError", "build_action_model",
           "build_backbone", "get_backbone_spec", "list_backbones"]
