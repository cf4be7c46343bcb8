"""Attention pictures for TensorBoard during training.

A fixed set of test frames (the middle frame of the first clips the final evaluation
scores) is run through the backbone and the attention head at every checkpoint step and
drawn by
`keras_attnpool.visualize` (input, bottom-up, top-down and product maps, top-k labels), the
same pictures as `training/visualize.py` makes.
"""

from typing import Callable, List, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from keras_attnpool import visualize
from keras_attnpool.data.input import pipeline
from keras_attnpool.data.input.files import split_record_files
from keras_attnpool.models import split_model
from keras_attnpool.trainer import evaluation
from keras_attnpool.workdir import Workdir, WorkdirError

NUM_PICTURES = 4


def _fixed_frames(config) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """(frames (N, S, S, 3), labels (N,)) of the first test clips, prepared as the
    evaluation prepares them, or None."""
    try:
        files = split_record_files(config.records_dir,
                                   evaluation.final_split(config.dataset))
    except (ValueError, FileNotFoundError):
        return None
    data = pipeline.eval_dataset(files, image_size=config.image_size, batch_size=NUM_PICTURES,
                                 test_frames=1, resize_short=config.resize_short,
                                 image_mode=not config.is_video, fold_frames=True,
                                 multi_label=config.multi_label)
    for frames, labels, _ in data.take(1):
        return frames.numpy(), labels.numpy()
    return None


def _class_names(config, num_classes: int) -> List[str]:
    """The workdir's labels.txt (written before training starts), else "class k"."""
    try:
        names = Workdir(config.workdir).read_labels()
    except WorkdirError:
        names = []
    return names if len(names) == num_classes else [f"class {k}" for k in range(num_classes)]


def draw(frames: np.ndarray, maps: visualize.AttentionMaps, class_names: List[str],
         labels: Optional[np.ndarray] = None) -> np.ndarray:
    """One `visualize.attention_figure` per frame, as uint8 (N, H, W, 3)."""
    pictures = []
    for i in range(len(frames)):
        one = visualize.AttentionMaps(maps.bottom_up[i:i + 1], maps.top_down[i:i + 1],
                                      maps.product[i:i + 1], maps.logits[i:i + 1])
        true_label = None if labels is None or np.ndim(labels[i]) else int(labels[i])
        figure = visualize.attention_figure(frames[i:i + 1], one, class_names,
                                            true_label=true_label, title=f"test example {i}")
        pictures.append(visualize.figure_to_array(figure))
    return np.stack(pictures)


def attention_pictures(config, model: keras.Model) -> Optional[Callable[[int, dict], None]]:
    """An `on_log` hook for `Trainer.fit` that writes attention pictures, or None when the
    head has no attention maps."""
    backbone, head, spec = split_model(model)
    if not spec.attention_maps:
        return None
    fixed = _fixed_frames(config)
    if fixed is None:
        return None
    frames, labels = fixed
    class_names = _class_names(config, head.num_classes)

    def on_log(step: int, logs: dict) -> None:
        if step % config.checkpoint_every and step != config.steps:
            return
        features = backbone(frames, training=False)
        maps = visualize.maps_from_head(head, spec.head_inputs(features))
        tf.summary.image("attention", draw(frames, maps, class_names, labels),
                         max_outputs=NUM_PICTURES)

    return on_log
