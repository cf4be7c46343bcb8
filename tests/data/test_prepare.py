"""prepare: records, manifest, bad files, idempotence, resume after SIGKILL, images, CLI.

Expected counts, labels and frame numbers below are written by hand from the miniature
trees, not computed by the code under test.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import io  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.io  # noqa: E402
import tensorflow as tf  # noqa: E402
from conftest import encode_video, write_lines  # noqa: E402
from PIL import Image  # noqa: E402

from keras_attnpool.data.datasets import DatasetError  # noqa: E402
from keras_attnpool.data.prepare.output import OutputDirError  # noqa: E402
from keras_attnpool.data.prepare.run import PrepareError, prepare_dataset  # noqa: E402
from keras_attnpool.data.prepare.pool import WorkerPool  # noqa: E402
from keras_attnpool.data.prepare.worker import (  # noqa: E402
    ConvertSettings, Job, Serialized, convert_sample, unspool)
from keras_attnpool.data.input import indexed  # noqa: E402
from keras_attnpool.data.records import frame_index, stored_frame  # noqa: E402
from keras_attnpool.data.records.schema import encode_example, parse_example  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
CLI = REPO / "training" / "prepare.py"
SPLITS = "testTrainMulti_7030_splits"

# HMDB51 miniature: (class, file, split value, frames); None frames = a bad file (see BAD).
CLIPS = [
    ("brush_hair", "April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 1, 6),
    ("brush_hair", "Aussie_Brush_Hair_#1_(2).avi", 1, 7),
    ("brush_hair", "brush_&_go!.avi", 2, 8),
    ("brush_hair", "unused_clip.avi", 0, 5),
    ("cartwheel", "cart_a.avi", 1, 9),
    ("cartwheel", "cart_b.avi", 2, 10),
    ("cartwheel", "cart_trunc.avi", 1, None),
    ("catch", "catch_a.avi", 1, 11),
    ("catch", "catch_c.avi", 2, 12),
    ("catch", "catch_empty.avi", 1, None),
    ("catch", "catch_text.avi", 2, None),
]
# video_id -> (label, frames) of every record prepare must write.
EXPECTED_TRAIN = {
    "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi": (0, 6),
    "brush_hair/Aussie_Brush_Hair_#1_(2).avi": (0, 7),
    "cartwheel/cart_a.avi": (1, 9),
    "catch/catch_a.avi": (2, 11),
}
EXPECTED_TEST = {
    "brush_hair/brush_&_go!.avi": (0, 8),
    "cartwheel/cart_b.avi": (1, 10),
    "catch/catch_c.avi": (2, 12),
}


def _write_bad(path: pathlib.Path, tmp_path: pathlib.Path) -> None:
    if path.name == "cart_trunc.avi":
        full = tmp_path / "full.avi"
        encode_video(full, num_frames=60, width=64, height=48)
        path.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.8)])
    elif path.name == "catch_empty.avi":
        path.write_bytes(b"")
    else:
        path.write_text("this is a text file named .avi\n")


@pytest.fixture
def hmdb51(tmp_path):
    """HMDB51 in the official layout: class folders and split files with trailing spaces."""
    root = tmp_path / "hmdb51"
    lines = {}
    for cls, name, value, frames in CLIPS:
        path = root / cls / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if frames is None:
            _write_bad(path, tmp_path)
        else:
            encode_video(path, num_frames=frames, width=32, height=24, fps=25)
        lines.setdefault(cls, []).append(f"{name} {value} ")
    for cls, cls_lines in lines.items():
        write_lines(root / SPLITS / f"{cls}_test_split1.txt", cls_lines)
    return root


def read_records(folder, split):
    """{video_id: parsed record} over the split's shards, in shard order."""
    out = {}
    for shard in sorted(pathlib.Path(folder).glob(f"{split}-*.tfrecord")):
        for serialized in tf.data.TFRecordDataset(str(shard)):
            record = parse_example(serialized)
            out[record["video_id"].numpy().decode()] = record
    return out


def frame_size(record, index=0):
    return Image.open(io.BytesIO(record["frames"][index].numpy())).size[::-1]


