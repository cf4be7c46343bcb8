"""The worker side of `prepare`: one sample's media file -> its serialised record.

`convert_sample(job, settings)` runs in a worker process and returns either a `Serialized`
(the sample's `records.schema` record: JPEG frames at the stored size, fps, keypoints scaled
to the stored size, the label the parent put in the job; plus what its frame index entry
needs) or a `Failed` (path and one-line reason); it never raises for a bad file. The parent
only frames the records into shards: with serialisation in the workers it keeps up with
more of them.

This module runs in the worker processes (`prepare.pool`), so it imports only PyAV,
NumPy, Pillow and protobuf: never TensorFlow or Keras, whose import would cost every
worker seconds and a large share of its memory. The record messages come from
`records.proto` (protobuf alone).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from keras_attnpool.data import video
from keras_attnpool.data.joints import NUM_JOINTS
from keras_attnpool.data.records import proto
from keras_attnpool.files import writing


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
    label: int = -1                  # the record's `label` (-1: multi-label / none)
    labels: np.ndarray | None = None  # multi-label targets (HICO), else None


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


@dataclass(frozen=True)
class Serialized:
    """A converted sample as its record (`records.schema`), ready to be written to a shard,
    and what its frame index entry needs (`parts`)."""

    video_id: str
    record: bytes  # empty while the record waits in a spool file (`spool` / `unspool`)
    parts: proto.RecordParts
    num_source_frames: int
    declared_frames: int
    complete: bool
    spooled: str | None = None
    keypoint_frames: int = 0  # stored frames with at least one person's keypoints

    @property
    def num_frames(self) -> int:
        return len(self.parts.frame_positions)


@dataclass(frozen=True)
class Failed:
    """A sample whose file cannot be used, and why."""

    path: str
    video_id: str
    reason: str


def scale_keypoints(keypoints: np.ndarray, source_size: tuple[int, int],
                    size: tuple[int, int]) -> np.ndarray:
    """(num_people, 16, 3) x, y, valid moved from `source_size` to `size` (height, width)."""
    out = np.array(keypoints, np.float32, copy=True).reshape(-1, NUM_JOINTS, 3)
    out[..., 0] *= size[1] / source_size[1]
    out[..., 1] *= size[0] / source_size[0]
    out[..., :2] *= out[..., 2:3] > 0  # invalid joints stay at 0, 0
    return out


def _image_keypoints(job: Job, source_size: tuple[int, int],
                     size: tuple[int, int]) -> list[np.ndarray | None] | None:
    keypoints = job.keypoints
    if keypoints is None and job.keypoints_path is not None:
        from keras_attnpool.data.datasets.openpose import read_openpose_json
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
        from keras_attnpool.data.datasets.openpose import read_openpose_video
        per_frame = read_openpose_video(job.keypoints_path)
        keypoints = [scale_keypoints(per_frame[i], decoded.source_size, decoded.size)
                     if i < len(per_frame) else None for i in decoded.frame_indices]
    return Converted(job.video_id, decoded.frames, decoded.fps, decoded.size[0],
                     decoded.size[1], decoded.num_source_frames, decoded.declared_frames,
                     keypoints, decoded.complete)


def serialize(job: Job, converted: Converted) -> Serialized:
    """The record of a converted sample (labels from the job), and its index parts."""
    example = proto.build_example(
        job.video_id, converted.frames, label=job.label, labels=job.labels,
        fps=converted.fps, height=converted.height, width=converted.width,
        keypoints=converted.keypoints)
    record = proto.serialize(example)
    return Serialized(job.video_id, record,
                      proto.record_parts(example, record),
                      converted.num_source_frames, converted.declared_frames,
                      converted.complete,
                      keypoint_frames=sum(1 for k in converted.keypoints or []
                                          if k is not None and len(k)))


def spool(serialized: Serialized, folder: str) -> Serialized:
    """Moves the record into a file in `folder`; the result carries its path instead.

    A clip's record takes megabytes. Sent back through the process pool's pipe it arrives in
    64 kB reads that Python joins and copies several times, work that falls on the parent,
    which every worker waits for. One file written here and read there in one call costs
    less. The name is a temp name (".*.tmp-<pid>"), so a crashed run's leftovers are
    removed by the next one.
    """
    name = hashlib.sha1(serialized.video_id.encode("utf-8")).hexdigest()[:20]
    path = os.path.join(folder, f".{name}.record.tmp-{os.getpid()}")
    with writing(path):
        with open(path, "wb") as f:
            f.write(serialized.record)
    return dataclasses.replace(serialized, record=b"", spooled=path)


def unspool(serialized: Serialized) -> Serialized:
    """The sample with its record read back from its spool file (which is deleted)."""
    if serialized.spooled is None:
        return serialized
    with open(serialized.spooled, "rb") as f:
        record = f.read()
    os.remove(serialized.spooled)
    if len(record) != serialized.parts.record_length:
        raise OSError(f"{serialized.spooled}: {len(record)} bytes, expected "
                      f"{serialized.parts.record_length}; the spool file was changed while "
                      "prepare ran")
    return dataclasses.replace(serialized, record=record, spooled=None)


def convert_sample(job: Job, settings: ConvertSettings) -> Serialized | Failed:
    """Converts and serialises one sample (spooled to `settings.spool_dir` when set:
    `unspool` reads it back); a bad media or keypoints file gives `Failed`, never raises."""
    converted = _convert(job, settings)
    if isinstance(converted, Failed):
        return converted
    serialized = serialize(job, converted)
    if settings.spool_dir is not None:
        return spool(serialized, settings.spool_dir)
    return serialized


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
