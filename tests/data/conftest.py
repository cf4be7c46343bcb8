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


# HMDB51 split file name for split 1 of a class.
HMDB51_SPLITS = "testTrainMulti_7030_splits"


def build_hmdb51(root: pathlib.Path, tree, video_bytes: bytes) -> pathlib.Path:
    """HMDB51's official layout under `root` from {class: [(file, value, kind)]}.

    Each entry is one line `<file> <value> ` of `<class>_test_split1.txt` (value None: the
    line is `<file> ` alone, malformed; value "unlisted": no line at all), and `kind` says
    what lies on disk at `<class>/<file>`: "video" (a real clip), "empty" (0 bytes), "text"
    (not a video), "loop" (a symbolic link to itself), "missing" (nothing; a class whose
    entries are all missing has no folder).
    """
    for cls, entries in tree.items():
        lines = []
        for name, value, kind in entries:
            path = root / cls / name
            if kind != "missing":
                path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "video":
                path.write_bytes(video_bytes)
            elif kind == "empty":
                path.write_bytes(b"")
            elif kind == "text":
                path.write_text("this is a text file named .avi\n")
            elif kind == "loop":
                os.symlink(name, path)
            if value != "unlisted":
                lines.append(f"{name} " if value is None else f"{name} {value} ")
        write_lines(root / HMDB51_SPLITS / f"{cls}_test_split1.txt", lines)
    return root


@pytest.fixture
def hmdb51_tree(video_bytes):
    """hmdb51_tree(root, tree) builds an HMDB51 tree (see `build_hmdb51`)."""
    return lambda root, tree: build_hmdb51(root, tree, video_bytes)