def test_hmdb51_records_and_manifest(hmdb51, tmp_path):
    out = tmp_path / "out"
    manifest = prepare_dataset("hmdb51", str(hmdb51), str(out), workers=2, shard_size=2,
                               short_side=16)
    for split, expected in [("train", EXPECTED_TRAIN), ("test", EXPECTED_TEST)]:
        records = read_records(out, split)
        assert sorted(records) == sorted(expected)
        for video_id, (label, frames) in expected.items():
            record = records[video_id]
            assert int(record["label"]) == label, video_id
            assert int(record["num_frames"]) == frames == len(record["frames"])
            assert (int(record["height"]), int(record["width"])) == (16, 21)  # 24x32 -> 16
            assert frame_size(record, frames - 1) == (16, 21)
            assert float(record["fps"]) == 25.0
            assert record["labels"].shape == (0,)
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == {k: v for k, v in manifest.items() if k != "this_run"}
    assert manifest["splits"] == {"train": 4, "test": 3}
    # Every line of the split files with value 1 or 2, also the empty file's (catch, line 3).
    assert manifest["listed"] == {"train": 6, "test": 4}
    assert manifest["classes"] == ["brush_hair", "cartwheel", "catch"]
    assert manifest["class_counts"] == {"train": {"brush_hair": 2, "cartwheel": 1, "catch": 1},
                                        "test": {"brush_hair": 1, "cartwheel": 1, "catch": 1}}
    assert manifest["num_frames"] == {"train": 6 + 7 + 9 + 11, "test": 8 + 10 + 12}
    assert manifest["shards"] == {
        "train": ["train-00000-of-00003.tfrecord", "train-00001-of-00003.tfrecord",
                  "train-00002-of-00003.tfrecord"],
        "test": ["test-00000-of-00002.tfrecord", "test-00001-of-00002.tfrecord"]}
    # sorted ids: [April, Aussie] [cart_a, cart_trunc (fails)] [catch_a]
    assert manifest["records_per_shard"] == {"train": [2, 1, 1], "test": [2, 1]}
    skipped = {pathlib.Path(s["path"]).name: s for s in manifest["skipped"]}
    assert sorted(skipped) == ["cart_trunc.avi", "catch_empty.avi", "catch_text.avi"]
    assert skipped["catch_empty.avi"]["stage"] == "read"
    assert "empty file" in skipped["catch_empty.avi"]["reason"]
    assert skipped["catch_empty.avi"]["line"] == 3  # third line of catch_test_split1.txt
    assert (skipped["catch_empty.avi"]["split"], skipped["catch_empty.avi"]["label"]) == (
        "train", 2)
    assert skipped["cart_trunc.avi"]["reason"].startswith("truncated: decoded 38 of the 60")
    assert skipped["cart_trunc.avi"]["split"] == "train"
    assert skipped["catch_text.avi"]["reason"].startswith("not a readable video")
    # Not prepared: train cart_trunc (decode) and catch_empty (read), test catch_text.
    assert manifest["failures"] == {"train": {"failed": 2, "listed": 6, "fraction": 2 / 6},
                                    "test": {"failed": 1, "listed": 4, "fraction": 0.25}}
    assert manifest["accounting"]["train"]["classes"]["catch"] == {
        "listed": 2, "records": 1, "skipped": 1, "failed": 0}
    assert manifest["accounting"]["train"]["classes"]["cartwheel"] == {
        "listed": 2, "records": 1, "skipped": 0, "failed": 1}
    assert manifest["lost_classes"] == [] and manifest["unassigned"] == 0
    assert manifest["ok"] is False  # 2 of 6 train files not prepared, above the default 5 %
    assert manifest["settings"]["short_side"] == 16 and manifest["settings"]["split"] == 1
    assert manifest["run"]["workers"] == 2 and manifest["this_run"]["shards_written"] == 5
    assert not list(out.glob(".*tmp*"))


def test_keypoints_are_scaled_to_the_stored_frames(hmdb51, tmp_path):
    folder = tmp_path / "pose" / "brush_hair" / "April_09_brush_hair_u_nm_np1_ba_goo_0"
    folder.mkdir(parents=True)
    person = np.zeros((18, 3))
    person[10] = (16.0, 12.0, 0.9)  # COCO-18 r_ankle -> MPII joint 0
    for frame in (0, 2):
        (folder / f"April_{frame:012d}_keypoints.json").write_text(json.dumps(
            {"people": [{"pose_keypoints_2d": person.ravel().tolist()}]}))
    out = tmp_path / "out"
    prepare_dataset("hmdb51", str(hmdb51), str(out), workers=0, short_side=16,
                    keypoints_dir=str(tmp_path / "pose"))
    record = read_records(out, "train")["brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi"]
    keypoints = record["keypoints"]
    assert [len(k) for k in keypoints.to_list()] == [48, 0, 48, 0, 0, 0]
    joints = keypoints[0].numpy().reshape(16, 3)
    np.testing.assert_allclose(joints[0], [16.0 * 21 / 32, 12.0 * 16 / 24, 1.0], rtol=1e-6)
    assert joints[1:].sum() == 0  # every other joint invalid and at 0, 0
    # The manifest counts what got keypoints: that one clip, on 2 of its stored frames.
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["keypoints"]["train"] == {"samples": 1, "frames": 2}
    assert manifest["keypoints"]["test"]["samples"] == 0


