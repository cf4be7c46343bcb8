"""Dataset readers: the official annotation files -> `DatasetSpec` (pure Python + NumPy).

Every reader is called as `reader(data_dir, *, on_error="skip", ...)` and returns a
`DatasetSpec` (`classes`, `samples[split] -> [Sample]`, `skipped`, `info`); see `records`.
`on_error="fail"` raises `DatasetError` (a ValueError) naming the file and line instead of
skipping. Readers only check that files exist, can be read (a symbolic link loop cannot) and
are not empty (0 bytes); decoding, and so finding truncated or non-video files, comes later.
`~` in paths is expanded. `spec.listed()` counts every entry listed per split (samples and
skipped entries alike), so that no listed sample goes unaccounted.

Options beyond `data_dir` and `on_error` (see each reader's docstring):
- hmdb51, ucf101: `split=1|2|3` (splits "train", "test"), `splits_dir`, `keypoints_dir`.
- mpii: `val_list` or `val_fraction` + `seed`, `include_test`, `annotation_file`
  (splits "train", "val" [, "test"]); joints in `Sample.keypoints`.
- hico: `annotation_file`, `keypoints_dir` (splits "train", "test"; multi-label).
- video_folder, image_folder: `split_file` or `test_fraction` + `seed`, `classes`,
  `extensions`, `keypoints_dir` (splits "train", "test" [, "val"]).

    spec = get_reader("hmdb51")("~/data/hmdb51", split=1)
    spec.counts()            # {"train": 3570, "test": 1530}
"""

from __future__ import annotations

from collections.abc import Callable

from keras_attnpool.data.datasets.hico import read_hico
from keras_attnpool.data.datasets.hmdb51 import read_hmdb51
from keras_attnpool.data.datasets.image_folder import read_image_folder
from keras_attnpool.data.datasets.mpii import read_mpii
from keras_attnpool.data.datasets.records import DatasetError, DatasetSpec, Sample, Skipped
from keras_attnpool.data.datasets.ucf101 import read_ucf101
from keras_attnpool.data.datasets.video_folder import read_video_folder

DATASETS: dict[str, Callable[..., DatasetSpec]] = {
    "hmdb51": read_hmdb51,
    "ucf101": read_ucf101,
    "mpii": read_mpii,
    "hico": read_hico,
    "video_folder": read_video_folder,
    "image_folder": read_image_folder,
}

# Datasets of videos (the rest are images), for code that must decode them.
VIDEO_DATASETS = frozenset({"hmdb51", "ucf101", "video_folder"})
# Datasets whose classes are the folders of data_dir: prepared records must not sit in them.
CLASS_FOLDER_DATASETS = frozenset({"video_folder", "image_folder"})


def get_reader(name: str) -> Callable[..., DatasetSpec]:
    """The reader function for dataset `name` (case-insensitive)."""
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; accepted values: {sorted(DATASETS)}")
    return DATASETS[key]


__all__ = ["CLASS_FOLDER_DATASETS", "DATASETS", "VIDEO_DATASETS", "DatasetError",
           "DatasetSpec", "Sample", "Skipped",
           "get_reader", "read_hico", "read_hmdb51", "read_image_folder",
           "read_mpii", "read_ucf101", "read_video_folder"]
