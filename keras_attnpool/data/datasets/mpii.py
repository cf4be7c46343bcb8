"""MPII Human Pose as released: `mpii_human_pose_v1_u12_1.mat` and `images/`.

Files (from `mpii_human_pose_v1_u12_2.zip` and `mpii_human_pose_v1.tar.gz`):

    <data_dir>/mpii_human_pose_v1_u12_1.mat   (or under mpii_human_pose_v1_u12_2/)
    <data_dir>/images/<name>.jpg

Fields used (MATLAB, 1-based i): `RELEASE.annolist(i).image.name`,
`RELEASE.annolist(i).annorect(j).annopoints.point(k).{id, x, y}` (joint id 0..15 in MPII
order, see `keras_attnpool.data.joints.MPII_JOINTS`), `RELEASE.annolist(i).vididx`
(the source video, optional), `RELEASE.act(i).{act_name, cat_name, act_id}` and
`RELEASE.img_train(i)` (1 train, 0 test; test images have no public action labels).

Classes: the sorted unique non-empty `act_name`s (several `act_id`s can share one name,
and the name is the class). Train images with an empty `act_name` are unlabelled: they are
listed in `skipped`, never raised. Test images are counted in `info["test_images"]` and
returned as a "test" split (label -1 when unlabelled) only with `include_test=True`.

Train/val: the paper used the R*CNN split (from Georgia Gkioxari), published with the
authors' code as `src/data/mpii/lists/images_mpii_val.txt` in
github.com/rohitgirdhar/AttentionalPoolingAction (6988 images). Pass that file as it is as
`val_list`: one image name per line, with or without the `.jpg` of the annotation file's
names (every other labelled train image is "train"); or get a seeded split:
per class, a `val_fraction` (default 0.46, the R*CNN ratio 6988 / 15207) of the class's
source videos (`vididx`; the image itself when absent) goes to "val", so frames of one
video never straddle train and val (see `common.stratified_split` for the rounding).

Keypoints: each sample's `keypoints` is float32 (num_people, 16, 3): x, y (pixels as in
the file) and valid (1 for an annotated joint, else 0, with x = y = 0). Row j is
`annorect(j)`; a person without `annopoints` is all invalid. `is_visible` is not used: an
occluded joint is still annotated.

A file that is not the release (missing `RELEASE`, `annolist`, `act`, `img_train`, unequal
lengths) always raises. A bad entry (no image name, a `..` path, a bad joint, a missing or
empty image, a bad val-list line) follows `on_error`; `line` is the MATLAB index i or the
val-list line.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from keras_attnpool.data.datasets import matlab
from keras_attnpool.data.datasets.common import (
    Entry, Reporter, absolute, build_samples, drop_duplicates, read_lines, safe_relpath,
    stratified_split)
from keras_attnpool.data.datasets.records import DatasetError, DatasetSpec
from keras_attnpool.data.joints import NUM_JOINTS

ANNOTATION_FILE = "mpii_human_pose_v1_u12_1.mat"
DEFAULT_VAL_FRACTION = 0.46


class _BadEntry(Exception):
    """An annolist entry that cannot be read; the message is the reason."""


def person_keypoints(rect: Any) -> np.ndarray:
    """(16, 3) x, y, valid of one `annorect` element."""
    out = np.zeros((NUM_JOINTS, 3), np.float32)
    for point in matlab.as_list(matlab.get(matlab.get(rect, "annopoints"), "point")):
        joint = matlab.number(matlab.get(point, "id"))
        x, y = matlab.number(matlab.get(point, "x")), matlab.number(matlab.get(point, "y"))
        if joint is None or not joint.is_integer() or not 0 <= joint < NUM_JOINTS:
            raise _BadEntry(f"joint id {matlab.get(point, 'id')!r} is not in 0..15")
        if x is None or y is None or not np.isfinite([x, y]).all():
            raise _BadEntry(f"joint {int(joint)} has no numeric x, y")
        out[int(joint)] = (x, y, 1.0)
    return out


def image_keypoints(annorect: Any) -> np.ndarray:
    """(num_people, 16, 3) for one image's `annorect` (a struct, a struct array or [])."""
    people = [person_keypoints(rect) for rect in matlab.as_list(annorect)]
    return np.stack(people) if people else np.zeros((0, NUM_JOINTS, 3), np.float32)


@dataclasses.dataclass
class _Image:
    name: str
    act_name: str
    train: bool
    group: str
    keypoints: np.ndarray


def _read_image(anno: Any, act: Any, train_flag: Any) -> _Image:
    name = matlab.text(matlab.get(matlab.get(anno, "image"), "name"))
    if not name:
        raise _BadEntry("no image.name")
    train = matlab.number(train_flag)
    if train not in (0.0, 1.0):
        raise _BadEntry(f"img_train is {train_flag!r}, expected 0 or 1")
    act_name = matlab.text(matlab.get(act, "act_name")) or ""
    vididx = matlab.number(matlab.get(anno, "vididx"))
    group = f"video {int(vididx)}" if vididx is not None else f"image {name}"
    keypoints = image_keypoints(matlab.get(anno, "annorect"))
    return _Image(name, act_name.strip(), train == 1.0, group, keypoints)