def _mtimes(folder):
    return {p: p.stat().st_mtime_ns for p in pathlib.Path(folder).rglob("*") if p.is_file()}


def test_rerun_does_nothing_and_other_settings_are_refused(hmdb51, tmp_path):
    out = tmp_path / "out"
    prepare_dataset("hmdb51", str(hmdb51), str(out), workers=0, shard_size=2)
    before = _mtimes(out)
    time.sleep(0.01)
    again = prepare_dataset("hmdb51", str(hmdb51), str(out), workers=0, shard_size=2)
    assert again["this_run"]["nothing_to_do"] and again["this_run"]["shards_written"] == 0
    assert _mtimes(out) == before
    with pytest.raises(OutputDirError, match=r"short_side: 256 -> 20.*overwrite"):
        prepare_dataset("hmdb51", str(hmdb51), str(out), workers=0, shard_size=2,
                        short_side=20)
    assert _mtimes(out) == before
    redone = prepare_dataset("hmdb51", str(hmdb51), str(out), workers=0, shard_size=2,
                             short_side=20, overwrite=True)
    assert redone["this_run"]["shards_written"] == 5
    record = read_records(out, "test")["cartwheel/cart_b.avi"]
    assert (int(record["height"]), int(record["width"])) == (20, 27)  # 32 * 20 / 24 = 26.7


def test_resume_writes_only_missing_shards(hmdb51, tmp_path):
    out = tmp_path / "out"
    prepare_dataset("hmdb51", str(hmdb51), str(out), workers=0, shard_size=2)
    shards = {p.name: p.read_bytes() for p in out.glob("*.tfrecord")}
    # What a crash leaves: a shard never renamed, its temp file, no manifest.
    (out / "train-00001-of-00003.tfrecord").unlink()
    (out / ".prepare" / "train-00001-of-00003.tfrecord.json").unlink()
    (out / "manifest.json").unlink()
    (out / ".train-00001-of-00003.tfrecord.tmp-999999").write_bytes(b"half a shard")
    untouched = (out / "test-00000-of-00002.tfrecord").stat().st_mtime_ns
    resumed = prepare_dataset("hmdb51", str(hmdb51), str(out), workers=0, shard_size=2)
    assert resumed["this_run"]["shards_written"] == 1
    assert resumed["this_run"]["shards_reused"] == 4
    assert {p.name: p.read_bytes() for p in out.glob("*.tfrecord")} == shards
    assert (out / "test-00000-of-00002.tfrecord").stat().st_mtime_ns == untouched
    assert not list(out.glob(".*tmp*"))
    assert resumed["splits"] == {"train": 4, "test": 3}


def test_every_shard_gets_a_frame_index_and_a_lost_one_is_rebuilt(hmdb51, tmp_path):
    out = tmp_path / "out"
    prepare_dataset("hmdb51", str(hmdb51), str(out), workers=0, shard_size=2)
    shards = sorted(out.glob("*.tfrecord"))
    assert len(shards) == 5
    for shard in shards:
        data = shard.read_bytes()
        entries = list(tf.data.TFRecordDataset(frame_index.index_path(str(shard))))
        records = list(tf.data.TFRecordDataset(str(shard)))
        assert len(entries) == len(records)
        for entry, serialized in zip(entries, records):
            entry = indexed.parse_index_entry(entry)
            frames = parse_example(serialized)["frames"].numpy().tolist()
            starts = entry["frame_records"].numpy() - stored_frame.RECORD_OFFSET
            assert [data[s:s + len(f)] for s, f in zip(starts, frames)] == frames
    # A folder whose shard lost its index (prepared before indexes, or copied without
    # them): a rerun writes the index and nothing else.
    lost = out / "train-00001-of-00003.tfrecord.index"
    expected = lost.read_bytes()
    lost.unlink()
    before = _mtimes(out)
    again = prepare_dataset("hmdb51", str(hmdb51), str(out), workers=0, shard_size=2)
    assert again["this_run"]["shards_written"] == 0
    assert lost.read_bytes() == expected
    after = _mtimes(out)
    assert {p: t for p, t in after.items() if p != lost} == before


