"""Which record files a pipeline reads: patterns and lists checked, a prepared split's
shards (from its manifest), and one host's share of them.

Paths go through `tf.io.gfile`, so prepared records may live on a remote file system
(gs://, s3://...).
"""

import json
import os
from typing import Optional, Sequence, Union

import tensorflow as tf

from keras_attnpool.data.prepare.output import MANIFEST

Records = Union[str, Sequence[str]]


def list_record_files(records: Records) -> list:
    """Record files from a glob pattern, a file, or a list of files (sorted, checked)."""
    patterns = [records] if isinstance(records, (str, os.PathLike)) else list(records)
    if not patterns:
        raise ValueError("no record files given; run training/prepare.py first")
    files = []
    for pattern in map(os.fspath, patterns):
        # An existing file is taken as named: names may hold glob characters ('[', '?').
        matches = [pattern] if tf.io.gfile.exists(pattern) else sorted(
            tf.io.gfile.glob(pattern))
        if not matches:
            raise FileNotFoundError(f"{pattern}: no record files match; run "
                                    "training/prepare.py first or check the path")
        files += matches
    return files


def read_manifest(directory: str) -> Optional[dict]:
    """The manifest `prepare` wrote into `directory`, or None where there is none."""
    path = os.path.join(directory, MANIFEST)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def split_record_files(directory: str, split: str) -> list:
    """The shards of `split` in a prepared directory: from manifest.json when present."""
    shards = (read_manifest(directory) or {}).get("shards", {})
    if split in shards:
        return list_record_files([os.path.join(directory, name) for name in shards[split]])
    return list_record_files(os.path.join(directory, f"{split}-*-of-*.tfrecord"))


def pipeline_files(files: Sequence[str],
                   input_context: Optional[tf.distribute.InputContext]) -> list:
    """The files this input pipeline reads: all of them, or its disjoint share when the
    strategy calls the dataset function once per pipeline (host)."""
    if input_context is None or input_context.num_input_pipelines == 1:
        return list(files)
    count = input_context.num_input_pipelines
    if len(files) < count:
        raise ValueError(f"{len(files)} record files for {count} input pipelines; prepare "
                         "with more shards")
    return list(files)[input_context.input_pipeline_id::count]