def load_release(path: str, reporter: Reporter) -> list[tuple[int, _Image]]:
    """(1-based index, image) for every readable annolist entry of the `.mat` file."""
    release = matlab.load_mat(path, ("RELEASE",), "MPII annotation file")["RELEASE"]
    annolist = matlab.as_list(matlab.require(release, "annolist", path))
    acts = matlab.as_list(matlab.require(release, "act", path))
    img_train = matlab.as_list(matlab.require(release, "img_train", path))
    if not len(annolist) == len(acts) == len(img_train):
        raise DatasetError(f"{path}: RELEASE.annolist, act and img_train have "
                           f"{len(annolist)}, {len(acts)} and {len(img_train)} entries; "
                           "they must be equal, download the annotation file again")
    images = []
    for i, (anno, act, flag) in enumerate(zip(annolist, acts, img_train), start=1):
        try:
            images.append((i, _read_image(anno, act, flag)))
        except _BadEntry as e:
            reporter.error(f"annolist({i})", f"malformed entry: {e}", path, i)
    return images


def _val_from_list(val_list: str, train_names: set[str], test_names: set[str],
                   reporter: Reporter) -> set[str]:
    chosen: dict[str, int] = {}
    known = train_names | test_names
    for number, name in read_lines(val_list):
        if name not in known and f"{name}.jpg" in known:
            name = f"{name}.jpg"  # the authors' lists name images without the extension
        if name in chosen:
            reporter.error(name, f"duplicate entry (first at line {chosen[name]})",
                           val_list, number, listed=False)
        elif name in test_names:
            reporter.error(name, "a test image (img_train = 0) cannot be in val",
                           val_list, number, listed=False)
        elif name not in train_names:
            reporter.error(name, "not a labelled train image of the annotation file",
                           val_list, number, listed=False)
        else:
            chosen[name] = number
    return set(chosen)


def _locate(data_dir: str, annotation_file: str | None) -> str:
    if annotation_file is not None:
        return absolute(annotation_file)
    for folder in (data_dir, os.path.join(data_dir, "mpii_human_pose_v1_u12_2")):
        if os.path.isfile(os.path.join(folder, ANNOTATION_FILE)):
            return os.path.join(folder, ANNOTATION_FILE)
    return os.path.join(data_dir, ANNOTATION_FILE)


def _entries(images: list[tuple[int, _Image]], classes: list[str], include_test: bool,
             mat_path: str, reporter: Reporter) -> list[Entry]:
    label_of = {name: i for i, name in enumerate(classes)}
    entries = []
    for i, image in images:
        rel = safe_relpath(image.name)
        split = "train" if image.train else "test" if include_test else None
        if rel is None or "/" in rel:
            reporter.error(image.name, "image name escapes the images folder", mat_path, i,
                           split=split, listed=split is not None)
        elif image.train and not image.act_name:
            reporter.ignore(image.name, "unlabelled train image (empty act_name)", mat_path, i)
        elif split is not None:
            entries.append(Entry(rel, label_of.get(image.act_name, -1), split, mat_path, i))
    return drop_duplicates(entries, reporter)


def read_mpii(data_dir: str, *, on_error: str = "skip", annotation_file: str | None = None,
              val_list: str | None = None, val_fraction: float = DEFAULT_VAL_FRACTION,
              seed: int = 0, include_test: bool = False) -> DatasetSpec:
    """Reads MPII Human Pose action labels and joints into train / val (/ test) samples.

    Args:
        data_dir: folder holding `images/` and the annotation file.
        on_error: "skip" (record problems in `skipped`) or "fail" (raise `DatasetError`).
        annotation_file: the `.mat` file, if not found in `data_dir` as documented.
        val_list: text file of val image names, one per line; else a seeded split.
        val_fraction: fraction of each class's videos held out for val (seeded split).
        seed: seed of the seeded split.
        include_test: also return the test images as split "test" (label -1: unknown).
    """
    reporter = Reporter(on_error)
    data_dir = absolute(data_dir)
    mat_path = _locate(data_dir, annotation_file)
    images = load_release(mat_path, reporter)
    classes = sorted({image.act_name for _, image in images if image.act_name})
    entries = _entries(images, classes, include_test, mat_path, reporter)
    by_name = {safe_relpath(image.name): image for _, image in images}
    train = [e for e in entries if e.split == "train"]
    if val_list is not None:
        test_names = {image.name for _, image in images if not image.train}
        val = _val_from_list(absolute(val_list), {e.rel for e in train}, test_names, reporter)
    else:
        groups: dict[int, list[str]] = {}
        for e in train:
            groups.setdefault(e.label, []).append(by_name[e.rel].group)
        held_out = stratified_split({k: sorted(set(v)) for k, v in groups.items()},
                                    val_fraction, seed)
        val = {e.rel for e in train if by_name[e.rel].group in held_out}
    entries = [dataclasses.replace(e, split="val") if e.split == "train" and e.rel in val
               else e for e in entries]
    splits = ("train", "val", "test") if include_test else ("train", "val")
    samples = build_samples(entries, os.path.join(data_dir, "images"), splits, reporter,
                            video=False)
    samples = {split: [dataclasses.replace(s, keypoints=by_name[s.video_id].keypoints)
                       for s in items] for split, items in samples.items()}
    info = {"annotation_file": mat_path, "val_list": val_list,
            "seed": None if val_list else seed,
            "val_fraction": None if val_list else val_fraction,
            "test_images": sum(1 for _, image in images if not image.train)}
    return DatasetSpec("mpii", data_dir, classes, samples, reporter.skipped, info=info)
