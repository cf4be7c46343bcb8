"""MPII reader on a miniature `mpii_human_pose_v1_u12_1.mat` in the real nested-struct shape."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.io  # noqa: E402
from conftest import write_lines  # noqa: E402

from keras_attnpool.data.datasets import DatasetError, read_mpii  # noqa: E402

EMPTY = np.zeros((0, 0))  # what MATLAB stores for []


def struct_array(records, fields, shape=None):
    """A MATLAB struct array (1 x n unless `shape`): savemat writes it as such."""
    out = np.zeros(shape or (1, len(records)), dtype=[(f, object) for f in fields])
    for i, record in enumerate(records):
        for f in fields:
            out.flat[i][f] = record.get(f, EMPTY)
    return out


def people(*persons):
    """annorect: each person is a list of (id, x, y, is_visible) or None (no annopoints)."""
    records = []
    for points in persons:
        rect = {"scale": 1.0, "objpos": {"x": 1.0, "y": 2.0}}
        if points is not None:
            rect["annopoints"] = {"point": struct_array(
                [dict(id=j, x=x, y=y, is_visible=v) for j, x, y, v in points],
                ["id", "x", "y", "is_visible"])}
        records.append(rect)
    return struct_array(records, ["scale", "objpos", "annopoints"]) if records else EMPTY


# (name, img_train, act_name or None, act_id, vididx, annorect)
IMAGES = [
    ("000000001.jpg", 1, "bicycling, general", 1, 1,
     people([(0, 10.0, 20.0, 1), (9, 30.0, 40.0, EMPTY), (15, 50.0, 60.0, "1")])),
    ("000000002.jpg", 1, "bicycling, general", 1, 1,
     people([(6, 1.0, 2.0, 0), (7, 3.0, 4.0, 1)], None)),
    ("000000003.jpg", 1, "rock climbing", 2, 2, people([(8, 5.0, 6.0, 1)])),
    ("000000004.jpg", 1, "rock climbing", 3, 3, people([(0, 1.0, 1.0, 1)])),
    ("000000005.jpg", 1, None, -1, 4, people([(0, 1.0, 1.0, 1)])),
    ("000000006.jpg", 0, None, -1, 5,
     struct_array([{"scale": 1.0, "objpos": {"x": 1.0, "y": 2.0}}], ["scale", "objpos"])),
    ("000000007.jpg", 1, "skiing, downhill", 4, 6, EMPTY),
    ("000000008.jpg", 1, "skiing, downhill", 4, 7, people(None)),
    ("000000009.jpg", 1, "bicycling, general", 1, 8, people([(2, 7.0, 8.0, 1)])),
    ("000000010.jpg", 1, "rock climbing", 2, 9, people([(16, 7.0, 8.0, 1)])),
]
ON_DISK = [name for name, *_ in IMAGES if name != "000000008.jpg"]


def release(images=IMAGES, drop=()):
    annolist = struct_array(
        [{"image": {"name": name}, "annorect": rects, "vididx": vid, "frame_sec": 10}
         for name, _, _, _, vid, rects in images], ["image", "annorect", "frame_sec", "vididx"])
    act = struct_array(
        [{"act_name": act or EMPTY, "cat_name": (act or "").split(",")[0] or EMPTY,
          "act_id": act_id} for _, _, act, act_id, _, _ in images],
        ["act_name", "cat_name", "act_id"], shape=(len(images), 1))
    fields = {"annolist": annolist, "img_train": np.array([[t for _, t, *_ in images]]),
              "act": act, "single_person": np.zeros((len(images), 1), object),
              "version": "12"}
    return {"RELEASE": {k: v for k, v in fields.items() if k not in drop}}


@pytest.fixture
def mpii(tmp_path):
    """The official zip layout: the .mat under mpii_human_pose_v1_u12_2/, images/."""
    folder = tmp_path / "mpii_human_pose_v1_u12_2"
    folder.mkdir()
    scipy.io.savemat(folder / "mpii_human_pose_v1_u12_1.mat", release())
    (tmp_path / "images").mkdir()
    for name in ON_DISK:
        (tmp_path / "images" / name).write_bytes(b"\xff\xd8 not decoded by the reader")
    return tmp_path


def by_id(spec):
    return {s.video_id: s for items in spec.samples.values() for s in items}


def test_val_list_counts_labels_and_skipped(mpii):
    val_list = write_lines(mpii / "val.txt", [
        "000000003.jpg", "000000009.jpg", "000000006.jpg", "000000123.jpg",
        "000000003.jpg", "000000005.jpg"])
    spec = read_mpii(str(mpii), val_list=str(val_list))
    assert spec.classes == ["bicycling, general", "rock climbing", "skiing, downhill"]
    assert spec.counts() == {"train": 4, "val": 2}
    assert spec.class_counts("train") == {"bicycling, general": 2, "rock climbing": 1,
                                          "skiing, downhill": 1}
    assert spec.class_counts("val") == {"bicycling, general": 1, "rock climbing": 1,
                                        "skiing, downhill": 0}
    samples = by_id(spec)
    assert {k: (s.split, s.label) for k, s in samples.items()} == {
        "000000001.jpg": ("train", 0), "000000002.jpg": ("train", 0),
        "000000004.jpg": ("train", 1), "000000007.jpg": ("train", 2),
        "000000003.jpg": ("val", 1), "000000009.jpg": ("val", 0)}
    assert samples["000000001.jpg"].path == str(mpii / "images" / "000000001.jpg")
    mat = str(mpii / "mpii_human_pose_v1_u12_2" / "mpii_human_pose_v1_u12_1.mat")
    got = sorted((s.source, s.line, s.path, s.reason.split(":")[0].split(" (")[0])
                 for s in spec.skipped)
    assert got == sorted([
        (mat, 5, "000000005.jpg", "unlabelled train image"),
        (mat, 8, str(mpii / "images" / "000000008.jpg"), "file not found in "
         + str(mpii / "images")),
        (mat, 10, "annolist(10)", "malformed entry"),
        (str(val_list), 3, "000000006.jpg", "a test image"),
        (str(val_list), 4, "000000123.jpg", "not a labelled train image of the annotation file"),
        (str(val_list), 5, "000000003.jpg", "duplicate entry"),
        (str(val_list), 6, "000000005.jpg", "not a labelled train image of the annotation file"),
    ])
    assert "joint id 16" in next(s.reason for s in spec.skipped if s.line == 10)
    assert spec.info["test_images"] == 1


def test_val_list_in_the_authors_format_names_images_without_extension(mpii):
    """The R*CNN lists of the authors' repository (src/data/mpii/lists) hold bare names."""
    bare = write_lines(mpii / "images_mpii_val.txt", ["000000003", "000000009"])
    with_jpg = write_lines(mpii / "val.txt", ["000000003.jpg", "000000009.jpg"])

    def splits(val_list):
        return {k: (s.split, s.label)
                for k, s in by_id(read_mpii(str(mpii), val_list=str(val_list))).items()}
    got = splits(bare)
    assert got == splits(with_jpg)
    assert got["000000003.jpg"] == ("val", 1) and got["000000009.jpg"] == ("val", 0)
    bad = write_lines(mpii / "bad.txt", ["000000003", "00000000x"])
    [skipped] = [s for s in read_mpii(str(mpii), val_list=str(bad)).skipped if s.source == str(bad)]
    assert (skipped.line, skipped.path) == (2, "00000000x")


