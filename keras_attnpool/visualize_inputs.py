"""What `training/visualize.py` draws from: a workdir's trained model and input files.

Inputs are prepared exactly as the evaluation protocol prepares test clips
(`augment.eval_views`: short side resized, centre crop), so a picture shows what the model
saw. Videos give `num_frames` uniformly spaced frames (`sampling.uniform_indices`, the test
protocol's choice); images give one frame.
"""

import os
from typing import Optional

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from keras_attnpool.data.input import augment, sampling
from keras_attnpool.data.media import IMAGE_EXTENSIONS
from keras_attnpool.data.video import DEFAULT_SHORT_SIDE, VideoDecodeError, decode_video
from keras_attnpool.workdir import TrainedRun, Workdir


class InputError(ValueError):
    """An input file that cannot be read as an image or a video."""


def load_run(workdir: str) -> TrainedRun:
    """The workdir's trained model, resolved config and class names (`Workdir.load_run`).

    Raises:
        WorkdirError (a ValueError): no trained model in the workdir, or files that
            disagree (with what to do).
    """
    return Workdir(workdir).load_run()


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
    config = run.config
    return load_frames(path, config.image_size, config.resize_short, num_frames,
                       config.short_side)


def picture_name(path: str) -> str:
    """`<stem>_attention.png` for an input file."""
    return os.path.splitext(os.path.basename(path))[0] + "_attention.png"
