"""OpenPose -> MPII keypoints, the flip permutation, the reader registry, the records."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import ast  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import re  # noqa: E402

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


# The paper's authors' release: the first OpenPose format, `image_%05d.json` from 1.
def authors_json(*bodies):
    return json.dumps({"version": 0.1, "bodies": [{"joints": b} for b in bodies]})


def test_both_json_formats_give_the_same_mpii_arrays(tmp_path):
    first, second = flat(18, 100, 200, zero_confidence=(7,)), flat(18, 0, 0)
    (tmp_path / "today_keypoints.json").write_text(json.dumps({"version": 1.3, "people": [
        {"pose_keypoints_2d": first}, {"pose_keypoints_2d": second}]}))
    (tmp_path / "image_00001.json").write_text(authors_json(first, second))
    today = openpose.read_openpose_json(str(tmp_path / "today_keypoints.json"))
    authors = openpose.read_openpose_json(str(tmp_path / "image_00001.json"))
    assert authors.shape == (2, 16, 3) and authors.dtype == np.float32
    np.testing.assert_array_equal(authors[0], COCO_EXPECTED)
    # second person: COCO joint k at (k, k), all found -> the same rows as COCO_EXPECTED
    # shifted by (-100, -200), with the left wrist (7) valid this time.
    expected = [(x - 100, y - 200, 1) if v else (0, 0, 0) for x, y, v in COCO_EXPECTED]
    expected[15] = (7, 7, 1)
    np.testing.assert_array_equal(authors[1], expected)
    np.testing.assert_array_equal(today, authors)
    (tmp_path / "image_00002.json").write_text(authors_json([]))  # body model off
    np.testing.assert_array_equal(
        openpose.read_openpose_json(str(tmp_path / "image_00002.json")), np.zeros((1, 16, 3)))
    (tmp_path / "image_00003.json").write_text('{"version": 0.1, "bodies": []}')
    assert openpose.read_openpose_json(str(tmp_path / "image_00003.json")).shape == (0, 16, 3)


@pytest.mark.parametrize("text,match", [
    ('{"bodies": [{"joints": [1, 2, 3]}]}', r"bodies\[0\]: keypoint list has 3 numbers"),
    ('{"bodies": {"joints": []}}', "'bodies' is not a list"),
    ('{"bodies": [], "people": []}', "both a 'people' and a 'bodies' list"),
])
def test_bad_authors_json_names_the_file(tmp_path, text, match):
    path = tmp_path / "image_00001.json"
    path.write_text(text)
    with pytest.raises(DatasetError, match="image_00001.json: " + match):
        openpose.read_openpose_json(str(path))


def r_ankle_person(x, y=50.0):
    """A COCO-18 body whose only found joint is the right ankle (COCO 10 -> MPII 0)."""
    person = np.zeros((18, 3))
    person[10] = (x, y, 0.9)
    return person.ravel().tolist()


def test_authors_video_folder_keeps_frames_in_place(tmp_path):
    written = (1, 2, 4, 7)  # image_00003, 5 and 6 missing
    for number in written:
        (tmp_path / f"image_{number:05d}.json").write_text(
            authors_json(r_ankle_person(10.0 * number)))
    (tmp_path / "image_00004.jpg").write_bytes(b"not a keypoints file")
    (tmp_path / "notes.txt").write_text("ignored")
    frames = openpose.read_openpose_video(str(tmp_path))
    assert len(frames) == max(written)  # frames 0 .. 6
    for index, people in enumerate(frames):
        if index + 1 in written:
            assert people.shape == (1, 16, 3), index
            assert people[0, 0].tolist() == [10.0 * (index + 1), 50.0, 1.0], index
            assert people[0, 1:].sum() == 0
        else:
            assert people.shape == (0, 16, 3), index


@pytest.mark.parametrize("names,bad,match", [
    (["clip_000000000000_keypoints.json", "image_00002.json"], "image_00002.json",
     r"named 'image_<frame:05d>.json' next to '<stem>_<frame>_keypoints.json' files "
     r"\(such as .*clip_000000000000_keypoints.json\); keep one layout per folder"),
    (["image_00000.json", "image_00001.json"], "image_00000.json",
     "frame number 0 in the 'image_<frame:05d>.json' layout, whose frames are numbered "
     "from 1; renumber"),
    (["image_00003.json", "image_0003.json"], "image_0003.json",  # read second (sorted)
     r"second file for frame 2 \(also .*image_00003.json\)"),
])
def test_bad_video_folder_names_the_file(tmp_path, names, bad, match):
    for name in names:
        (tmp_path / name).write_text(authors_json(r_ankle_person(1.0)))
    with pytest.raises(DatasetError, match=re.escape(f"{tmp_path / bad}: ") + match):
        openpose.read_openpose_video(str(tmp_path))


def test_hico_style_image_folder(tmp_path):
    from keras_attnpool.data.datasets.common import keypoints_path_for
    kp = tmp_path / "kp"
    folder = kp / "train2015" / "HICO_train2015_00000001"
    folder.mkdir(parents=True)
    (folder / "image_00001.json").write_text(authors_json(flat(18, 100, 200, (7,))))
    (kp / "train2015" / "HICO_train2015_00000002_keypoints.json").write_text(
        json.dumps({"people": [{"pose_keypoints_2d": flat(25, 300, 400)}]}))
    path = keypoints_path_for(str(kp), "train2015/HICO_train2015_00000001.jpg", video=False)
    assert path == str(folder)
    np.testing.assert_array_equal(openpose.read_openpose_json(path), [COCO_EXPECTED])
    # Today's per-image file is still found, and an image with neither has no keypoints.
    other = keypoints_path_for(str(kp), "train2015/HICO_train2015_00000002.jpg", video=False)
    assert other == str(kp / "train2015" / "HICO_train2015_00000002_keypoints.json")
    np.testing.assert_array_equal(openpose.read_openpose_json(other), [BODY25_EXPECTED])
    assert keypoints_path_for(str(kp), "train2015/HICO_train2015_00000003.jpg", False) is None
    # A folder with no frame file: no people; one with a second frame: an error naming it.
    empty = kp / "train2015" / "HICO_train2015_00000004"
    empty.mkdir()
    assert openpose.read_openpose_json(str(empty)).shape == (0, 16, 3)
    (folder / "image_00002.json").write_text(authors_json())
    with pytest.raises(DatasetError, match=re.escape(f"{folder / 'image_00002.json'}: ")
                       + "a second frame in an image's keypoints folder"):
        openpose.read_openpose_json(str(folder))


def test_prepare_reads_the_authors_hmdb51_keypoints(tmp_path):
    from conftest import encode_video, write_lines
    from test_prepare import read_records

    from keras_attnpool.data.prepare.run import prepare_dataset
    num_frames = 6
    root = tmp_path / "hmdb51"
    encode_video(root / "wave" / "wave_a.avi", num_frames=num_frames, width=32, height=24)
    encode_video(root / "wave" / "wave_b.avi", num_frames=4, width=32, height=24)
    write_lines(root / "testTrainMulti_7030_splits" / "wave_test_split1.txt",
                ["wave_a.avi 1 ", "wave_b.avi 2 "])
    folder = tmp_path / "pose" / "wave" / "wave_a"
    folder.mkdir(parents=True)
    written = (1, 3, 4, 9)  # image_00009 lies past the 6 decoded frames
    for number in written:
        (folder / f"image_{number:05d}.json").write_text(
            authors_json(r_ankle_person(2.0 * number, 12.0)))
    out = tmp_path / "out"
    prepare_dataset("hmdb51", str(root), str(out), workers=0, short_side=16,
                    keypoints_dir=str(tmp_path / "pose"))
    inside = [n - 1 for n in written if n - 1 < num_frames]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["keypoints"]["train"] == {"samples": 1, "frames": len(inside)}
    assert manifest["keypoints"]["test"]["samples"] == 0
    keypoints = read_records(out, "train")["wave/wave_a.avi"]["keypoints"]
    assert [len(k) for k in keypoints.to_list()] == [
        48 if i in inside else 0 for i in range(num_frames)]
    for i in inside:  # frame image_<i + 1> at index i, scaled 24x32 -> 16x21
        np.testing.assert_allclose(keypoints[i].numpy()[:3],
                                   [2.0 * (i + 1) * 21 / 32, 12.0 * 16 / 24, 1.0], rtol=1e-6)


def test_prepare_reads_the_authors_hico_keypoints(tmp_path):
    import scipy.io
    from PIL import Image
    from test_hico_reader import TEST, TRAIN, anno

    from keras_attnpool.data.prepare.run import prepare_dataset
    root = tmp_path / "hico"
    for folder, names in (("train2015", TRAIN), ("test2015", TEST)):
        (root / "images" / folder).mkdir(parents=True)
        for name in names:
            Image.new("RGB", (32, 24), (90, 120, 150)).save(root / "images" / folder / name)
    scipy.io.savemat(root / "anno.mat", anno())
    kp = tmp_path / "kp" / "train2015"
    (kp / "HICO_train2015_00000001").mkdir(parents=True)          # the authors' folder
    (kp / "HICO_train2015_00000001" / "image_00001.json").write_text(
        authors_json(r_ankle_person(8.0, 6.0), r_ankle_person(16.0, 12.0)))
    (kp / "HICO_train2015_00000002_keypoints.json").write_text(json.dumps(  # today's file
        {"people": [{"pose_keypoints_2d": r_ankle_person(4.0, 2.0)}]}))
    (kp / "HICO_train2015_00000003").mkdir()                       # a folder, no frame file
    out = tmp_path / "out"
    prepare_dataset("hico", str(root), str(out), workers=0, short_side=16,
                    keypoints_dir=str(tmp_path / "kp"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"] == {"train": len(TRAIN), "test": len(TEST)}
    assert manifest["keypoints"]["train"] == {"samples": 2, "frames": 2}
    assert manifest["keypoints"]["test"]["samples"] == 0
    from test_prepare import read_records
    records = read_records(out, "train")
    first = records["train2015/HICO_train2015_00000001.jpg"]["keypoints"][0].numpy()
    people = first.reshape(-1, 16, 3)[:, 0]  # each person's right ankle, 24x32 -> 16x21
    np.testing.assert_allclose(people, [[8.0 * 21 / 32, 6.0 * 16 / 24, 1.0],
                                        [16.0 * 21 / 32, 12.0 * 16 / 24, 1.0]], rtol=1e-6)
