"""UCF101 reader on a miniature tree in the official format (CRLF lists, 1-based classInd)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
from conftest import write_lines  # noqa: E402

from keras_attnpool.data.datasets import DatasetError, read_ucf101  # noqa: E402

VIDEOS = {
    "ApplyEyeMakeup": ["v_ApplyEyeMakeup_g08_c01.avi", "v_ApplyEyeMakeup_g09_c02.avi",
                       "v_ApplyEyeMakeup_g01_c01.avi"],
    "Archery": ["v_Archery_g08_c01.avi", "v_Archery_g01_c03.avi"],
    # The official folder/file spelling mismatch: the file says "HandStand".
    "HandstandPushups": ["v_HandStandPushups_g08_c01.avi", "v_HandStandPushups_g01_c01.avi",
                         "v_HandStandPushups_g02_c01.avi"],
}
TRAIN1 = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1",
          "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c02.avi 1",
          "Archery/v_Archery_g08_c01.avi 2",
          "HandstandPushups/v_HandStandPushups_g08_c01.avi 3"]
TEST1 = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
         "Archery/v_Archery_g01_c03.avi",
         "HandstandPushups/v_HandStandPushups_g01_c01.avi",
         "HandstandPushups/v_HandStandPushups_g02_c01.avi"]
TRAIN2 = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1",
          "Archery/v_Archery_g01_c03.avi 2",
          "HandstandPushups/v_HandStandPushups_g01_c01.avi 3",
          "HandstandPushups/v_HandStandPushups_g02_c01.avi 3"]
TEST2 = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
         "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c02.avi",
         "Archery/v_Archery_g08_c01.avi",
         "HandstandPushups/v_HandStandPushups_g08_c01.avi"]


@pytest.fixture
def ucf(tmp_path, write_video):
    for cls, files in VIDEOS.items():
        for name in files:
            write_video(tmp_path / "UCF-101" / cls / name)
    lists = tmp_path / "ucfTrainTestlist"
    write_lines(lists / "classInd.txt",
                ["1 ApplyEyeMakeup", "2 Archery", "3 HandstandPushups"], "\r\n")
    for n, train, test in ((1, TRAIN1, TEST1), (2, TRAIN2, TEST2), (3, TRAIN1, TEST1)):
        write_lines(lists / f"trainlist0{n}.txt", train, "\r\n")
        write_lines(lists / f"testlist0{n}.txt", test, "\r\n")
    return tmp_path


def test_split1_counts_and_labels(ucf):
    spec = read_ucf101(str(ucf), split=1, on_error="fail")
    assert spec.classes == ["ApplyEyeMakeup", "Archery", "HandstandPushups"]
    assert spec.counts() == {"train": 4, "test": 4}
    assert spec.class_counts("train") == {"ApplyEyeMakeup": 2, "Archery": 1,
                                          "HandstandPushups": 1}
    assert spec.class_counts("test") == {"ApplyEyeMakeup": 1, "Archery": 1,
                                         "HandstandPushups": 2}
    labels = {s.video_id: s.label for s in spec.samples["test"]}
    assert labels == {"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi": 0,
                      "Archery/v_Archery_g01_c03.avi": 1,
                      "HandstandPushups/v_HandStandPushups_g01_c01.avi": 2,
                      "HandstandPushups/v_HandStandPushups_g02_c01.avi": 2}
    assert spec.samples["train"][2].path == str(
        ucf / "UCF-101" / "Archery" / "v_Archery_g08_c01.avi")
    assert spec.skipped == []


def test_split2(ucf):
    spec = read_ucf101(str(ucf), split=2, on_error="fail")
    assert spec.class_counts("train") == {"ApplyEyeMakeup": 1, "Archery": 1,
                                          "HandstandPushups": 2}
    assert spec.class_counts("test") == {"ApplyEyeMakeup": 2, "Archery": 1,
                                         "HandstandPushups": 1}


def test_data_dir_may_be_the_ucf101_folder(ucf, monkeypatch):
    monkeypatch.setenv("HOME", str(ucf.parent))
    inside = read_ucf101(f"~/{ucf.name}/UCF-101", split=1, on_error="fail")
    outside = read_ucf101(str(ucf), split=1, on_error="fail")
    assert inside.samples == outside.samples
    assert inside.info["splits_dir"] == str(ucf / "ucfTrainTestlist")


def test_bad_entries_are_skipped_with_reasons(ucf, write_video):
    write_video(ucf / "UCF-101" / "Archery" / "v_Archery_g09_c01.avi")
    lists = ucf / "ucfTrainTestlist"
    write_lines(lists / "trainlist01.txt", TRAIN1 + [
        "Archery/v_Archery_g09_c01.avi 1",                     # 5: label says ApplyEyeMakeup
        "Bowling/v_Bowling_g01_c01.avi 4",                     # 6: unknown class
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g10_c01.avi 1",       # 7: missing file
        "../../etc/passwd 1",                                  # 8: escapes
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",         # 9: no label
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1",       # 10: duplicate
    ], "\r\n")
    write_lines(lists / "testlist01.txt", TEST1 + [
        "Archery/v_Archery_g08_c01.avi",                       # 5: also in trainlist line 3
        "v_Archery_g01_c03.avi",                               # 6: no class folder
    ], "\r\n")
    spec = read_ucf101(str(ucf), split=1)
    assert spec.class_counts("train") == {"ApplyEyeMakeup": 2, "Archery": 0,
                                          "HandstandPushups": 1}
    assert spec.class_counts("test") == {"ApplyEyeMakeup": 1, "Archery": 1,
                                         "HandstandPushups": 2}
    got = sorted((os.path.basename(s.source), s.line, s.reason.split(",")[0].split(" (")[0])
                 for s in spec.skipped)
    assert got == [
        ("testlist01.txt", 5, "conflicting entries for one file"),
        ("testlist01.txt", 6, "malformed path"),
        ("trainlist01.txt", 3, "conflicting entries for one file"),
        ("trainlist01.txt", 5, "label 1"),
        ("trainlist01.txt", 6, "unknown class 'Bowling'"),
        ("trainlist01.txt", 7, "file not found in " + str(ucf / "UCF-101" / "ApplyEyeMakeup")),
        ("trainlist01.txt", 8, "path escapes the data directory"),
        ("trainlist01.txt", 9, "malformed line"),
        ("trainlist01.txt", 10, "duplicate entry"),
    ]
    mismatch = next(s for s in spec.skipped if s.line == 5 and "trainlist" in s.source)
    assert "'ApplyEyeMakeup'" in mismatch.reason and "'Archery'" in mismatch.reason
    with pytest.raises(DatasetError, match=r"trainlist01.txt, line 5: label 1"):
        read_ucf101(str(ucf), split=1, on_error="fail")


@pytest.mark.parametrize("lines,match", [
    (["1 ApplyEyeMakeup", "3 Archery"], "without gaps"),
    (["1 ApplyEyeMakeup", "2"], "line 2: malformed"),
    (["1 ApplyEyeMakeup", "2 ApplyEyeMakeup"], "line 2: duplicate class"),
])
def test_bad_class_index_always_raises(ucf, lines, match):
    write_lines(ucf / "ucfTrainTestlist" / "classInd.txt", lines)
    with pytest.raises(DatasetError, match=match):
        read_ucf101(str(ucf), split=1)


def test_missing_lists_raise(ucf):
    os.remove(ucf / "ucfTrainTestlist" / "testlist02.txt")
    with pytest.raises(DatasetError, match="testlist02.txt"):
        read_ucf101(str(ucf), split=2)
    os.remove(ucf / "ucfTrainTestlist" / "classInd.txt")
    with pytest.raises(DatasetError, match="classInd.txt"):
        read_ucf101(str(ucf), split=1)
