"""A person's own images: `<root>/<class>/<image>` with an optional split file.

See `class_folders` for the layout, the class order, the split file format
(`<class>/<file> <train|val|test>` per line) and the seeded stratified split used without
one. Accepted extensions: `media.IMAGE_EXTENSIONS` (case-insensitive). Keypoints (OpenPose
`--write_json` output) are looked for in `<keypoints_dir>/<class>/<image stem>_keypoints.json`.
"""

from __future__ import annotations

from collections.abc import Sequence

from keras_attnpool.data.datasets.class_folders import read_class_folders
from keras_attnpool.data.datasets.records import DatasetSpec
from keras_attnpool.data.media import IMAGE_EXTENSIONS


def read_image_folder(data_dir: str, *, on_error: str = "skip", split_file: str | None = None,
                      test_fraction: float = 0.3, seed: int = 0,
                      classes: Sequence[str] | None = None,
                      extensions: Sequence[str] = IMAGE_EXTENSIONS,
                      keypoints_dir: str | None = None) -> DatasetSpec:
    """Reads class folders of images into train / test (/ val) samples.

    Args:
        data_dir: the folder holding one folder per class.
        on_error: "skip" (record problems in `skipped`) or "fail" (raise `DatasetError`).
        split_file: lines `<class>/<file> <train|val|test>`; else a seeded split.
        test_fraction: fraction of each class held out as "test" without a split file.
        seed: seed of that split.
        classes: class names in label order; default the sorted folder names.
        extensions: accepted file extensions, lower case with the dot.
        keypoints_dir: OpenPose output, `<keypoints_dir>/<class>/<stem>_keypoints.json`.
    """
    return read_class_folders(
        "image_folder", data_dir, tuple(e.lower() for e in extensions), False,
        split_file=split_file, test_fraction=test_fraction, seed=seed,
        classes=None if classes is None else list(classes), on_error=on_error,
        keypoints_dir=keypoints_dir)
