"""video_folder / image_folder readers: class folders, seeded split, optional split file."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
from conftest import write_lines  # noqa: E402

from keras_attnpool.data.datasets import (  # noqa: E402
    DatasetError, read_image_folder, read_video_folder)


@pytest.fixture
def videos(tmp_path, write_video):
    root = tmp_path / "clips"
    for i in range(10):
        write_video(root / "jump" / f"j{i}.avi")
    for i in range(3):
        write_video(root / "run" / f"r{i}.mp4")
    write_video(root / "run" / "sub" / "clip.MP4")      # nested, upper-case extension
    write_video(root / "wave" / "w0.avi")
    (root / "jump" / "notes.txt").write_text("not a video")
    (root / "jump" / ".DS_Store").write_bytes(b"\0")
    (root / "README.md").write_text("my clips")
    return root


def test_seeded_stratified_split(videos):
    spec = read_video_folder(str(videos), test_fraction=0.3, seed=0, on_error="fail")
    assert spec.classes == ["jump", "run", "wave"]
    # round(0.3 * 10) = 3, round(0.3 * 4) = 1, a class of one file stays in train.
    assert spec.class_counts("train") == {"jump": 7, "run": 3, "wave": 1}
    assert spec.class_counts("test") == {"jump": 3, "run": 1, "wave": 0}
    ids = {s.video_id for items in spec.samples.values() for s in items}
    assert "run/sub/clip.MP4" in ids and len(ids) == 15
    assert sorted((os.path.basename(s.path), s.reason.split(" (")[0])
                  for s in spec.skipped) == [("README.md", "not inside a class folder"),
                                             ("notes.txt", "extension not accepted")]
    assert read_video_folder(str(videos), seed=0).samples == spec.samples
    tests = {tuple(s.video_id for s in read_video_folder(str(videos), seed=seed)
                   .samples["test"]) for seed in range(5)}
    assert len(tests) > 1


def test_split_file(videos):
    split_file = write_lines(videos.parent / "split.txt", [
        "jump/j0.avi train",       # 1
        "jump/j1.avi test",        # 2
        "run/r0.mp4 val",          # 3
        "wave/w0.avi test",        # 4
        "swim/s0.avi train",       # 5 unknown class
        "jump/missing.avi train",  # 6 missing file
        "../x.avi train",          # 7 escapes
        "jump/j2.avi",             # 8 malformed
        "jump/j3.avi holdout",     # 9 malformed
        "jump/j0.avi train",       # 10 duplicate
        "jump/j4.avi train",       # 11 conflicting
        "jump/j4.avi test",        # 12 conflicting
    ])
    spec = read_video_folder(str(videos), split_file=str(split_file))
    assert {k: [s.video_id for s in v] for k, v in spec.samples.items()} == {
        "train": ["jump/j0.avi"], "val": ["run/r0.mp4"], "test": ["jump/j1.avi", "wave/w0.avi"]}
    assert [s.label for s in spec.samples["test"]] == [0, 2]
    errors = sorted((s.line, s.reason.split(",")[0].split(" (")[0])
                    for s in spec.skipped if s.line is not None)
    assert errors == [(5, "unknown class 'swim'"),
                      (6, "file not found in " + str(videos / "jump")),
                      (7, "path escapes the data directory"), (8, "malformed line"),
                      (9, "malformed line"), (10, "duplicate entry"),
                      (11, "conflicting entries for one file"),
                      (12, "conflicting entries for one file")]
    unlisted = sorted(os.path.relpath(s.path, videos) for s in spec.skipped
                      if s.reason == "not listed in the split file")
    assert unlisted == ["jump/j2.avi", "jump/j3.avi", "jump/j5.avi", "jump/j6.avi",
                        "jump/j7.avi", "jump/j8.avi", "jump/j9.avi", "run/r1.mp4",
                        "run/r2.mp4", "run/sub/clip.MP4"]
    with pytest.raises(DatasetError, match=r"split.txt, line 5: unknown class 'swim'"):
        read_video_folder(str(videos), split_file=str(split_file), on_error="fail")
    with pytest.raises(DatasetError, match="nope.txt: split file not found"):
        read_video_folder(str(videos), split_file=str(videos / "nope.txt"))


def test_image_folder_with_given_class_order_and_keypoints(tmp_path):
    root = tmp_path / "photos"
    for cls, names in {"cat": ["c0.jpg", "c1.JPG", "c2.png"], "dog": ["d0.jpeg", "d1.png"],
                       "bird": ["b0.jpg"]}.items():
        (root / cls).mkdir(parents=True)
        for name in names:
            (root / cls / name).write_bytes(b"image bytes")
    (tmp_path / "kp" / "cat").mkdir(parents=True)
    (tmp_path / "kp" / "cat" / "c1_keypoints.json").write_text('{"people": []}')
    spec = read_image_folder(str(root), classes=["dog", "cat"], test_fraction=0.5, seed=1,
                             keypoints_dir=str(tmp_path / "kp"))
    assert spec.classes == ["dog", "cat"]
    # round(0.5 * 3) = 2 and round(0.5 * 2) = 1 held out.
    assert spec.class_counts("train") == {"dog": 1, "cat": 1}
    assert spec.class_counts("test") == {"dog": 1, "cat": 2}
    labels = {s.video_id: s.label for items in spec.samples.values() for s in items}
    assert labels == {"cat/c0.jpg": 1, "cat/c1.JPG": 1, "cat/c2.png": 1, "dog/d0.jpeg": 0,
                      "dog/d1.png": 0}
    paths = {s.video_id: s.keypoints_path for items in spec.samples.values() for s in items
             if s.keypoints_path}
    assert paths == {"cat/c1.JPG": str(tmp_path / "kp" / "cat" / "c1_keypoints.json")}
    [bird] = spec.skipped
    assert bird.path == str(root / "bird") and bird.reason == "folder is not one of the classes"


def test_bad_arguments(tmp_path):
    with pytest.raises(DatasetError, match="nowhere: data directory not found"):
        read_video_folder(str(tmp_path / "nowhere"))
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="fraction"):
        read_video_folder(str(tmp_path), test_fraction=1.5)
    with pytest.raises(ValueError, match="classes must be distinct"):
        read_video_folder(str(tmp_path), classes=["a", "a"])
