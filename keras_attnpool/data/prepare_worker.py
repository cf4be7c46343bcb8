"""The worker side of `prepare`: one sample's media file -> JPEG frames (+ keypoints).

`convert_sample(job, settings)` runs in a worker process and returns either a `Converted`
(JPEG frames at the stored size, fps, the source frame counts, keypoints scaled to the
stored size) or a `Failed` (path and one-line reason); it never raises for a bad file.
Labels stay in the parent, which serialises the records and writes the shards.

Worker processes (`worker_pool`) are started with the "spawn" method (TensorFlow and fork
do not mix) and import only PyAV, NumPy and Pillow: an initializer puts a bare namespace
module in place of the `keras_attnpool` package, so the package `__init__` (Keras and
TensorFlow: ~3.4 s and ~770 MB per process, measured on this machine) is never run in a
worker. The initializer also makes workers ignore Ctrl-C (the parent stops them) and exit
when the parent dies (a SIGKILLed prepare leaves no orphans decoding on).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import multiprocessing
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from keras_attnpool.data import video

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_WORKER_BOOTSTRAP = """
import os, signal, sys, threading, time, types
signal.signal(signal.SIGINT, signal.SIG_IGN)
if "keras_attnpool" not in sys.modules:
    _package = types.ModuleType("keras_attnpool")
    _package.__path__ = [package_dir]
    sys.modules["keras_attnpool"] = _package
def _exit_with_parent(parent):
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)
threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
"""


@dataclass(frozen=True)
class ConvertSettings:
    """How media are stored: see `prepare_dataset` for the meaning of each field."""

    short_side: int | None
    jpeg_quality: int
    frame_stride: int = 1
    max_frames: int | None = None
    is_video: bool = True
    # Where a worker leaves a converted sample's JPEGs for the parent (see `spool`); None
    # returns them through the pool's pipe.
    spool_dir: str | None = None


@dataclass(frozen=True)
class Job:
    """One sample to convert (plain data: no `Sample`, so workers import no readers)."""

    path: str
    video_id: str
    keypoints_path: str | None = None
    keypoints: np.ndarray | None = None


@dataclass(frozen=True)
class Converted:
    """A converted sample: `frames` are JPEG bytes; `keypoints` per stored frame or None.

    `complete` is False when `max_frames` stopped decoding before the end of the video.
    """

    video_id: str
    frames: list[bytes]
    fps: float
    height: int
    width: int
    num_source_frames: int
    declared_frames: int
    keypoints: list[np.ndarray | None] | None
    complete: bool = True
    # (file, JPEG lengths) while the frames wait in a spool file (`spool` / `unspool`).
    spooled: tuple[str, list[int]] | None = None


@dataclass(frozen=True)
class Failed:
    """A sample whose file cannot be used, and why."""

    path: str
    video_id: str
    reason: str


def scale_keypoints(keypoints: np.ndarray, source_size: tuple[int, int],
                    size: tuple[int, int]) -> np.ndarray:
    """(num_people, 16, 3) x, y, valid moved from `source_size` to `size` (height, width)."""
    out = np.array(keypoints, np.float32, copy=True).reshape(-1, 16, 3)
    out[..., 0] *= size[1] / source_size[1]
    out[..., 1] *= size[0] / source_size[0]
    out[..., :2] *= out[..., 2:3] > 0  # invalid joints stay at 0, 0
    return out


def _image_keypoints(job: Job, source_size: tuple[int, int],
                     size: tuple[int, int]) -> list[np.ndarray | None] | None:
    keypoints = job.keypoints
    if keypoints is None and job.keypoints_path is not None:
        from keras_attnpool.data.keypoints import read_openpose_json
        keypoints = read_openpose_json(job.keypoints_path)
    return None if keypoints is None else [scale_keypoints(keypoints, source_size, size)]


def convert_image(job: Job, settings: ConvertSettings) -> Converted:
    """An image as a 1-frame sample, short side resized (never upscaled), RGB JPEG.

    EXIF orientation is ignored on purpose: the annotations (MPII joints) are in the
    stored pixel grid.
    """
    with Image.open(job.path) as image:
        source_size = (image.height, image.width)
        size = video.resized_size(image.height, image.width, settings.short_side)
        image.draft("RGB", (size[1], size[0]))  # JPEG: decode at a reduced scale, fast
        rgb = image.convert("RGB")
        if (rgb.height, rgb.width) != size:
            rgb = rgb.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        frame = video.encode_jpeg(np.asarray(rgb), settings.jpeg_quality)
    return Converted(job.video_id, [frame], 0.0, size[0], size[1], 1, 1,
                     _image_keypoints(job, source_size, size))


def convert_video(job: Job, settings: ConvertSettings) -> Converted:
    """A video's frames as JPEGs (see `video.decode_video`), OpenPose keypoints scaled."""
    decoded = video.decode_video(job.path, short_side=settings.short_side,
                                 frame_stride=settings.frame_stride,
                                 max_frames=settings.max_frames,
                                 frame_fn=video.jpeg_encoder(settings.jpeg_quality))
    keypoints = None
    if job.keypoints_path is not None:
        from keras_attnpool.data.keypoints import read_openpose_video
        per_frame = read_openpose_video(job.keypoints_path)
        keypoints = [scale_keypoints(per_frame[i], decoded.source_size, decoded.size)
                     if i < len(per_frame) else None for i in decoded.frame_indices]
    return Converted(job.video_id, decoded.frames, decoded.fps, decoded.size[0],
                     decoded.size[1], decoded.num_source_frames, decoded.declared_frames,
                     keypoints, decoded.complete)


