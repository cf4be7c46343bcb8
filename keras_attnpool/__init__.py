"""Attentional pooling for action recognition (Girdhar & Ramanan, NIPS 2017) in Keras 3."""

from keras_attnpool.layers import AttentionalPooling, PoseRegularizedAttention, SecondOrderPooling
from keras_attnpool.models import build_action_model, list_backbones

__version__ = "0.1.0"
__all__ = ["AttentionalPooling", "PoseRegularizedAttention", "SecondOrderPooling",
           "build_action_model", "list_backbones"]
