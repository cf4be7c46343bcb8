"""The record messages (`records.schema`) built with protobuf alone, so that prepare's worker
processes can serialise records without loading TensorFlow.

`tensorflow.core.example.example_pb2` is the generated protobuf module behind
`tf.train.SequenceExample`. Imported normally it loads all of TensorFlow first (the package's
`__init__`); in a prepare worker a bare `tensorflow` namespace module stands in for the
package (see `prepare.worker`), and the import loads the generated module alone (~15 ms).
Either way the class is the same message, and its bytes are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from tensorflow.core.example import example_pb2

SequenceExample = example_pb2.SequenceExample
_PREFIX = 64


def build_example(video_id: str, jpeg_frames: Sequence[bytes], label: int = -1,
                  labels: Optional[np.ndarray] = None, fps: float = 0.0,
                  height: int = 0, width: int = 0,
                  keypoints: Optional[Sequence[Optional[np.ndarray]]] = None
                  ) -> SequenceExample:
    """The `tf.train.SequenceExample` of one sample (`records.schema` lists its features).

    Built in place: constructing sub-messages first and passing them to their parents
    would copy every JPEG twice more (a clip is ~2.5 MB).
    """
    if not jpeg_frames:
        raise ValueError(f"{video_id}: a record needs at least one frame.")
    per_frame_keypoints = keypoints if keypoints is not None else [None] * len(jpeg_frames)
    if len(per_frame_keypoints) != len(jpeg_frames):
        raise ValueError(f"{video_id}: {len(per_frame_keypoints)} keypoint entries for "
                         f"{len(jpeg_frames)} frames.")
    example = SequenceExample()
    context = example.context.feature
    context["video_id"].bytes_list.value.append(video_id.encode("utf-8"))
    context["label"].int64_list.value.append(int(label))
    context["labels"].float_list.value.extend(
        [] if labels is None else np.asarray(labels, np.float32).ravel().tolist())
    context["num_frames"].int64_list.value.append(len(jpeg_frames))
    context["fps"].float_list.value.append(float(fps))
    context["height"].int64_list.value.append(int(height))
    context["width"].int64_list.value.append(int(width))
    sequence = example.feature_lists.feature_list
    frames, points = sequence["frames"].feature, sequence["keypoints"].feature
    for jpeg, people in zip(jpeg_frames, per_frame_keypoints):
        frames.add().bytes_list.value.append(jpeg)
        points.add().float_list.value.extend(
            [] if people is None else np.asarray(people, np.float32).ravel().tolist())
    return example


def serialize(example: SequenceExample) -> bytes:
    """Deterministic bytes: the same sample gives the same record in every process (exact
    resume, identical shards whichever process wrote them)."""
    return example.SerializeToString(deterministic=True)


def frame_positions(serialized: bytes, jpeg_frames: Sequence[bytes]) -> list:
    """Where each JPEG starts inside the serialised record (protobuf stores bytes fields
    verbatim, in order).

    Each JPEG lies a few bytes (field tags, lengths) after the one before: a search for a
    short prefix, then a comparison of the rest, is ~20x faster than searching for whole
    JPEGs; a false prefix match fails the comparison and the search goes on.
    """
    positions, position = [], 0
    for t, jpeg in enumerate(jpeg_frames):
        found = serialized.find(jpeg[:_PREFIX], position)
        while found >= 0 and not serialized.startswith(jpeg, found):
            found = serialized.find(jpeg[:_PREFIX], found + 1)
        if found < 0:  # cannot happen for the record of these frames: fail loudly if it does
            raise ValueError(f"frame {t}: its bytes are not in the serialised record")
        positions.append(found)
        position = found + len(jpeg)
    return positions


def without_frames(example: SequenceExample) -> SequenceExample:
    """A copy of the message without its `frames` feature list (what a frame index keeps)."""
    out = SequenceExample()
    out.context.CopyFrom(example.context)
    for name, features in example.feature_lists.feature_list.items():
        if name != "frames":
            out.feature_lists.feature_list[name].CopyFrom(features)
    return out


@dataclass(frozen=True)
class RecordParts:
    """What a frame index entry (`frame_index`) needs of a record, known when it is
    serialised (prepare's workers send it with the record)."""

    record_length: int
    base: bytes                     # the record without its frames, serialised
    frame_positions: Sequence[int]  # where each JPEG starts inside the record
    frame_lengths: Sequence[int]


def record_parts(example: SequenceExample, record: bytes,
                 jpeg_frames: Sequence[bytes]) -> RecordParts:
    """The `RecordParts` of `record`, the serialised `example` of `jpeg_frames`."""
    return RecordParts(len(record),
                       serialize(without_frames(example)),
                       frame_positions(record, jpeg_frames),
                       [len(j) for j in jpeg_frames])
