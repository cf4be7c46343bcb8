"""OpenPose -> MPII keypoints, the flip permutation, the reader registry, the records."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import ast  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_attnpool.data import joints  # noqa: E402
from keras_attnpool.data.datasets import openpose  # noqa: E402
from keras_attnpool.data.datasets import (  # noqa: E402
    DATASETS, DatasetError, DatasetSpec, Sample, Skipped, get_reader, read_hmdb51, read_mpii)

# Expected MPII rows written out joint by joint: (x, y, valid).
COCO_EXPECTED = [
    (110, 210, 1),  # r ankle    <- COCO 10
    (109, 209, 1),  # r knee     <- 9
    (108, 208, 1),  # r hip      <- 8
    (111, 211, 1),  # l hip      <- 11
    (112, 212, 1),  # l knee     <- 12
    (113, 213, 1),  # l ankle    <- 13
    (0, 0, 0),      # pelvis: COCO-18 has none
    (101, 201, 1),  # thorax     <- neck (1)
    (0, 0, 0),      # upper neck
    (0, 0, 0),      # head top
    (104, 204, 1),  # r wrist    <- 4
    (103, 203, 1),  # r elbow    <- 3
    (102, 202, 1),  # r shoulder <- 2
    (105, 205, 1),  # l shoulder <- 5
    (106, 206, 1),  # l elbow    <- 6
    (0, 0, 0),      # l wrist    <- 7, confidence 0
]
BODY25_EXPECTED = [
    (311, 411, 1), (310, 410, 1), (309, 409, 1), (312, 412, 1), (313, 413, 1),
    (314, 414, 1), (308, 408, 1), (301, 401, 1), (0, 0, 0), (0, 0, 0), (304, 404, 1),
    (303, 403, 1), (302, 402, 1), (305, 405, 1), (306, 406, 1), (307, 407, 1)]


def flat(num_joints, x0, y0, zero_confidence=()):
    return [v for k in range(num_joints)
            for v in (x0 + k, y0 + k, 0.0 if k in zero_confidence else 0.8)]


def test_coco18_and_body25_mapping():
    np.testing.assert_array_equal(
        openpose.openpose_to_mpii(flat(18, 100, 200, zero_confidence=(7,))), COCO_EXPECTED)
    np.testing.assert_array_equal(openpose.openpose_to_mpii(flat(25, 300, 400)),
                                  BODY25_EXPECTED)
    with pytest.raises(ValueError, match="45 numbers; expected 54"):
        openpose.openpose_to_mpii(flat(15, 0, 0))
    with pytest.raises(ValueError, match="body25 needs 75"):
        openpose.openpose_to_mpii(flat(18, 0, 0), layout="body25")


def test_flip_swaps_left_and_right():
    names = joints.MPII_JOINTS
    assert names[6:10] == ("pelvis", "thorax", "upper_neck", "head_top")
    for j, name in enumerate(names):
        mirrored = {"r": "l", "l": "r"}.get(name[0], name[0]) + name[1:] \
            if name[:2] in ("r_", "l_") else name
        assert names[joints.MPII_FLIP[j]] == mirrored
    assert [joints.MPII_FLIP[j] for j in joints.MPII_FLIP] == list(range(16))


def test_read_openpose_json(tmp_path):
    path = tmp_path / "img_keypoints.json"
    path.write_text(json.dumps({"version": 1.3, "people": [
        {"person_id": [-1], "pose_keypoints_2d": flat(18, 100, 200, zero_confidence=(7,))},
        {"person_id": [-1], "pose_keypoints_2d": flat(18, 0, 0, zero_confidence=range(18))},
        {"pose_keypoints": flat(25, 300, 400)}]}))       # OpenPose 1.0's key
    people = openpose.read_openpose_json(str(path))
    assert people.shape == (3, 16, 3) and people.dtype == np.float32
    np.testing.assert_array_equal(people[0], COCO_EXPECTED)
    assert not people[1].any()
    np.testing.assert_array_equal(people[2], BODY25_EXPECTED)
    path.write_text('{"version": 1.3, "people": []}')
    assert openpose.read_openpose_json(str(path)).shape == (0, 16, 3)


@pytest.mark.parametrize("text,match", [
    ('{"people": [', "cannot read OpenPose JSON"),
    ('{"animals": []}', "no 'people' list"),
    ('{"people": [{"pose_keypoints_2d": [1, 2, 3]}]}', r"people\[0\]: .*3 numbers"),
])
def test_bad_openpose_json_names_the_file(tmp_path, text, match):
    path = tmp_path / "bad_keypoints.json"
    path.write_text(text)
    with pytest.raises(DatasetError, match="bad_keypoints.json: " + match):
        openpose.read_openpose_json(str(path))


def test_read_openpose_video(tmp_path):
    for frame in (0, 2):
        (tmp_path / f"clip_{frame:012d}_keypoints.json").write_text(json.dumps(
            {"people": [{"pose_keypoints_2d": flat(25, 300 + frame, 400)}]}))
    (tmp_path / "notes.txt").write_text("ignored")
    frames = openpose.read_openpose_video(str(tmp_path))
    assert [f.shape for f in frames] == [(1, 16, 3), (0, 16, 3), (1, 16, 3)]
    assert frames[2][0, 0].tolist() == [313, 411, 1]     # r ankle = BODY_25 joint 11


def test_registry():
    assert set(DATASETS) == {"hmdb51", "ucf101", "mpii", "hico", "video_folder",
                             "image_folder"}
    assert get_reader("hmdb51") is read_hmdb51 and get_reader(" MPII ") is read_mpii
    with pytest.raises(ValueError, match=r"unknown dataset 'kinetics'.*'hico', 'hmdb51'"):
        get_reader("kinetics")


def test_records():
    label = np.array([1, np.nan, 0], np.float32)
    a = Sample("/d/x.jpg", label, "x.jpg", "train")
    assert a == Sample("/d/x.jpg", label.copy(), "x.jpg", "train")
    assert a != Sample("/d/x.jpg", np.array([1, np.nan, -1], np.float32), "x.jpg", "train")
    assert Sample("/d/a.avi", 3, "a.avi", "test") != Sample("/d/a.avi", 4, "a.avi", "test")
    assert len({a, Sample("/d/x.jpg", label.copy(), "x.jpg", "train")}) == 1
    spec = DatasetSpec("toy", "/d", ["a", "b"], {"train": [
        Sample("/d/1", 1, "1", "train"), Sample("/d/2", 1, "2", "train")], "test": []},
        [Skipped("/d/3", "empty file (0 bytes)", 4, "/d/list.txt")], info={"seed": 0})
    assert spec.summary() == {
        "dataset": "toy", "splits": {"train": 2, "test": 0},
        "class_counts": {"train": {"a": 0, "b": 2}, "test": {"a": 0, "b": 0}},
        "classes": ["a", "b"], "settings": {"seed": 0},
        "skipped": [{"path": "/d/3", "reason": "empty file (0 bytes)", "source": "/d/list.txt",
                     "line": 4, "listed": True}]}
    json.dumps(spec.summary())
    assert spec.labels("train").tolist() == [1, 1]


def test_reader_modules_do_not_import_tensorflow():
    package = pathlib.Path(joints.__file__).parent
    files = sorted((package / "datasets").glob("*.py")) + [package / "joints.py",
                                                           package / "media.py"]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] in ("tensorflow", "keras") for n in names), path
