"""Video decoding with PyAV: a file -> RGB frames with the short side resized, fps, counts.

This is the only place that decodes videos; `prepare` calls it once per video (in worker
processes) and stores JPEG frames. It imports PyAV, NumPy and Pillow only (no TensorFlow),
so worker processes start fast.

Resizing: the short side is scaled down to `short_side` (default 256) keeping the aspect
ratio (the long side is rounded to the nearest pixel). Videos whose short side is already
`short_side` or smaller are **never upscaled**: upscaling adds no information, only bytes
and interpolation blur, and the training pipeline resizes its crops anyway. HMDB51 and UCF101
(320 x 240) are therefore stored at their own size with the default. `short_side=None` keeps
every video's own size. Scaling uses swscale's area filter (anti-aliased, and faster than
its bilinear filter when shrinking).

Frames: all frames by default (HMDB51 clips are short). `frame_stride=k` keeps every k-th
frame (the stored fps is divided by k); `max_frames=n` stops after n kept frames.

Errors: every problem with a file raises `VideoDecodeError` (a ValueError) whose message
names the file and the reason: missing, empty (0 bytes), not a video / unreadable header,
no video stream, a decoding error part way (truncated or corrupt data), zero decodable
frames, fewer frames than the header declares (truncated; see `TRUNCATION_TOLERANCE`), or a
decode that runs past `timeout_s`. FFmpeg gives up on garbage input within milliseconds
(tests check this for text, zeros, random bytes and a header-only file); the timeout is a
second guard checked between frames.
"""

from __future__ import annotations

import io
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from PIL import Image

DEFAULT_SHORT_SIDE = 256
# A video with a frame count in its header is "truncated" when it decodes fewer than
# declared - max(2, TRUNCATION_TOLERANCE * declared) frames. Small shortfalls are common in
# real files (packed B-frames, N-VOPs, off-by-one headers) and lose nothing that matters.
TRUNCATION_TOLERANCE = 0.05
DEFAULT_TIMEOUT_S = 600.0


