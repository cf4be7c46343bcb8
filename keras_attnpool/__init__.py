"""Attentional pooling for action recognition, as Keras 3 layers and models."""
