"""Attention pictures for TensorBoard during training.

A fixed set of test frames (the middle frame of the first test clips) is run through the
backbone and the attention head at every checkpoint step; the bottom-up map, normalised and
upsampled, is laid over each frame in red.
"""

from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from keras_attnpool.data import pipeline

NUM_PICTURES = 4


def _fixed_frames(config, records_dir: str) -> Optional[np.ndarray]:
    try:
        files = pipeline.split_record_files(records_dir, "test")
    except (ValueError, FileNotFoundError):
        return None
    data = pipeline.eval_dataset(files, image_size=config.image_size, batch_size=NUM_PICTURES,
                                 test_frames=1, resize_short=config.resize_short,
                                 image_mode=not config.is_video, fold_frames=True,
                                 multi_label=config.multi_label)
    for frames, _, _ in data.take(1):
        return frames.numpy()
    return None


def overlay(frames: np.ndarray, bottom_up: np.ndarray) -> np.ndarray:
    """frames (B, H, W, 3) in [0, 255], maps (B, h, w) -> uint8 pictures (B, H, W, 3)."""
    maps = bottom_up - bottom_up.min(axis=(1, 2), keepdims=True)
    maps = maps / np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-6)
    maps = tf.image.resize(maps[..., None], frames.shape[1:3], method="bilinear").numpy()
    red = np.concatenate([np.ones_like(maps), np.zeros_like(maps), np.zeros_like(maps)], -1)
    mixed = frames / 255.0 * (1 - 0.5 * maps) + 0.5 * maps * red
    return np.clip(mixed * 255, 0, 255).astype(np.uint8)


def attention_pictures(config, records_dir: str,
                       model: keras.Model) -> Optional[Callable[[int, dict], None]]:
    """An `on_log` hook for `Trainer.fit` that writes attention pictures, or None when the
    head has no attention maps."""
    head_name = {"attention": "attention_head", "pose_attention": "pose_attention_head"}.get(
        config.head)
    if head_name is None:
        return None
    frames = _fixed_frames(config, records_dir)
    if frames is None:
        return None
    backbone = model.get_layer(f"{config.backbone}_backbone")
    head = model.get_layer(head_name)

    def on_log(step: int, logs: dict) -> None:
        if step % config.checkpoint_every and step != config.steps:
            return
        features = backbone(frames, training=False)
        head_input = ([features["pose"], features["final"]] if head_name ==
                      "pose_attention_head" else features["final"])
        maps = np.asarray(head.attention_maps(head_input)["bottom_up"])
        bottom_up = maps.reshape(maps.shape[:3] + (-1,)).sum(axis=-1)
        tf.summary.image("attention/bottom_up", overlay(frames, bottom_up),
                         max_outputs=NUM_PICTURES)

    return on_log
