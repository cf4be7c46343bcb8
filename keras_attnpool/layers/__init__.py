"""Public pooling layers."""

from keras_attnpool.layers.attentional_pooling import AttentionalPooling
from keras_attnpool.layers.pose_regularized_attention import PoseRegularizedAttention
from keras_attnpool.layers.second_order_pooling import SecondOrderPooling

__all__ = ["AttentionalPooling", "PoseRegularizedAttention", "SecondOrderPooling"]
