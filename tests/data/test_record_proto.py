"""The record messages of `records.proto` (protobuf alone) against TensorFlow's own.

Each expected record is built here with `tf.train.SequenceExample`'s constructors from
values written out by hand; the bytes must be the same, and TensorFlow's parser must read
them back as those values.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_attnpool.data.records import proto, stored_frame  # noqa: E402
from keras_attnpool.data.records.schema import CONTEXT_SPEC, SEQUENCE_SPEC  # noqa: E402

NAN = float("nan")


def floats(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def ints(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def strings(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def tensorflow_record(video_id, frames, label, labels, fps, height, width, keypoints):
    """The record as TensorFlow's classes build it; `keypoints`: flat lists per frame.
    Frames are kept in their stored form (tests/data/test_stored_frame.py checks it)."""
    frames = [stored_frame.store(f) for f in frames]
    return tf.train.SequenceExample(
        context=tf.train.Features(feature={
            "video_id": strings([video_id]), "label": ints([label]),
            "labels": floats(labels), "num_frames": ints([len(frames)]),
            "fps": floats([fps]), "height": ints([height]), "width": ints([width])}),
        feature_lists=tf.train.FeatureLists(feature_list={
            "frames": tf.train.FeatureList(feature=[strings([f]) for f in frames]),
            "keypoints": tf.train.FeatureList(feature=[floats(k) for k in keypoints])}))


def person(x):
    """One person's 16 joints (x, y, valid) as the flat list a record stores."""
    return [v for j in range(16) for v in (x + j, 2.0 * j, float(j % 2))]


# (build_example arguments, the same record's values as tensorflow_record takes them).
CASES = {
    "single_label_video": (
        dict(video_id="brush_hair/a.avi", jpeg_frames=[b"\xff\xd8one", b"\xff\xd8two"],
             label=7, fps=29.97, height=240, width=320),
        (b"brush_hair/a.avi", [b"\xff\xd8one", b"\xff\xd8two"], 7, [], 29.97, 240, 320,
         [[], []])),
    "multi_label_image": (
        dict(video_id="HICO_train2015_00000001.jpg", jpeg_frames=[b"\xff\xd8img"],
             labels=np.array([1, -1, 0, NAN, 1], np.float32), height=480, width=640),
        (b"HICO_train2015_00000001.jpg", [b"\xff\xd8img"], -1, [1, -1, 0, NAN, 1], 0.0,
         480, 640, [[]])),
    "keypoints_on_some_frames": (
        dict(video_id="v", jpeg_frames=[b"\xff\xd8a", b"\xff\xd8b", b"\xff\xd8c"], label=0,
             height=8, width=8,
             keypoints=[np.array(person(1.0), np.float32).reshape(1, 16, 3), None,
                        np.array(person(3.0) + person(5.5), np.float32).reshape(2, 16, 3)]),
        (b"v", [b"\xff\xd8a", b"\xff\xd8b", b"\xff\xd8c"], 0, [], 0.0, 8, 8,
         [person(1.0), [], person(3.0) + person(5.5)])),
    "empty_lists_and_bytes": (
        dict(video_id="", jpeg_frames=[b"\xff\xd8"], labels=np.zeros([0], np.float32),
             keypoints=[np.zeros((0, 16, 3), np.float32)]),
        (b"", [b"\xff\xd8"], -1, [], 0.0, 0, 0, [[]])),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bytes_equal_tensorflows_and_parse_back(name):
    kwargs, values = CASES[name]
    record = proto.serialize(proto.build_example(**kwargs))
    expected = tensorflow_record(*values)
    assert record == expected.SerializeToString(deterministic=True)

    context, sequence, _ = tf.io.parse_sequence_example(
        [record], context_features=CONTEXT_SPEC, sequence_features=SEQUENCE_SPEC)
    video_id, frames, label, labels, fps, height, width, keypoints = values
    assert context["video_id"].numpy().tolist() == [video_id]
    assert context["label"].numpy().tolist() == [label]
    np.testing.assert_array_equal(context["labels"].to_list(), [labels])  # NaN == NaN here
    assert context["num_frames"].numpy().tolist() == [len(frames)]
    np.testing.assert_allclose(context["fps"].numpy(), [fps], rtol=1e-6)
    assert (context["height"].numpy().tolist(), context["width"].numpy().tolist()) == \
        ([height], [width])
    assert sequence["frames"].numpy().tolist() == [[stored_frame.store(f) for f in frames]]
    assert sequence["keypoints"].to_list() == [keypoints]


def test_messages_read_tensorflows_bytes_and_drop_the_frames():
    kwargs, values = CASES["keypoints_on_some_frames"]
    serialized = tensorflow_record(*values).SerializeToString(deterministic=True)
    example = proto.SequenceExample.FromString(serialized)
    assert [f.bytes_list.value[0] for f in
            example.feature_lists.feature_list["frames"].feature] == \
        [stored_frame.store(f) for f in values[1]]
    entry = proto.without_frames(example)
    assert set(entry.feature_lists.feature_list) == {"keypoints"}
    assert entry.context == example.context


def test_the_module_imports_no_tensorflow():
    code = ("import sys; import keras_attnpool.data.records.proto; "
            "print(sorted({'tensorflow', 'keras'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
