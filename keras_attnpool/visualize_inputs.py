"""What `training/visualize.py` draws from: a workdir's trained model and input files.

Inputs are prepared exactly as the evaluation protocol prepares test clips
(`augment.eval_views`: short side resized, centre crop), so a picture shows what the model
saw. Videos give `num_frames` uniformly spaced frames (`sampling.uniform_indices`, the test
protocol's choice); images give one frame.
"""

import dataclasses
import json
import os
from typing import List, Optional

import keras
import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from keras_attnpool.data import augment, sampling
from keras_attnpool.data.video import DEFAULT_SHORT_SIDE, VideoDecodeError, decode_video

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class InputError(ValueError):
    """An input file that cannot be read as an image or a video."""


@dataclasses.dataclass
class TrainedRun:
    """A workdir's single-frame model with the settings it was trained with."""

    workdir: str
    model: keras.Model
    config: dict
    class_names: List[str]

    @property
    def image_size(self) -> int:
        return int(self.config.get("image_size") or self.model.input_shape[1])

    @property
    def resize_short(self) -> int:
        return int(self.config.get("resize_short") or round(self.image_size * 256 / 224))


def load_run(workdir: str) -> TrainedRun:
    """Loads `workdir/model.keras`, config.json and labels.txt.

    Raises:
        FileNotFoundError: no trained model in the workdir (with what to do).
    """
    workdir = os.path.abspath(os.path.expanduser(workdir))
    model_path = os.path.join(workdir, "model.keras")
    if not os.path.isfile(model_path):
        raise FileNotFoundError(
            f"--workdir={workdir}: no trained model (model.keras); train one first with "
            f"python training/fit.py --workdir={workdir}")
    import keras_attnpool  # noqa: F401  registers the layers for load_model

    model = keras.saving.load_model(model_path, safe_mode=True)
    config = {}
    if os.path.isfile(os.path.join(workdir, "config.json")):
        with open(os.path.join(workdir, "config.json")) as f:
            config = json.load(f)
    # build_action_model names its logits output "logits" (a dict entry for pose models).
    num_classes = int(model.get_layer("logits").output.shape[-1])
    names = [f"class {k}" for k in range(num_classes)]
    labels_path = os.path.join(workdir, "labels.txt")
    if os.path.isfile(labels_path):
        with open(labels_path) as f:
            read = [line.strip() for line in f if line.strip()]
        names = read if len(read) == num_classes else names
    return TrainedRun(workdir, model, config, names)


def is_image_file(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def _read_image(path: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))[None]
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(f"{path}: not a readable image ({error})") from None


def _read_video(path: str, num_frames: int, short_side: Optional[int]) -> np.ndarray:
    try:
        video = decode_video(path, short_side=short_side)
    except VideoDecodeError as error:
        raise InputError(f"{path}: not a readable video ({error})") from None
    indices = sampling.uniform_indices(len(video.frames), num_frames).numpy()
    return video.frames[indices]


def load_frames(path: str, image_size: int, resize_short: int, num_frames: int = 6,
                short_side: Optional[int] = DEFAULT_SHORT_SIDE) -> np.ndarray:
    """An image or video file as model input: float32 (T, S, S, 3) in [0, 255] (T = 1 for
    an image, `num_frames` uniformly spaced frames for a video).

    Raises:
        InputError: a missing file, or one that is not an image or video.
    """
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    if is_image_file(path):
        frames = _read_image(path)
    else:
        frames = _read_video(path, num_frames, short_side)
    crops = augment.eval_views(tf.constant(frames), image_size, max(resize_short, image_size))
    return crops[0].numpy()


def input_frames(run: TrainedRun, path: str, num_frames: int = 6) -> np.ndarray:
    """`load_frames` with the run's own input size and preprocessing."""
    short_side = run.config.get("short_side") or DEFAULT_SHORT_SIDE
    return load_frames(path, run.image_size, run.resize_short, num_frames, short_side)


def picture_name(path: str) -> str:
    """`<stem>_attention.png` for an input file."""
    return os.path.splitext(os.path.basename(path))[0] + "_attention.png"
