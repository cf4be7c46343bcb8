"""The built-in demo dataset: cluttered-digit videos written in the HMDB51 layout.

`python training/fit.py` with no data trains on this. Each clip is a 16 px handwritten digit
drifting among fragments of other digits (`cluttered_digits.render_clip`); the class is the
digit. The files are exactly what the HMDB51 reader expects, so the demo runs the same code
path as the real dataset:

    <root>/digit_<k>/digit_<k>_<i:03d>.avi                        mpeg4, 64x64, 10 fps
    <root>/testTrainMulti_7030_splits/digit_<k>_test_split{1,2,3}.txt   "<video>.avi 1|2"
    <root>/keypoints/digit_<k>/digit_<k>_<i:03d>/..._<frame:012d>_keypoints.json   OpenPose

70% of each class's clips are train (1) and 30% test (2); train and test clips are drawn
from disjoint sets of handwritten digit instances, so test clips show unseen handwriting.
The three split files are identical. Keypoints are the digit's landmarks as one OpenPose
(COCO-18) "person": the box corners as shoulders (top) and hips (bottom), its centre as the
neck, so `--head pose_attention` has targets to learn where the digit is.
"""

import json
import os
import shutil
from typing import Optional

import numpy as np

from keras_attnpool.data.synthetic import cluttered_digits
from keras_attnpool.data.video import encode_video

SPLITS_FOLDER = "testTrainMulti_7030_splits"
COMPLETE = "DEMO_COMPLETE.json"
KEYPOINTS = "keypoints"  # the OpenPose JSON folder under the root
FPS = 10

# COCO-18 joint index of each landmark: neck = centre, shoulders = top corners, hips = bottom.
_COCO18 = {"neck": 1, "r_shoulder": 2, "l_shoulder": 5, "r_hip": 8, "l_hip": 11}


def _openpose_person(centre: np.ndarray) -> list:
    """The digit's landmarks as a COCO-18 `pose_keypoints_2d` list (x, y, confidence)."""
    half = cluttered_digits.DIGIT_SIZE / 2.0
    points = {"neck": centre, "r_shoulder": centre + (-half, -half),
              "l_shoulder": centre + (half, -half), "r_hip": centre + (-half, half),
              "l_hip": centre + (half, half)}
    flat = [0.0] * 54
    for name, (x, y) in points.items():
        index = _COCO18[name]
        flat[3 * index:3 * index + 3] = [float(x), float(y), 1.0]
    return flat


def _write_keypoints(folder: str, stem: str, centres: np.ndarray) -> None:
    os.makedirs(folder, exist_ok=True)
    for t, centre in enumerate(centres):
        payload = {"version": 1.3, "people": [{"pose_keypoints_2d": _openpose_person(centre)}]}
        with open(os.path.join(folder, f"{stem}_{t:012d}_keypoints.json"), "w") as f:
            json.dump(payload, f)


def _settings(num_classes, clips_per_class, num_frames, num_fragments, seed,
              first_digit) -> dict:
    settings = {"num_classes": num_classes, "clips_per_class": clips_per_class,
                "num_frames": num_frames, "num_fragments": num_fragments, "seed": seed,
                "fps": FPS, "frame_size": cluttered_digits.FRAME_SIZE, "version": 1}
    if first_digit:  # the demo's own marker stays as it was
        settings["first_digit"] = first_digit
    return settings


def make_demo_dataset(root: str, num_classes: int = 5, clips_per_class: int = 100,
                      num_frames: int = 16, num_fragments: int = 30, seed: int = 0,
                      test_fraction: float = 0.3, first_digit: int = 0) -> str:
    """Writes the demo dataset to `root` (once: a complete one with the same settings is
    reused) and returns `root`. The write goes to a temporary folder renamed at the end, so
    an interrupted run never leaves a half dataset that looks complete.

    `first_digit`: the classes are digits first_digit..first_digit+num_classes-1 (the demo:
    0-4; `first_digit=5` gives the other five, a source task to pretrain on)."""
    if not 0 <= first_digit <= 10 - num_classes:
        raise ValueError(f"digits {first_digit}..{first_digit + num_classes - 1}: there are "
                         "only the digits 0-9.")
    settings = _settings(num_classes, clips_per_class, num_frames, num_fragments, seed,
                         first_digit)
    marker = os.path.join(root, COMPLETE)
    if os.path.exists(marker):
        with open(marker) as f:
            if json.load(f) == settings:
                return root
        raise ValueError(f"{root} holds a demo dataset made with other settings; delete it or "
                         "choose another --data_dir.")
    if os.path.exists(root) and os.listdir(root):
        raise ValueError(f"{root} exists and is not a demo dataset; choose another --data_dir.")
    staging = root.rstrip("/") + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    _write_tree(staging, settings, test_fraction)
    with open(os.path.join(staging, COMPLETE), "w") as f:
        json.dump(settings, f)
    if os.path.exists(root):
        os.rmdir(root)
    os.replace(staging, root)
    return root


def _write_tree(root: str, settings: dict, test_fraction: float) -> None:
    rng = np.random.default_rng(settings["seed"])
    first = settings.get("first_digit", 0)
    images, labels, digits = cluttered_digits._digit_bank(settings["num_classes"], first)
    fragments = cluttered_digits._fragment_bank(digits, rng)
    os.makedirs(os.path.join(root, SPLITS_FOLDER))
    num_test = int(round(settings["clips_per_class"] * test_fraction))
    for k in range(first, first + settings["num_classes"]):
        name = f"digit_{k}"
        instances = rng.permutation(np.flatnonzero(labels == k))
        cut = int(len(instances) * (1 - test_fraction))
        lines = []
        for i in range(settings["clips_per_class"]):
            is_test = i >= settings["clips_per_class"] - num_test
            pool = instances[cut:] if is_test else instances[:cut]
            frames, centres = cluttered_digits.render_clip(
                images[rng.choice(pool)], fragments, rng, num_frames=settings["num_frames"],
                num_fragments=settings["num_fragments"])
            stem = f"{name}_{i:03d}"
            os.makedirs(os.path.join(root, name), exist_ok=True)
            encode_video(os.path.join(root, name, f"{stem}.avi"), frames, FPS, bit_rate=2_000_000)
            _write_keypoints(os.path.join(root, KEYPOINTS, name, stem), stem, centres)
            lines.append(f"{stem}.avi {2 if is_test else 1} \n")
        for split in (1, 2, 3):
            with open(os.path.join(root, SPLITS_FOLDER, f"{name}_test_split{split}.txt"),
                      "w") as f:
                f.writelines(lines)


def default_root(base: Optional[str] = None) -> str:
    """Where the demo dataset lives by default: `~/.keras_attnpool/demo` (or `base/demo`)."""
    base = base or os.environ.get("KERAS_ATTNPOOL_HOME",
                                  os.path.join(os.path.expanduser("~"), ".keras_attnpool"))
    return os.path.join(base, "demo")