def test_on_error_fail_names_the_first_bad_file(hmdb51, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=r"catch_test_split1.txt, line 3: empty file"):
        prepare_dataset("hmdb51", str(hmdb51), str(out), workers=0, on_error="fail")
    write_lines(hmdb51 / SPLITS / "catch_test_split1.txt",  # drop the empty file's line
                ["catch_a.avi 1 ", "catch_c.avi 2 ", "catch_text.avi 2 "])
    with pytest.raises(PrepareError) as info:
        prepare_dataset("hmdb51", str(hmdb51), str(out), workers=1, shard_size=2,
                        on_error="fail")
    message = str(info.value)
    assert message.startswith(str(hmdb51 / "cartwheel" / "cart_trunc.avi") + ": truncated")
    assert "\n" not in message
    assert (out / "train-00000-of-00003.tfrecord").exists()  # finished before the failure
    assert not (out / "manifest.json").exists()
    assert not list(out.glob(".*tmp*"))  # no spooled records of the stopped run are left


def test_max_failure_fraction_decides_ok(hmdb51, tmp_path):
    manifest = prepare_dataset("hmdb51", str(hmdb51), str(tmp_path / "out"), workers=0,
                               max_failure_fraction=0.34)
    assert manifest["ok"] is True  # train 2 / 6 = 0.33, test 1 / 4 = 0.25
    again = prepare_dataset("hmdb51", str(hmdb51), str(tmp_path / "out"), workers=0,
                            max_failure_fraction=0.3)
    assert again["this_run"]["nothing_to_do"] and again["ok"] is False  # 0.33 > 0.3


def _struct(records, fields, shape=None):
    out = np.zeros(shape or (1, len(records)), dtype=[(f, object) for f in fields])
    for i, record in enumerate(records):
        for f in fields:
            out.flat[i][f] = record.get(f, np.zeros((0, 0)))
    return out


def _mpii_release(images):
    """RELEASE with annolist / act / img_train as in mpii_human_pose_v1_u12_1.mat."""
    annolist = _struct([{"image": {"name": name}, "vididx": i + 1, "annorect": _struct(
        [{"annopoints": {"point": _struct([{"id": 0, "x": x, "y": y, "is_visible": 1}],
                                          ["id", "x", "y", "is_visible"])}}], ["annopoints"])}
        for i, (name, _, (x, y)) in enumerate(images)], ["image", "annorect", "vididx"])
    act = _struct([{"act_name": a, "cat_name": a, "act_id": 1} for _, a, _ in images],
                  ["act_name", "cat_name", "act_id"], shape=(len(images), 1))
    return {"RELEASE": {"annolist": annolist, "act": act,
                        "img_train": np.ones((1, len(images)))}}


def test_mpii_images_become_one_frame_records(tmp_path):
    # (name, act_name, joint 0 x, y); sizes (width, height)
    images = [("a.jpg", "rock climbing", (32.0, 24.0)), ("b.jpg", "bicycling", (6.0, 8.0)),
              ("c.jpg", "bicycling", (4.0, 3.0)), ("d.jpg", "rock climbing", (1.0, 1.0))]
    sizes = {"a.jpg": (64, 48), "b.jpg": (48, 64), "c.jpg": (40, 30)}
    (tmp_path / "images").mkdir()
    for name, size in sizes.items():
        Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(
            tmp_path / "images" / name, quality=95)
    (tmp_path / "images" / "d.jpg").write_text("not a jpeg")
    scipy.io.savemat(tmp_path / "mpii_human_pose_v1_u12_1.mat", _mpii_release(images))
    write_lines(tmp_path / "val.txt", ["b.jpg"])
    out = tmp_path / "out"
    manifest = prepare_dataset("mpii", str(tmp_path), str(out), workers=0, short_side=24,
                               val_list=str(tmp_path / "val.txt"))
    assert manifest["classes"] == ["bicycling", "rock climbing"]
    assert manifest["splits"] == {"train": 2, "val": 1} and manifest["listed"]["train"] == 3
    assert manifest["settings"]["shard_size"] == 1024
    records = {**read_records(out, "train"), **read_records(out, "val")}
    expected = {"a.jpg": (1, (24, 32), (16.0, 12.0)), "b.jpg": (0, (32, 24), (3.0, 4.0)),
                "c.jpg": (0, (24, 32), (3.2, 2.4))}
    assert sorted(records) == sorted(expected)
    for name, (label, size, joint) in expected.items():
        record = records[name]
        assert int(record["label"]) == label and int(record["num_frames"]) == 1
        assert (int(record["height"]), int(record["width"])) == size == frame_size(record)
        assert float(record["fps"]) == 0.0
        np.testing.assert_allclose(record["keypoints"][0].numpy()[:3], [*joint, 1.0],
                                   rtol=1e-6)
    (bad,) = [s for s in manifest["skipped"] if s["stage"] == "decode"]
    assert bad["path"].endswith("d.jpg") and bad["reason"].startswith("cannot read")


