"""HMDB51 reader on a miniature tree in the official format (names with # ( ) & !)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
from conftest import write_lines  # noqa: E402

from keras_attnpool.data.datasets import DatasetError, read_hmdb51  # noqa: E402

# class -> [(video, value in split 1, split 2, split 3)]; 1 train, 2 test, 0 unused.
TREE = {
    "brush_hair": [
        ("April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 1, 1, 2),
        ("#20_Rhythm_brush_hair_u_nm_np1_fr_goo_0.avi", 1, 2, 1),
        ("Blonde_(hair)_&_more!_brush_hair_f_cm_np1_ba_med_1.avi", 2, 1, 1),
        ("Ella_brush_hair_h_nm_np1_le_goo_2.avi", 0, 1, 0),
    ],
    "cartwheel": [
        ("(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0.avi", 1, 2, 1),
        ("Acrobacias_de_un_fenomeno_cartwheel_f_cm_np1_ba_bad_8.avi", 2, 1, 1),
        ("Bodenturnen_2004_cartwheel_f_cm_np1_le_med_0.avi", 1, 1, 2),
    ],
    "pour": [
        ("Bartender_School_Students_Practice_pour_u_cm_np1_fr_med_1.avi", 1, 1, 1),
        ("#122_Pouring_&_Mixing!_pour_h_nm_np1_fr_bad_1.avi", 2, 2, 2),
        ("Drinks_(Cocktail)_pour_u_cm_np1_fr_goo_0.avi", 0, 2, 1),
    ],
}


@pytest.fixture
def hmdb(tmp_path, write_video):
    """The official layout; pour's split files use CRLF, all lines end with a space."""
    splits = tmp_path / "testTrainMulti_7030_splits"
    for cls, videos in TREE.items():
        for name, *_ in videos:
            write_video(tmp_path / cls / name)
        for n in (1, 2, 3):
            lines = [f"{name} {values[n - 1]} " for name, *values in videos]
            write_lines(splits / f"{cls}_test_split{n}.txt", lines,
                        "\r\n" if cls == "pour" else "\n")
    return tmp_path


def names(spec, split, cls=None):
    return sorted(os.path.basename(s.path) for s in spec.samples[split]
                  if cls is None or spec.classes[s.label] == cls)


def test_split1_counts_labels_and_class_order(hmdb):
    spec = read_hmdb51(str(hmdb), split=1, on_error="fail")
    assert spec.classes == ["brush_hair", "cartwheel", "pour"]
    assert spec.counts() == {"train": 5, "test": 3}
    assert spec.class_counts("train") == {"brush_hair": 2, "cartwheel": 2, "pour": 1}
    assert spec.class_counts("test") == {"brush_hair": 1, "cartwheel": 1, "pour": 1}
    assert names(spec, "train", "brush_hair") == [
        "#20_Rhythm_brush_hair_u_nm_np1_fr_goo_0.avi",
        "April_09_brush_hair_u_nm_np1_ba_goo_0.avi"]
    assert names(spec, "test", "pour") == ["#122_Pouring_&_Mixing!_pour_h_nm_np1_fr_bad_1.avi"]
    assert spec.skipped == []
    assert spec.info["unused"] == 2
    sample = next(s for s in spec.samples["test"] if s.video_id.startswith("brush_hair/"))
    assert sample.video_id == "brush_hair/Blonde_(hair)_&_more!_brush_hair_f_cm_np1_ba_med_1.avi"
    assert sample.path == str(hmdb / "brush_hair" /
                              "Blonde_(hair)_&_more!_brush_hair_f_cm_np1_ba_med_1.avi")
    assert sample.label == 0 and sample.split == "test" and sample.keypoints_path is None
    assert {s.label for s in spec.samples["train"]
            if s.video_id.startswith("pour/")} == {2}


@pytest.mark.parametrize("split,train,test,unused", [
    (2, {"brush_hair": 3, "cartwheel": 2, "pour": 1},
     {"brush_hair": 1, "cartwheel": 1, "pour": 2}, 0),
    (3, {"brush_hair": 2, "cartwheel": 2, "pour": 2},
     {"brush_hair": 1, "cartwheel": 1, "pour": 1}, 1),
])
def test_splits_2_and_3(hmdb, split, train, test, unused):
    spec = read_hmdb51(str(hmdb), split=split, on_error="fail")
    assert spec.class_counts("train") == train
    assert spec.class_counts("test") == test
    assert spec.info["unused"] == unused


def test_split_argument_is_checked(hmdb):
    for bad in (0, 4, "1", None):
        with pytest.raises(ValueError, match="split"):
            read_hmdb51(str(hmdb), split=bad)
    with pytest.raises(ValueError, match="on_error"):
        read_hmdb51(str(hmdb), on_error="ignore")


