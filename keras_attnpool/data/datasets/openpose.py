"""OpenPose JSON output mapped to the MPII 16-joint order (`keras_attnpool.data.joints`).

Two JSON formats are read, told apart by their keys:
- today's `--write_json` output: `{"people": [{"pose_keypoints_2d": [x0, y0, c0, x1, ...]},
  ...]}` (older versions: `pose_keypoints`), 18 joints (COCO-18, 54 numbers) or 25
  (BODY_25, 75 numbers);
- the first OpenPose format, in which the paper's authors released their HMDB51 and HICO
  keypoints: `{"bodies": [{"joints": [x0, y0, c0, ...]}, ...]}`, COCO-18.
The joint layout is detected from the length. A joint with confidence 0 (OpenPose's "not
found") is invalid. Mapping choices, joint by joint (`openpose_to_mpii`, both formats):
- ankles, knees, hips, wrists, elbows, shoulders: the same joints.
- pelvis: BODY_25's MidHip; invalid for COCO-18 (it has no such joint).
- thorax: OpenPose's Neck. OpenPose's Neck is the midpoint of the shoulders (that is how
  its COCO training data defines it), which is where MPII annotates the thorax, not the
  upper neck (top of the neck, under the chin).
- upper neck and head top: invalid (OpenPose has no joints there; guessing them from the
  nose, eyes and ears would put wrong targets in the pose loss).

A video's keypoints are a folder of one file per frame, in one of two name layouts
(`read_openpose_video` tells them apart from the names):
- `<stem>_<frame:012d>_keypoints.json`, frames numbered from 0 (`--write_json DIR`);
- `image_<frame:05d>.json`, frames numbered from 1 (the authors' release): `image_00001.json`
  is frame index 0 of the decoded video.
A frame without a file has no keypoints. An image's keypoints are one file
(`<stem>_keypoints.json`) or, as the authors released HICO's, a folder holding one frame
(`<stem>/image_00001.json`); `read_openpose_json` reads either.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence

import numpy as np

from keras_attnpool.data.datasets.records import DatasetError
from keras_attnpool.data.joints import MPII_JOINTS, NUM_JOINTS

COCO18_JOINTS = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder",
                 "l_elbow", "l_wrist", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee",
                 "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear")
BODY25_JOINTS = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder",
                 "l_elbow", "l_wrist", "mid_hip", "r_hip", "r_knee", "r_ankle", "l_hip",
                 "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear", "l_big_toe",
                 "l_small_toe", "l_heel", "r_big_toe", "r_small_toe", "r_heel")

# For each MPII joint, the OpenPose joint name it is read from (None: always invalid).
_SOURCE = {"r_ankle": "r_ankle", "r_knee": "r_knee", "r_hip": "r_hip", "l_hip": "l_hip",
           "l_knee": "l_knee", "l_ankle": "l_ankle", "pelvis": "mid_hip", "thorax": "neck",
           "upper_neck": None, "head_top": None, "r_wrist": "r_wrist",
           "r_elbow": "r_elbow", "r_shoulder": "r_shoulder", "l_shoulder": "l_shoulder",
           "l_elbow": "l_elbow", "l_wrist": "l_wrist"}


def _index_map(layout: Sequence[str]) -> tuple[int, ...]:
    """Per MPII joint, its index in `layout`, or -1 when the layout lacks it."""
    source = [_SOURCE[name] for name in MPII_JOINTS]
    return tuple(layout.index(s) if s in layout else -1 for s in source)


OPENPOSE_TO_MPII = {"coco18": _index_map(COCO18_JOINTS), "body25": _index_map(BODY25_JOINTS)}
_LAYOUT_BY_LENGTH = {3 * len(COCO18_JOINTS): "coco18", 3 * len(BODY25_JOINTS): "body25"}
# The per-frame file name layouts of a video folder: (regex, number of the first frame).
_FRAME_LAYOUTS = {
    "<stem>_<frame>_keypoints.json": (re.compile(r"_(\d+)_keypoints\.json$"), 0),
    "image_<frame:05d>.json": (re.compile(r"^image_(\d+)\.json$"), 1)}
# Per JSON format: the list of people, and each person's keys (first found is read).
_FORMATS = (("people", ("pose_keypoints_2d", "pose_keypoints")), ("bodies", ("joints",)))


def openpose_to_mpii(flat: Sequence[float], layout: str | None = None) -> np.ndarray:
    """One person's `pose_keypoints_2d` or `joints` list as a (16, 3) MPII x, y, valid array.

    Args:
        flat: [x0, y0, c0, x1, y1, c1, ...] with 54 (COCO-18) or 75 (BODY_25) numbers.
        layout: "coco18" or "body25"; None detects it from the length.
    """
    values = np.asarray(flat, dtype=np.float32).reshape(-1)
    if layout is None:
        layout = _LAYOUT_BY_LENGTH.get(values.size)
        if layout is None:
            raise ValueError(f"keypoint list has {values.size} numbers; expected 54 "
                             "(COCO-18) or 75 (BODY_25)")
    if layout not in OPENPOSE_TO_MPII:
        raise ValueError(f"layout must be one of {sorted(OPENPOSE_TO_MPII)}, got {layout!r}")
    if values.size != 3 * (18 if layout == "coco18" else 25):
        raise ValueError(f"keypoint list has {values.size} numbers; {layout} needs "
                         f"{3 * (18 if layout == 'coco18' else 25)}")
    joints = values.reshape(-1, 3)
    out = np.zeros((NUM_JOINTS, 3), np.float32)
    for mpii, source in enumerate(OPENPOSE_TO_MPII[layout]):
        if source >= 0:
            x, y, confidence = joints[source]
            if confidence > 0 and np.isfinite([x, y, confidence]).all():
                out[mpii] = (x, y, 1.0)
    return out


def read_openpose_json(path: str, layout: str | None = None) -> np.ndarray:
    """All people of one image's OpenPose output, float32 (num_people, 16, 3); maybe none.

    `path` is a JSON file in either format (see the module docstring), or a folder holding
    one frame's file (the authors' HICO layout, `<stem>/image_00001.json`; a folder with no
    frame file means no keypoints).

    Raises:
        DatasetError: the file is missing, not JSON, or not OpenPose's format, or the folder
            holds more than one frame; the message names the file.
    """
    if os.path.isdir(path):
        return _read_image_folder(path, layout)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read OpenPose JSON ({e}); rerun OpenPose with "
                           "--write_json or remove the file") from e
    found = [(key, person_keys) for key, person_keys in _FORMATS
             if isinstance(data, dict) and key in data]
    if len(found) != 1:
        what = "both a 'people' and a 'bodies' list" if found else \
            "no 'people' list (OpenPose --write_json) or 'bodies' list (first OpenPose format)"
        raise DatasetError(f"{path}: {what}; expected OpenPose JSON output, one format per "
                           "file")
    key, person_keys = found[0]
    people = data[key]
    if not isinstance(people, list):
        raise DatasetError(f"{path}: '{key}' is not a list; expected OpenPose JSON output")
    out = []
    for i, person in enumerate(people):
        flat = next((person[k] for k in person_keys if k in person), None) \
            if isinstance(person, dict) else None
        if not flat:  # OpenPose writes [] when the body model was off
            out.append(np.zeros((NUM_JOINTS, 3), np.float32))
            continue
        try:
            out.append(openpose_to_mpii(flat, layout))
        except (ValueError, TypeError) as e:
            raise DatasetError(f"{path}: {key}[{i}]: {e}; expected OpenPose COCO-18 or "
                               "BODY_25 output") from e
    return np.stack(out) if out else np.zeros((0, NUM_JOINTS, 3), np.float32)


def _read_image_folder(folder: str, layout: str | None) -> np.ndarray:
    """The one frame of an image's keypoints folder (empty when it holds no frame file)."""
    paths = _frame_files(folder)
    extra = sorted(frame for frame in paths if frame != 0)
    if extra:
        raise DatasetError(f"{paths[extra[0]]}: a second frame in an image's keypoints "
                           "folder; an image has one frame (image_00001.json): remove the "
                           "others")
    if not paths:
        return np.zeros((0, NUM_JOINTS, 3), np.float32)
    return read_openpose_json(paths[0], layout)


