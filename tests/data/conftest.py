"""Fixtures for the dataset-reader tests: tiny real videos and text files."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pathlib  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def encode_video(path: pathlib.Path, num_frames: int = 8, width: int = 32,
                 height: int = 24, fps: int = 25) -> None:
    """Writes a real mpeg4 .avi of moving gradients with PyAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(num_frames):
            x = np.arange(width)[None, :, None]
            frame = np.broadcast_to((x * 8 + t * 16) % 256, (height, width, 3))
            image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame, np.uint8),
                                               format="rgb24")
            container.mux(stream.encode(image))
        container.mux(stream.encode(None))


@pytest.fixture(scope="session")
def video_bytes(tmp_path_factory) -> bytes:
    """The bytes of one 8-frame 32x24 mpeg4 .avi (encoded once per session)."""
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    encode_video(path)
    return path.read_bytes()


@pytest.fixture
def write_video(video_bytes):
    """write_video(path) puts a real tiny video at `path` (parents created)."""
    def write(path: pathlib.Path) -> pathlib.Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(video_bytes)
        return path
    return write


def write_lines(path: pathlib.Path, lines, newline: str = "\n") -> pathlib.Path:
    """Writes `lines` exactly (no stripping), each followed by `newline`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("".join(line + newline for line in lines))
    return path