def shard_protos(folder):
    """{shard name: [SequenceExample, ...]}: record for record (protobuf does not promise
    the same bytes for the same record in two processes: map order may differ)."""
    return {p.name: [tf.train.SequenceExample.FromString(r.numpy())
                     for r in tf.data.TFRecordDataset(str(p))]
            for p in sorted(pathlib.Path(folder).glob("*.tfrecord"))}


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, str(CLI), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def _children(pid):
    """Child pids, or None where the kernel does not list them."""
    path = pathlib.Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else None


def _running(pid):
    """False for a process that has exited (zombies too: nobody may reap them here)."""
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and SIGKILL")
def test_cli_resumes_after_sigkill(tmp_path):
    root = tmp_path / "hmdb51"
    names = [f"clip_{i:02d}.avi" for i in range(40)]
    for name in names:
        encode_video(root / "wave" / name, num_frames=20, width=64, height=48)
    write_lines(root / SPLITS / "wave_test_split1.txt", [f"{n} {1 + i % 2} "
                                                         for i, n in enumerate(names)])
    out = tmp_path / "out"
    args = ["--dataset=hmdb51", f"--data_dir={root}", f"--output_dir={out}", "--workers=1",
            "--shard_size=1"]
    process = subprocess.Popen([sys.executable, str(CLI), *args], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(out.glob("*.tfrecord")) and time.monotonic() < deadline:
        time.sleep(0.01)
    workers = _children(process.pid)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "manifest.json").exists(), "finished before the kill"
    written = sorted(p.name for p in out.glob("*.tfrecord"))
    assert 1 <= len(written) < 40
    for shard in written:  # every visible shard is complete
        assert len(read_records(out, shard.split("-")[0])) >= 1
    if workers is not None:  # orphaned workers notice their parent is gone and exit
        deadline = time.monotonic() + 5
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert workers and not [pid for pid in workers if _running(pid)]

    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert "Prepared hmdb51" in resumed.stdout and "train: 20 records of 20 listed" in \
        resumed.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["shards_reused"] >= len(written) - 1  # the last may be redone
    again = run_cli(*args)
    assert again.returncode == 0 and "Nothing to do" in again.stdout

    reference = tmp_path / "reference"
    prepare_dataset("hmdb51", str(root), str(reference), workers=0, shard_size=1)
    resumed_shards = shard_protos(out)
    assert resumed_shards == shard_protos(reference)
    assert len(resumed_shards) == 40


@pytest.mark.parametrize("args, flag", [
    (["--dataset=hmdb5", "--data_dir=.", "--output_dir=o"], "--dataset"),
    (["--data_dir=.", "--output_dir=o"], "--dataset"),
    (["--dataset=hmdb51", "--data_dir=/no/such/dir", "--output_dir=o"], "--data_dir"),
    (["--dataset=hmdb51", "--data_dir=.", "--output_dir=o", "--workers=-2"], "--workers"),
    (["--dataset=mpii", "--data_dir=.", "--output_dir=o", "--val_list=/no/file"],
     "--val_list"),
    (["--dataset=hmdb51", "--data_dir=.", "--output_dir=o", "--on_error=ignore"],
     "--on_error"),
    (["--dataset=hmdb51", "--data_dir=.", "--output_dir=o", "--nonsense=1"], "nonsense"),
])
def test_cli_bad_flags_exit_2_with_one_line(args, flag):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("prepare.py: error:")]
    assert flag in line