def _frame_files(folder: str) -> dict[int, str]:
    """{frame index (from 0): path} of the per-frame files in `folder`, in either layout.

    Raises DatasetError (naming the file) for a folder mixing the layouts, two files for one
    frame, or frame number 0 in the `image_<frame:05d>.json` layout (numbered from 1).
    """
    if not os.path.isdir(folder):
        raise DatasetError(f"{folder}: OpenPose output folder not found; check keypoints_dir")
    by_frame: dict[int, str] = {}
    used: tuple[str, str] | None = None  # (layout, first file in it)
    for name in sorted(os.listdir(folder)):
        for layout_name, (pattern, first) in _FRAME_LAYOUTS.items():
            match = pattern.search(name)
            if match:
                break
        else:
            continue
        path = os.path.join(folder, name)
        if used is None:
            used = (layout_name, path)
        elif used[0] != layout_name:
            raise DatasetError(f"{path}: named '{layout_name}' next to '{used[0]}' files "
                               f"(such as {used[1]}); keep one layout per folder: move "
                               "or remove the others")
        number = int(match.group(1))
        if number < first:
            raise DatasetError(f"{path}: frame number {number} in the '{layout_name}' "
                               f"layout, whose frames are numbered from {first}; renumber "
                               "the files or remove this one")
        frame = number - first
        if frame in by_frame:
            raise DatasetError(f"{path}: second file for frame {frame} (also "
                               f"{by_frame[frame]}); keep one per frame")
        by_frame[frame] = path
    return by_frame


def read_openpose_video(folder: str, layout: str | None = None) -> list[np.ndarray]:
    """Per-frame keypoints from a folder of per-frame OpenPose JSON files.

    The folder holds `<stem>_<frame>_keypoints.json` files (frames numbered from 0) or
    `image_<frame:05d>.json` files (numbered from 1: `image_00001.json` is frame 0), in
    either JSON format. Returns a list indexed by frame (0 .. the largest frame found);
    frames without a file get an empty (0, 16, 3) array. Other files are ignored.

    Raises:
        DatasetError: an unreadable file, a folder mixing the two name layouts, two files
            for one frame, or `image_00000.json`; the message names the file.
    """
    by_frame = _frame_files(folder)
    empty = np.zeros((0, NUM_JOINTS, 3), np.float32)
    frames = [empty] * (max(by_frame) + 1 if by_frame else 0)
    for frame, path in by_frame.items():
        frames[frame] = read_openpose_json(path, layout)
    return frames