def test_keypoints_follow_the_squeeze_quirks(mpii):
    samples = by_id(read_mpii(str(mpii), val_list=None, val_fraction=0.5))
    one = samples["000000001.jpg"].keypoints            # one person: a bare struct
    expected = np.zeros((1, 16, 3), np.float32)
    expected[0, 0], expected[0, 9], expected[0, 15] = (10, 20, 1), (30, 40, 1), (50, 60, 1)
    np.testing.assert_array_equal(one, expected)
    two = samples["000000002.jpg"].keypoints            # two people, second unannotated
    expected = np.zeros((2, 16, 3), np.float32)
    expected[0, 6], expected[0, 7] = (1, 2, 1), (3, 4, 1)
    np.testing.assert_array_equal(two, expected)
    single_point = samples["000000003.jpg"].keypoints   # one point: a bare struct too
    assert single_point.shape == (1, 16, 3) and single_point[0, 8].tolist() == [5, 6, 1]
    assert single_point[0, :, 2].sum() == 1
    assert samples["000000007.jpg"].keypoints.shape == (0, 16, 3)  # annorect = []
    assert samples["000000001.jpg"].keypoints.dtype == np.float32


def test_seeded_split_keeps_videos_together(mpii):
    spec = read_mpii(str(mpii), val_fraction=0.5, seed=3)
    split = {k: s.split for k, s in by_id(spec).items()}
    # Images 1 and 2 come from video 1: always on the same side.
    assert split["000000001.jpg"] == split["000000002.jpg"]
    # Each class has two videos: exactly one goes to val (image 8 is missing on disk).
    assert [split["000000001.jpg"], split["000000009.jpg"]].count("val") == 1
    assert [split["000000003.jpg"], split["000000004.jpg"]].count("val") == 1
    assert spec.info["val_fraction"] == 0.5 and spec.info["seed"] == 3
    again = read_mpii(str(mpii), val_fraction=0.5, seed=3)
    assert again.samples == spec.samples
    vals = [read_mpii(str(mpii), val_fraction=0.5, seed=seed).samples["val"]
            for seed in range(8)]
    splits = {tuple(s.video_id for s in val) for val in vals}
    assert len(splits) > 1