def spool(converted: Converted, folder: str) -> Converted:
    """Moves the JPEGs into a file in `folder`; the result carries its path instead.

    A clip's JPEGs are ~2.5 MB. Sent back through the process pool's pipe they arrive in
    64 kB reads that Python joins and copies several times, and that work falls on the
    parent, which every worker waits for: measured on 2 cores, about a fifth of the
    parent's CPU time and over a million page faults for 144 clips. One file written
    here and read there in one call costs a fraction of that. The name is a temp name
    (".*.tmp-<pid>"), so a crashed run's leftovers are removed by the next one.
    """
    name = hashlib.sha1(converted.video_id.encode("utf-8")).hexdigest()[:20]
    path = os.path.join(folder, f".{name}.frames.tmp-{os.getpid()}")
    with open(path, "wb") as f:
        f.write(b"".join(converted.frames))
    lengths = [len(frame) for frame in converted.frames]
    return dataclasses.replace(converted, frames=[], spooled=(path, lengths))


def unspool(converted: Converted) -> Converted:
    """The sample with its JPEGs read back from its spool file (which is deleted)."""
    if converted.spooled is None:
        return converted
    path, lengths = converted.spooled
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    if len(data) != sum(lengths):
        raise OSError(f"{path}: {len(data)} bytes, expected {sum(lengths)}; the spool file "
                      "was changed while prepare ran")
    ends = np.cumsum(lengths).tolist()
    frames = [data[end - length:end] for end, length in zip(ends, lengths)]
    return dataclasses.replace(converted, frames=frames, spooled=None)


def convert_sample(job: Job, settings: ConvertSettings) -> Converted | Failed:
    """Converts one sample; a bad media or keypoints file gives `Failed`, never raises
    (spooled to `settings.spool_dir` when set: `unspool` reads it back)."""
    converted = _convert(job, settings)
    if isinstance(converted, Converted) and settings.spool_dir is not None:
        return spool(converted, settings.spool_dir)
    return converted


def _convert(job: Job, settings: ConvertSettings) -> Converted | Failed:
    try:
        if settings.is_video:
            return convert_video(job, settings)
        return convert_image(job, settings)
    except video.VideoDecodeError as e:
        return Failed(job.path, job.video_id, e.reason)
    except Image.DecompressionBombError as e:
        return Failed(job.path, job.video_id, f"image too large for Pillow ({e})")
    except (OSError, ValueError, SyntaxError) as e:
        # Pillow: UnidentifiedImageError / "image file is truncated" (OSError); keypoints:
        # DatasetError (a ValueError) naming the JSON file.
        reason = " ".join(str(e).split()) or type(e).__name__
        return Failed(job.path, job.video_id, f"cannot read: {reason}")


def worker_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """A spawn-context process pool whose workers import no TensorFlow (see module doc)."""
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=exec,
        initargs=(_WORKER_BOOTSTRAP, {"package_dir": _PACKAGE_DIR, "parent_pid": os.getpid()}))


def stop_pool(pool: Any) -> None:
    """Stops a pool now: running conversions are abandoned (their shards get redone)."""
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)
