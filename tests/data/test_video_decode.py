"""PyAV decoding: frames, sizes, fps, stride, and a clear error for every kind of bad file."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import io  # noqa: E402
import time  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import encode_video  # noqa: E402
from PIL import Image  # noqa: E402

from keras_attnpool.data.video import (  # noqa: E402
    VideoDecodeError, decode_video, jpeg_encoder, resized_size)


def encode_halves(path, num_frames=5, width=40, height=30):
    """A video whose left half is red and right half blue (to catch RGB/BGR mix-ups)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        frame = np.zeros((height, width, 3), np.uint8)
        frame[:, : width // 2, 0] = 255
        frame[:, width // 2:, 2] = 255
        for _ in range(num_frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


@pytest.mark.parametrize("height, width, short_side, expected", [
    (240, 320, 256, (240, 320)),   # HMDB51 / UCF101 size: never upscaled
    (480, 640, 256, (256, 341)),   # 640 * 256 / 480 = 341.33
    (640, 480, 256, (341, 256)),   # portrait: the width is the short side
    (300, 300, 100, (100, 100)),
    (1080, 1920, None, (1080, 1920)),
    (256, 400, 256, (256, 400)),
])
def test_resized_size(height, width, short_side, expected):
    assert resized_size(height, width, short_side) == expected


def test_decodes_every_frame_at_its_own_size(tmp_path):
    path = tmp_path / "clip.avi"
    encode_video(path, num_frames=10, width=32, height=24, fps=25)
    video = decode_video(str(path))
    assert video.frames.shape == (10, 24, 32, 3) and video.frames.dtype == np.uint8
    assert video.fps == 25.0
    assert (video.num_source_frames, video.declared_frames) == (10, 10)
    assert video.frame_indices == tuple(range(10))
    assert video.source_size == video.size == (24, 32)
    assert video.complete


def test_frames_are_rgb_and_resized_down(tmp_path):
    path = tmp_path / "halves.avi"
    encode_halves(path, width=40, height=30)
    video = decode_video(str(path), short_side=15)
    assert video.frames.shape == (5, 15, 20, 3)
    left, right = video.frames[:, :, :8].mean(axis=(0, 1, 2)), video.frames[:, :, 12:].mean(
        axis=(0, 1, 2))
    assert left[0] > 200 and left[2] < 60, left    # red on the left
    assert right[2] > 200 and right[0] < 60, right  # blue on the right


def test_stride_max_frames_and_jpeg(tmp_path):
    path = tmp_path / "clip.avi"
    encode_video(path, num_frames=10, width=32, height=24, fps=24)
    video = decode_video(str(path), frame_stride=3)
    assert video.frame_indices == (0, 3, 6, 9) and len(video.frames) == 4
    assert video.fps == 8.0 and video.num_source_frames == 10
    short = decode_video(str(path), max_frames=4, short_side=12, frame_fn=jpeg_encoder(80))
    assert len(short.frames) == 4 and not short.complete
    assert all(isinstance(f, bytes) for f in short.frames)
    assert Image.open(io.BytesIO(short.frames[0])).size == (16, 12)


def _truncated(path, tmp_path):
    full = tmp_path / "full.avi"
    encode_video(full, num_frames=60, width=64, height=48)
    data = full.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.8)])


def _zero_frames(path, tmp_path):
    container = av.open(str(path), mode="w")
    stream = container.add_stream("mpeg4", rate=25)
    stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
    container.start_encoding()
    container.close()


def _audio_only(path, tmp_path):
    with av.open(str(path), mode="w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)


def _header_only(path, tmp_path):
    full = tmp_path / "full.avi"
    encode_video(full)
    path.write_bytes(full.read_bytes()[:300])


BAD_FILES = {
    "empty": (lambda p, t: p.write_bytes(b""), "empty file (0 bytes)"),
    "text": (lambda p, t: p.write_text("this is not a video\n" * 20), "not a readable video"),
    "zeros": (lambda p, t: p.write_bytes(bytes(5000)), "not a readable video"),
    "random": (lambda p, t: p.write_bytes(np.random.default_rng(0).bytes(1 << 20)),
               "not a readable video"),
    "header_only": (_header_only, "not a readable video"),
    "truncated": (_truncated, "truncated: decoded 38 of the 60 frames"),
    "zero_frames": (_zero_frames, "no frames could be decoded"),
    "audio_only": (_audio_only, "no video stream (streams: audio)"),
    "missing": (lambda p, t: None, "file not found"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_files_fail_fast_with_the_file_and_reason(kind, tmp_path):
    make, reason = BAD_FILES[kind]
    path = tmp_path / f"bad #({kind}).avi"
    make(path, tmp_path)
    start = time.perf_counter()
    with pytest.raises(VideoDecodeError) as info:
        decode_video(str(path))
    assert time.perf_counter() - start < 5.0  # never a hang on garbage
    assert info.value.path == str(path)
    assert reason in info.value.reason
    assert str(info.value).startswith(f"{path}: ")
    assert "\n" not in str(info.value)


def test_bad_arguments_name_the_argument(tmp_path):
    path = tmp_path / "clip.avi"
    encode_video(path)
    for kwargs, name in [({"short_side": 0}, "short_side"), ({"frame_stride": 0},
                         "frame_stride"), ({"max_frames": 0}, "max_frames")]:
        with pytest.raises(ValueError, match=name):
            decode_video(str(path), **kwargs)


def test_encode_video_round_trips_through_decode(tmp_path):
    from keras_attnpool.data.video import decode_video, encode_video

    frames = [np.full((24, 32, 3), (40 * t, 100, 200 - 40 * t), np.uint8) for t in range(5)]
    path = str(tmp_path / "clip.avi")
    assert encode_video(path, iter(frames), 10, bit_rate=2_000_000) == 5
    decoded = decode_video(path, short_side=None)
    assert decoded.frames.shape == (5, 24, 32, 3)
    assert decoded.fps == 10
    np.testing.assert_allclose(decoded.frames[4].mean(axis=(0, 1)), (160, 100, 40), atol=12)
    with pytest.raises(ValueError, match="no frames"):
        encode_video(str(tmp_path / "empty.avi"), [], 10)