def test_include_test_gives_unlabelled_test_split(mpii):
    spec = read_mpii(str(mpii), include_test=True)
    [test] = spec.samples["test"]
    assert (test.video_id, test.label) == ("000000006.jpg", -1)
    assert test.keypoints.shape == (1, 16, 3) and test.keypoints.sum() == 0


def test_fail_mode_names_the_entry(mpii):
    with pytest.raises(DatasetError, match=r"mpii_human_pose_v1_u12_1.mat, line 10: "
                                           r"malformed entry: joint id 16"):
        read_mpii(str(mpii), on_error="fail")


@pytest.mark.parametrize("contents,match", [
    ({"something_else": np.ones(3)}, r"missing variable\(s\) \['RELEASE'\]"),
    (release(drop=("act",)), "field 'act'"),
    (release(drop=("annolist",)), "field 'annolist'"),
    (release(drop=("img_train",)), "field 'img_train'"),
])
def test_wrong_mat_raises_naming_the_file(tmp_path, contents, match):
    scipy.io.savemat(tmp_path / "mpii_human_pose_v1_u12_1.mat", contents)
    with pytest.raises(DatasetError, match="mpii_human_pose_v1_u12_1.mat: .*" + match):
        read_mpii(str(tmp_path))


def test_unequal_lengths_and_garbage_raise(tmp_path):
    contents = release()
    contents["RELEASE"]["img_train"] = np.array([[1, 1, 0]])
    scipy.io.savemat(tmp_path / "mpii_human_pose_v1_u12_1.mat", contents)
    with pytest.raises(DatasetError, match="10, 10 and 3 entries"):
        read_mpii(str(tmp_path))
    (tmp_path / "mpii_human_pose_v1_u12_1.mat").write_bytes(b"<html>Not Found</html>" * 20)
    with pytest.raises(DatasetError, match="not a readable MATLAB file"):
        read_mpii(str(tmp_path))
    with pytest.raises(DatasetError, match="not found"):
        read_mpii(str(tmp_path / "elsewhere"))