def add_bad_entries(hmdb, write_video):
    """Appends the bad lines; returns nothing (expected results are in the tests)."""
    bh = hmdb / "testTrainMulti_7030_splits" / "brush_hair_test_split1.txt"
    with open(bh, "a", encoding="utf-8") as f:
        f.write("\n"                                                       # line 5
                "Missing_brush_hair_u_nm_np1_ba_goo_0.avi 1 \n"            # 6
                "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \n"           # 7 duplicate
                "../cartwheel/Bodenturnen_2004_cartwheel_f_cm_np1_le_med_0.avi 1\n"  # 8
                "Broken_line_without_value.avi\n"                          # 9
                "Some_brush_hair.avi 7\n")                                 # 10
    cw = hmdb / "testTrainMulti_7030_splits" / "cartwheel_test_split1.txt"
    with open(cw, "a", encoding="utf-8") as f:
        f.write("(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0.avi 2 \n")  # line 4
    (hmdb / "pour" / "Empty_pour_u_cm_np1_fr_goo_9.avi").write_bytes(b"")
    pour = hmdb / "testTrainMulti_7030_splits" / "pour_test_split1.txt"
    with open(pour, "a", encoding="utf-8", newline="") as f:
        f.write("Empty_pour_u_cm_np1_fr_goo_9.avi 1 \r\n")                 # line 4
    write_video(hmdb / "pour" / "Unlisted_pour_u_cm_np1_fr_goo_5.avi")


def test_bad_entries_are_skipped_with_reasons(hmdb, write_video):
    add_bad_entries(hmdb, write_video)
    spec = read_hmdb51(str(hmdb), split=1)
    assert spec.class_counts("train") == {"brush_hair": 2, "cartwheel": 1, "pour": 1}
    assert spec.class_counts("test") == {"brush_hair": 1, "cartwheel": 1, "pour": 1}
    got = sorted((os.path.basename(s.source or ""), s.line or 0, os.path.basename(s.path),
                  s.reason.split(" (")[0].split(",")[0]) for s in spec.skipped)
    bh, cw, pour = ("brush_hair_test_split1.txt", "cartwheel_test_split1.txt",
                    "pour_test_split1.txt")
    assert got == sorted([
        (bh, 6, "Missing_brush_hair_u_nm_np1_ba_goo_0.avi", "file not found in "
         + str(hmdb / "brush_hair")),
        (bh, 7, "April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "duplicate entry"),
        (bh, 8, "Bodenturnen_2004_cartwheel_f_cm_np1_le_med_0.avi",
         "path escapes the data directory"),
        (bh, 9, "Broken_line_without_value.avi", "malformed line"),
        (bh, 10, "Some_brush_hair.avi 7", "malformed line"),
        (cw, 1, "(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0.avi",
         "conflicting entries for one file"),
        (cw, 4, "(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0.avi",
         "conflicting entries for one file"),
        (pour, 4, "Empty_pour_u_cm_np1_fr_goo_9.avi", "empty file"),
        (pour, 0, "Unlisted_pour_u_cm_np1_fr_goo_5.avi", "not listed in the split file"),
    ])
    # The conflicting file is in no split at all, not in the one the first line gave.
    assert not any("(Rad)" in s.video_id for items in spec.samples.values() for s in items)


def test_bad_entry_fails_with_file_and_line(hmdb, write_video):
    add_bad_entries(hmdb, write_video)
    with pytest.raises(DatasetError) as info:
        read_hmdb51(str(hmdb), split=1, on_error="fail")
    message = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in message
    assert "brush_hair_test_split1.txt, line 8" in message
    assert "escapes the data directory" in message and "on_error='skip'" in message


def test_missing_split_file_is_reported_and_labels_do_not_shift(hmdb):
    os.remove(hmdb / "testTrainMulti_7030_splits" / "cartwheel_test_split3.txt")
    spec = read_hmdb51(str(hmdb), split=3)
    assert spec.classes == ["brush_hair", "cartwheel", "pour"]
    assert spec.class_counts("train") == {"brush_hair": 2, "cartwheel": 0, "pour": 2}
    assert {s.label for s in spec.samples["train"] if s.video_id.startswith("pour/")} == {2}
    [skipped] = spec.skipped
    assert skipped.path.endswith("cartwheel_test_split3.txt")
    assert "split file missing" in skipped.reason
    with pytest.raises(DatasetError, match="cartwheel_test_split3.txt"):
        read_hmdb51(str(hmdb), split=3, on_error="fail")


def test_missing_split_folder_raises(tmp_path, write_video):
    write_video(tmp_path / "brush_hair" / "a.avi")
    with pytest.raises(DatasetError, match="testTrainMulti_7030_splits.*test_train_splits.rar"):
        read_hmdb51(str(tmp_path))


def test_keypoints_folder_is_attached(hmdb, tmp_path):
    keypoints = tmp_path / "openpose"
    (keypoints / "brush_hair" / "April_09_brush_hair_u_nm_np1_ba_goo_0").mkdir(parents=True)
    spec = read_hmdb51(str(hmdb), split=1, keypoints_dir=str(keypoints))
    found = {s.video_id: s.keypoints_path for s in spec.samples["train"] if s.keypoints_path}
    assert found == {"brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi": str(
        keypoints / "brush_hair" / "April_09_brush_hair_u_nm_np1_ba_goo_0")}
    assert spec.info["with_keypoints"] == 1
