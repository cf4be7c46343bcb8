"""OpenPose JSON output mapped to the MPII 16-joint order (`keras_attnpool.data.joints`).

OpenPose writes `{"people": [{"pose_keypoints_2d": [x0, y0, c0, x1, ...]}, ...]}` (older
versions: `pose_keypoints`), 18 joints (COCO-18, 54 numbers) or 25 (BODY_25, 75 numbers);
the layout is detected from the length. A joint with confidence 0 (OpenPose's "not found")
is invalid. Mapping choices, joint by joint:
- ankles, knees, hips, wrists, elbows, shoulders: the same joints.
- pelvis: BODY_25's MidHip; invalid for COCO-18 (it has no such joint).
- thorax: OpenPose's Neck. OpenPose's Neck is the midpoint of the shoulders (that is how
  its COCO training data defines it), which is where MPII annotates the thorax, not the
  upper neck (top of the neck, under the chin).
- upper neck and head top: invalid (OpenPose has no joints there; guessing them from the
  nose, eyes and ears would put wrong targets in the pose loss).

Video output (`--write_json DIR` on a video) is one file per frame,
`<stem>_<frame:012d>_keypoints.json`; `read_openpose_video` reads such a folder.
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
_FRAME_FILE = re.compile(r"_(\d+)_keypoints\.json$")


def openpose_to_mpii(flat: Sequence[float], layout: str | None = None) -> np.ndarray:
    """One person's `pose_keypoints_2d` list as a (16, 3) MPII array (x, y, valid).

    Args:
        flat: [x0, y0, c0, x1, y1, c1, ...] with 54 (COCO-18) or 75 (BODY_25) numbers.
        layout: "coco18" or "body25"; None detects it from the length.
    """
    values = np.asarray(flat, dtype=np.float32).reshape(-1)
    if layout is None:
        layout = _LAYOUT_BY_LENGTH.get(values.size)
        if layout is None:
            raise ValueError(f"pose_keypoints_2d has {values.size} numbers; expected 54 "
                             "(COCO-18) or 75 (BODY_25)")
    if layout not in OPENPOSE_TO_MPII:
        raise ValueError(f"layout must be one of {sorted(OPENPOSE_TO_MPII)}, got {layout!r}")
    if values.size != 3 * (18 if layout == "coco18" else 25):
        raise ValueError(f"pose_keypoints_2d has {values.size} numbers; {layout} needs "
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
    """All people of one OpenPose JSON file as float32 (num_people, 16, 3); may be (0, 16, 3).

    Raises:
        DatasetError: the file is missing, not JSON, or not OpenPose's format; the message
            names the file.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read OpenPose JSON ({e}); rerun OpenPose with "
                           "--write_json or remove the file") from e
    people = data.get("people") if isinstance(data, dict) else None
    if not isinstance(people, list):
        raise DatasetError(f"{path}: no 'people' list; expected OpenPose --write_json output")
    out = []
    for i, person in enumerate(people):
        flat = person.get("pose_keypoints_2d", person.get("pose_keypoints")) \
            if isinstance(person, dict) else None
        if not flat:  # OpenPose writes [] when the body model was off
            out.append(np.zeros((NUM_JOINTS, 3), np.float32))
            continue
        try:
            out.append(openpose_to_mpii(flat, layout))
        except (ValueError, TypeError) as e:
            raise DatasetError(f"{path}: people[{i}]: {e}; expected OpenPose COCO-18 or "
                               "BODY_25 output") from e
    return np.stack(out) if out else np.zeros((0, NUM_JOINTS, 3), np.float32)


def read_openpose_video(folder: str, layout: str | None = None) -> list[np.ndarray]:
    """Per-frame keypoints from a folder of `<stem>_<frame>_keypoints.json` files.

    Returns a list indexed by frame number (0 .. the largest frame found); frames without a
    file get an empty (0, 16, 3) array. Files not named `*_<digits>_keypoints.json` are
    ignored. Raises DatasetError (naming the file) for an unreadable one.
    """
    if not os.path.isdir(folder):
        raise DatasetError(f"{folder}: OpenPose output folder not found; check keypoints_dir")
    by_frame: dict[int, str] = {}
    for name in sorted(os.listdir(folder)):
        match = _FRAME_FILE.search(name)
        if match:
            frame = int(match.group(1))
            if frame in by_frame:
                raise DatasetError(f"{os.path.join(folder, name)}: second file for frame "
                                   f"{frame} (also {by_frame[frame]}); keep one per frame")
            by_frame[frame] = os.path.join(folder, name)
    empty = np.zeros((0, NUM_JOINTS, 3), np.float32)
    frames = [empty] * (max(by_frame) + 1 if by_frame else 0)
    for frame, path in by_frame.items():
        frames[frame] = read_openpose_json(path, layout)
    return frames