class VideoDecodeError(ValueError):
    """A video file cannot be decoded; `path` and `reason` say which and why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class DecodedVideo:
    """What `decode_video` returns.

    Attributes:
        frames: uint8 array (T, H, W, 3) of RGB frames, or a list of `frame_fn` results.
        fps: frames per second of the returned frames (source fps / frame_stride; 0.0 when
            the file does not say).
        num_source_frames: frames decoded from the file: all of them, unless `max_frames`
            stopped decoding early (`complete` is then False).
        declared_frames: the frame count in the file's header (0 when it has none).
        frame_indices: the source frame index of each returned frame.
        source_size: (height, width) of the video in the file.
        size: (height, width) of the returned frames.
        complete: True when the whole file was decoded.
    """

    frames: Any
    fps: float
    num_source_frames: int
    declared_frames: int
    frame_indices: tuple[int, ...]
    source_size: tuple[int, int]
    size: tuple[int, int]
    complete: bool


def resized_size(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """(height, width) after scaling the short side down to `short_side` (never up)."""
    if short_side is None or min(height, width) <= short_side:
        return height, width
    scale = short_side / min(height, width)
    if height <= width:
        return short_side, max(1, int(round(width * scale)))
    return max(1, int(round(height * scale))), short_side


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of one uint8 (H, W, 3) RGB frame (Pillow, libjpeg-turbo)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def jpeg_encoder(quality: int = 90) -> Callable[[np.ndarray], bytes]:
    """A `frame_fn` for `decode_video` that returns JPEG bytes instead of arrays."""
    def encode(rgb: np.ndarray) -> bytes:
        return encode_jpeg(rgb, quality)
    return encode


def _ffmpeg_reason(error: Exception) -> str:
    reason = getattr(error, "strerror", None) or str(error)
    return " ".join(str(reason).split())


def _open(path: str) -> Any:
    """Opens `path` with PyAV, turning every failure into a VideoDecodeError."""
    if not os.path.isfile(path):
        raise VideoDecodeError(path, "file not found; check the path")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "empty file (0 bytes); download it again")
    try:
        return av.open(path, mode="r")
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VideoDecodeError(path, f"not a readable video (FFmpeg: {_ffmpeg_reason(e)}); "
                                     "the file is truncated, corrupt or not a video") from e


def _check_complete(path: str, decoded: int, declared: int) -> None:
    if decoded == 0:
        raise VideoDecodeError(path, "no frames could be decoded (empty video stream)")
    allowed = max(2, int(math.ceil(TRUNCATION_TOLERANCE * declared)))
    if declared > 0 and decoded < declared - allowed:
        raise VideoDecodeError(path, f"truncated: decoded {decoded} of the {declared} frames "
                                     "its header declares; download it again")


def _check_arguments(short_side: int | None, frame_stride: int,
                     max_frames: int | None) -> None:
    if short_side is not None and (isinstance(short_side, bool) or short_side < 1):
        raise ValueError(f"short_side must be a positive integer or None, got {short_side!r}")
    if isinstance(frame_stride, bool) or frame_stride < 1:
        raise ValueError(f"frame_stride must be a positive integer, got {frame_stride!r}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be a positive integer or None, got {max_frames!r}")


def decode_video(path: str, *, short_side: int | None = DEFAULT_SHORT_SIDE,
                 frame_stride: int = 1, max_frames: int | None = None,
                 frame_fn: Callable[[np.ndarray], Any] | None = None, threads: int = 1,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> DecodedVideo:
    """Decodes a video file into RGB frames, short side resized (never upscaled).

    Args:
        path: the video file.
        short_side: target short side in pixels; None keeps the video's size.
        frame_stride: keep every `frame_stride`-th frame, starting with frame 0.
        max_frames: stop after this many kept frames (None: all).
        frame_fn: applied to each kept uint8 (H, W, 3) frame as it is decoded (for example
            `jpeg_encoder(90)`), so that a long video never sits in memory as raw frames;
            `frames` is then the list of results. None: `frames` is one (T, H, W, 3) array.
        threads: decoder and scaler threads (1: one per process, as `prepare` runs many
            processes; 0: FFmpeg's choice, whose threads then compete with the other
            workers' for the same cores).
        timeout_s: give up (VideoDecodeError) when decoding takes longer than this.

    Raises:
        VideoDecodeError: the file is missing, empty, not a video, truncated or corrupt.
    """
    _check_arguments(short_side, frame_stride, max_frames)
    path = os.fspath(path)
    with _open(path) as container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise VideoDecodeError(path, f"no video stream (streams: {', '.join(kinds)})")
        stream = container.streams.video[0]
        stream.codec_context.thread_count = threads
        declared = int(stream.frames or 0)
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        frames, indices, decoded, sizes = _decode_frames(
            path, container, stream, short_side, frame_stride, max_frames, frame_fn,
            timeout_s, threads)
    complete = max_frames is None or len(frames) < max_frames
    if complete:
        _check_complete(path, decoded, declared)
    if frame_fn is None:
        frames = np.stack(frames)
    return DecodedVideo(frames, fps / frame_stride, decoded, declared, tuple(indices),
                        sizes[0], sizes[1], complete)


def _decode_frames(path: str, container: Any, stream: Any, short_side: int | None,
                   frame_stride: int, max_frames: int | None,
                   frame_fn: Callable[[np.ndarray], Any] | None, timeout_s: float,
                   threads: int,
                   ) -> tuple[list, list[int], int, tuple[tuple[int, int], tuple[int, int]]]:
    """The decode loop: (kept frames, their indices, frames decoded, (source size, size))."""
    start = time.monotonic()
    frames, indices, decoded, size, source_size = [], [], 0, (0, 0), (0, 0)
    try:
        for frame in container.decode(stream):
            if decoded == 0:
                source_size = (frame.height, frame.width)
                size = resized_size(frame.height, frame.width, short_side)
            if decoded % frame_stride == 0:
                rgb = _to_rgb(frame, size, threads)
                frames.append(rgb if frame_fn is None else frame_fn(rgb))
                indices.append(decoded)
            decoded += 1
            if time.monotonic() - start > timeout_s:
                raise VideoDecodeError(path, f"decoding took longer than {timeout_s:g} s "
                                             "(corrupt file?)")
            if max_frames is not None and len(frames) >= max_frames:
                break
    except (av.FFmpegError, OSError) as e:
        raise VideoDecodeError(path, f"decoding failed after {decoded} frames (FFmpeg: "
                                     f"{_ffmpeg_reason(e)}); the file is truncated or "
                                     "corrupt") from e
    return frames, indices, decoded, (source_size, size)


def _to_rgb(frame: Any, size: tuple[int, int], threads: int = 1) -> np.ndarray:
    """One decoded frame as uint8 RGB at `size` (height, width), with `threads` scaler
    threads (PyAV's default, 0, starts several per frame).

    An explicit `reformat` is used even at the same size: it is faster than
    `to_ndarray(format="rgb24")` for the same pixels.
    """
    return frame.reformat(width=size[1], height=size[0], format="rgb24",
                          interpolation="AREA", threads=threads).to_ndarray()


def encode_video(path: str, frames: Iterable[np.ndarray], fps: float, *,
                 bit_rate: int = 1_000_000, gop_size: int | None = None,
                 codec: str = "mpeg4") -> int:
    """Writes RGB uint8 frames (H, W, 3), all one size, to a video file with PyAV (the demo
    dataset and the benchmarks' clips). Returns the number of frames written."""
    count = 0
    with av.open(path, mode="w") as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=fps)
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt, stream.bit_rate = "yuv420p", bit_rate
                if gop_size is not None:
                    stream.codec_context.gop_size = gop_size
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            count += 1
        if stream is None:
            raise ValueError(f"{path}: no frames to write.")
        container.mux(stream.encode(None))
    return count