def test_cli_refuses_inapplicable_options_and_other_settings(hmdb51, tmp_path):
    out = tmp_path / "out"
    prepare_dataset("hmdb51", str(hmdb51), str(out), workers=0)
    base = ["--dataset=hmdb51", f"--data_dir={hmdb51}", f"--output_dir={out}"]
    for extra, words in [(["--val_fraction=0.3"], "--val_fraction does not apply"),
                         (["--short_side=64"], "short_side: 256 -> 64")]:
        result = run_cli(*base, *extra)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert words in result.stderr.splitlines()[-1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="flock")
def test_a_second_prepare_into_the_same_folder_is_refused(hmdb51, tmp_path):
    import fcntl

    out = tmp_path / "out"
    (out / ".prepare").mkdir(parents=True)
    with open(out / ".prepare" / "lock", "a") as handle:  # what a running prepare holds
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(OutputDirError, match="another prepare is writing"):
            prepare_dataset("hmdb51", str(hmdb51), str(out), workers=0)
    assert not list(out.glob("*.tfrecord"))


def test_workers_convert_without_importing_tensorflow(tmp_path):
    path = tmp_path / "clip.avi"
    encode_video(path, num_frames=4, width=32, height=24)
    pool = WorkerPool(1)
    try:
        result = pool.submit(convert_sample, Job(str(path), "clip.avi", label=3),
                             ConvertSettings(short_side=12, jpeg_quality=90)).result()
        # The same (only) worker, after its conversion: what it has imported.
        loaded = pool.submit(eval, "sorted(__import__('sys').modules)").result()
    finally:
        pool.shutdown()
    assert isinstance(result, Serialized) and result.num_frames == 4
    record = parse_example(result.record)  # serialised in the worker, read by TensorFlow
    assert int(record["label"]) == 3 and len(record["frames"]) == 4
    assert (int(record["height"]), int(record["width"])) == (12, 16)
    assert "keras_attnpool.data.prepare.worker" in loaded and "av" in loaded
    assert not [m for m in loaded if m.split(".")[0] in ("tensorflow", "keras")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_stop_ends_a_busy_pool_at_once():
    pool = WorkerPool(2)
    # Two calls that overlap in time run in two workers: their pids are the pool's.
    pid_after_a_second = "__import__('time').sleep(1) or __import__('os').getpid()"
    pids = {f.result() for f in [pool.submit(eval, pid_after_a_second) for _ in range(2)]}
    assert len(pids) == 2 and all(_running(pid) for pid in pids)
    busy = [pool.submit(time.sleep, 120) for _ in range(3)]  # two run, one waits
    time.sleep(1)
    start = time.monotonic()
    pool.stop()
    assert time.monotonic() - start < 30
    assert not [pid for pid in pids if _running(pid)]
    for future in busy:  # abandoned or cancelled, never finished
        assert future.cancelled() or future.exception() is not None


def test_a_worker_record_equals_the_one_encode_example_writes(tmp_path):
    path = tmp_path / "clip.avi"
    encode_video(path, num_frames=5, width=32, height=24)
    labels = np.array([1, -1, 0, np.nan], np.float32)
    job = Job(str(path), "a/clip.avi", labels=labels)
    direct = convert_sample(job, ConvertSettings(16, 90))
    frames = parse_example(direct.record)["frames"].numpy().tolist()
    assert direct.record == encode_example("a/clip.avi", frames, label=-1, labels=labels,
                                           fps=25.0, height=16, width=21)
    starts = direct.parts.frame_positions
    assert [direct.record[s:s + len(f)] for s, f in zip(starts, frames)] == frames


def test_spooled_records_come_back_whole_and_the_file_goes(tmp_path):
    path = tmp_path / "clip.avi"
    encode_video(path, num_frames=5, width=32, height=24)
    direct = convert_sample(Job(str(path), "a/clip.avi"), ConvertSettings(16, 90))
    spooled = convert_sample(Job(str(path), "a/clip.avi"),
                             ConvertSettings(16, 90, spool_dir=str(tmp_path)))
    assert spooled.record == b"" and os.path.isfile(spooled.spooled)
    assert os.path.basename(spooled.spooled).startswith(".")  # a temp name
    assert ".tmp-" in spooled.spooled
    back = unspool(spooled)
    assert back.record == direct.record and back.num_frames == 5
    assert back.spooled is None and not os.path.exists(spooled.spooled)
