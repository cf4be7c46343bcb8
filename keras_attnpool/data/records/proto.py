"""The record messages (`records.schema`) built with protobuf alone, so that prepare's worker
processes serialise records without importing TensorFlow.

`tf.train.SequenceExample` comes from TensorFlow's generated module
`tensorflow.core.example.example_pb2`, which cannot be imported without importing all of
TensorFlow. The same messages are declared here (`_file_descriptor`): every field with the
number, type, label and packing of tensorflow/core/example/{feature,example}.proto, so
that the bytes are the same (tests/data/test_record_proto.py compares them with
TensorFlow's). The declarations live in a descriptor pool of their own, so they never clash
with TensorFlow's registration of the same names when both are loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from keras_attnpool.data.records import stored_frame

_Field = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "tensorflow"  # TensorFlow's message names, in a pool of our own
_PREFIX = 64


def _message(file: descriptor_pb2.FileDescriptorProto, name: str,
             fields: Sequence[tuple], oneof: Optional[str] = None
             ) -> descriptor_pb2.DescriptorProto:
    """Adds message `name` to `file`; each field is (name, number, type, label, type_name,
    packed). With `oneof`, all fields belong to that oneof."""
    message = file.message_type.add(name=name)
    if oneof is not None:
        message.oneof_decl.add(name=oneof)
    for field_name, number, kind, label, type_name, packed in fields:
        field = message.field.add(name=field_name, number=number, type=kind, label=label)
        if type_name:
            field.type_name = f".{_PACKAGE}.{type_name}"
        if packed:
            field.options.packed = True
        if oneof is not None:
            field.oneof_index = 0
    return message


def _map(file: descriptor_pb2.FileDescriptorProto, name: str, field_name: str,
         value_type: str) -> None:
    """Adds message `name` holding `map<string, value_type> field_name = 1`."""
    entry_name = "".join(part.title() for part in field_name.split("_")) + "Entry"
    message = _message(file, name, [(field_name, 1, _Field.TYPE_MESSAGE,
                                     _Field.LABEL_REPEATED, f"{name}.{entry_name}", False)])
    entry = message.nested_type.add(name=entry_name)
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=_Field.TYPE_STRING, label=_Field.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=_Field.TYPE_MESSAGE,
                    label=_Field.LABEL_OPTIONAL, type_name=f".{_PACKAGE}.{value_type}")


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """feature.proto and the SequenceExample of example.proto, as TensorFlow declares them."""
    file = descriptor_pb2.FileDescriptorProto(
        name="keras_attnpool/data/records/example.proto", package=_PACKAGE, syntax="proto3")
    repeated, optional = _Field.LABEL_REPEATED, _Field.LABEL_OPTIONAL
    _message(file, "BytesList", [("value", 1, _Field.TYPE_BYTES, repeated, None, False)])
    _message(file, "FloatList", [("value", 1, _Field.TYPE_FLOAT, repeated, None, True)])
    _message(file, "Int64List", [("value", 1, _Field.TYPE_INT64, repeated, None, True)])
    _message(file, "Feature", [
        ("bytes_list", 1, _Field.TYPE_MESSAGE, optional, "BytesList", False),
        ("float_list", 2, _Field.TYPE_MESSAGE, optional, "FloatList", False),
        ("int64_list", 3, _Field.TYPE_MESSAGE, optional, "Int64List", False)], oneof="kind")
    _map(file, "Features", "feature", "Feature")
    _message(file, "FeatureList", [
        ("feature", 1, _Field.TYPE_MESSAGE, repeated, "Feature", False)])
    _map(file, "FeatureLists", "feature_list", "FeatureList")
    _message(file, "SequenceExample", [
        ("context", 1, _Field.TYPE_MESSAGE, optional, "Features", False),
        ("feature_lists", 2, _Field.TYPE_MESSAGE, optional, "FeatureLists", False)])
    return file


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file_descriptor())
SequenceExample = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName(f"{_PACKAGE}.SequenceExample"))


def build_example(video_id: str, jpeg_frames: Sequence[bytes], label: int = -1,
                  labels: Optional[np.ndarray] = None, fps: float = 0.0,
                  height: int = 0, width: int = 0,
                  keypoints: Optional[Sequence[Optional[np.ndarray]]] = None
                  ) -> SequenceExample:
    """The `tf.train.SequenceExample` of one sample (`records.schema` lists its features).

    Each JPEG is kept in its stored form (`stored_frame`), which training reads at a byte
    position. Built in place: constructing sub-messages first and passing them to their
    parents would copy every JPEG twice more (a clip's JPEGs take megabytes).
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
        frames.add().bytes_list.value.append(stored_frame.store(jpeg))
        points.add().float_list.value.extend(
            [] if people is None else np.asarray(people, np.float32).ravel().tolist())
    return example


def serialize(example: SequenceExample) -> bytes:
    """Deterministic bytes: the same sample gives the same record in every process (exact
    resume, identical shards whichever process wrote them)."""
    return example.SerializeToString(deterministic=True)


def stored_frames(example: SequenceExample) -> list:
    """The stored frames of a record message, in order."""
    return [f.bytes_list.value[0] for f in example.feature_lists.feature_list["frames"].feature]


def frame_positions(serialized: bytes, jpeg_frames: Sequence[bytes]) -> list:
    """Where each of `jpeg_frames` (the record's stored frames) starts inside the
    serialised record (protobuf stores bytes fields verbatim, in order).

    Each JPEG lies a few bytes (field tags, lengths) after the one before: a search for a
    short prefix, then a comparison of the rest, touches far fewer bytes than searching for
    whole JPEGs; a false prefix match fails the comparison and the search goes on.
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
    frame_positions: Sequence[int]  # where each stored frame starts inside the record


def record_parts(example: SequenceExample, record: bytes) -> RecordParts:
    """The `RecordParts` of `record`, the serialised `example`."""
    return RecordParts(len(record), serialize(without_frames(example)),
                       frame_positions(record, stored_frames(example)))
