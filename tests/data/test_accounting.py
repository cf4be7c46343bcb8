"""Every listed sample accounted for, on generated trees in the official layouts.

A symbolic link loop skips one entry, not its folder; missing, empty and unreadable files
count toward --max_failure_fraction; a class left without records is named and fails the
run; a folder of prepared records among the class folders is never a class. Expected
counts are written by hand from the trees below, not computed by the code under test.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import errno  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402
from conftest import HMDB51_SPLITS, write_lines  # noqa: E402

from keras_attnpool.data.datasets import (  # noqa: E402
    DatasetError, read_hmdb51, read_image_folder, read_video_folder)
from keras_attnpool.data.prepare.plan import default_records_dir  # noqa: E402
from keras_attnpool.data.prepare.run import prepare_dataset  # noqa: E402
from keras_attnpool.data.records import tfrecord  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
CLI = REPO / "training" / "prepare.py"
LOOP = os.strerror(errno.ELOOP)  # "Too many levels of symbolic links"

# Every kind of bad entry. brush_hair_test_split1.txt, line by line:
EVERY_KIND = {
    "brush_hair": [
        ("a.avi", 1, "video"),            # 1
        ("b.avi", 1, "video"),            # 2
        ("c.avi", 2, "video"),            # 3
        ("loop.avi", 1, "loop"),          # 4 a symbolic link to itself
        ("empty.avi", 2, "empty"),        # 5 0 bytes
        ("gone.avi", 1, "missing"),       # 6 not on disk
        ("a.avi", 1, "video"),            # 7 duplicate of line 1
        ("text.avi", 1, "text"),          # 8 fails to decode
        ("no_value.avi", None, "video"),  # 9 malformed: no split value
        ("../x.avi", 2, "missing"),       # 10 escapes the data directory
        ("u.avi", 0, "video"),            # 11 unused (value 0)
        ("stray.avi", "unlisted", "loop"),  # no line: an unlisted link loop
    ],
    "cartwheel": [("d.avi", 1, "video"), ("e.avi", 2, "video")],
    "catch": [("f.avi", 1, "missing"), ("g.avi", 2, "missing")],  # no catch/ folder
}
# {split: {class: (listed, records, skipped, failed)}}
EVERY_KIND_ACCOUNTING = {
    "train": {"brush_hair": (6, 2, 3, 1), "cartwheel": (1, 1, 0, 0), "catch": (1, 0, 1, 0)},
    "test": {"brush_hair": (3, 1, 2, 0), "cartwheel": (1, 1, 0, 0), "catch": (1, 0, 1, 0)},
}
EVERY_KIND_LINES = 11 + 2 + 2


def run_cli(*args, timeout=180, preexec_fn=None):
    return subprocess.run([sys.executable, str(CLI), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, preexec_fn=preexec_fn)


def error_line(result):
    """The one `prepare.py: error:` line on stderr (and no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("prepare.py: error:")]
    return line


def manifest_of(folder):
    return json.loads((pathlib.Path(folder) / "manifest.json").read_text())


def test_reader_skips_a_link_loop_alone_and_keeps_its_folder(tmp_path, hmdb51_tree):
    root = hmdb51_tree(tmp_path / "hmdb51", {
        "brush_hair": [("a.avi", 1, "video"), ("b.avi", 1, "video"), ("c.avi", 2, "video"),
                       ("x.avi", 1, "loop"), ("y.avi", "unlisted", "loop"),
                       ("u.avi", 0, "video"), ("u.avi", 0, "video")],  # lines 5, 6: unused
        "cartwheel": [("d.avi", 1, "video"), ("e.avi", 2, "video")]})
    spec = read_hmdb51(str(root))
    assert spec.class_counts("train") == {"brush_hair": 2, "cartwheel": 1}
    assert spec.class_counts("test") == {"brush_hair": 1, "cartwheel": 1}
    reasons = {(os.path.basename(s.path), s.reason.split(" (")[0], s.line, s.split, s.label,
                s.listed) for s in spec.skipped}
    assert reasons == {("x.avi", "cannot read", 4, "train", 0, True),
                       ("y.avi", "not listed in the split file; cannot read", None, None,
                        None, False),
                       ("u.avi", "duplicate entry", 6, None, 0, False)}  # in no split
    assert f"cannot read ({LOOP})" in {s.reason for s in spec.skipped}
    assert spec.listed() == {"train": 4, "test": 2}
    with pytest.raises(DatasetError, match=r"brush_hair_test_split1.txt, line 6: duplicate"):
        read_hmdb51(str(root), on_error="fail")  # lines are checked before files
    write_lines(root / HMDB51_SPLITS / "brush_hair_test_split1.txt",
                ["a.avi 1 ", "b.avi 1 ", "c.avi 2 ", "x.avi 1 ", "u.avi 0 "])
    with pytest.raises(DatasetError, match=r"brush_hair_test_split1.txt, line 4: cannot read"):
        read_hmdb51(str(root), on_error="fail")


def test_video_folder_link_loops_skip_one_entry(tmp_path, write_video):
    root = tmp_path / "clips"
    for i in range(4):
        write_video(root / "jump" / f"j{i}.avi")
    write_video(root / "run" / "r0.avi")
    write_video(root / "run" / "r1.avi")
    os.symlink("j9.avi", root / "jump" / "j9.avi")   # a file linked to itself
    os.symlink(".", root / "run" / "again")           # a folder linked to itself
    spec = read_video_folder(str(root), test_fraction=0.5, seed=0)
    ids = sorted(s.video_id for items in spec.samples.values() for s in items)
    assert ids == ["jump/j0.avi", "jump/j1.avi", "jump/j2.avi", "jump/j3.avi",
                   "run/r0.avi", "run/r1.avi"]
    [loop] = [s for s in spec.skipped if s.listed]
    assert (loop.path, loop.reason) == (str(root / "jump" / "j9.avi"), f"cannot read ({LOOP})")
    assert loop.split in ("train", "test") and loop.label == 0
    [again] = [s for s in spec.skipped if not s.listed]
    assert again.path == str(root / "run" / "again") and "second time" in again.reason
    assert sum(spec.listed().values()) == 7  # four + the loop in jump, two in run
    with pytest.raises(DatasetError, match=r"cannot read \(.*\): '.*j9.avi'"):
        read_video_folder(str(root), on_error="fail")


def _records_folder(folder: pathlib.Path) -> None:
    """What a prepare leaves: .prepare/, shards, manifest.json."""
    (folder / ".prepare").mkdir(parents=True)
    (folder / "train-00000-of-00001.tfrecord").write_bytes(b"")
    (folder / "manifest.json").write_text(json.dumps({"format": "keras_attnpool.prepared/1"}))


def test_folders_of_prepared_records_are_never_classes(tmp_path, write_video):
    root = tmp_path / "clips"
    write_video(root / "jump" / "j0.avi")
    write_video(root / "run" / "r0.avi")
    _records_folder(root / "prepared" / "split1")      # fit.py's old default place
    _records_folder(root / "jump" / "old_records")      # records inside a class folder
    (root / "notes").mkdir()
    (root / "notes" / "manifest.json").write_text('{"format": "something else"}')
    write_video(root / "notes" / "n0.avi")               # another tool's manifest: a class
    spec = read_video_folder(str(root), test_fraction=0.0)
    assert spec.classes == ["jump", "notes", "run"]
    assert sorted(s.video_id for s in spec.samples["train"]) == [
        "jump/j0.avi", "notes/n0.avi", "run/r0.avi"]
    left_out = sorted(os.path.relpath(s.path, root) for s in spec.skipped
                      if s.reason.startswith("holds prepared records"))
    assert left_out == ["jump/old_records", "prepared/split1"]
    with pytest.raises(DatasetError, match=r"class 'prepared' given in classes holds "
                                           "prepared records"):
        read_video_folder(str(root), classes=["jump", "prepared"])
    with pytest.raises(DatasetError, match=r"no folder for class 'swim'"):
        read_image_folder(str(root), classes=["jump", "swim"])


def test_default_records_dir_is_outside_the_class_folders(tmp_path):
    data = tmp_path / "clips"
    assert default_records_dir("video_folder", str(data), 1) == str(tmp_path / "clips.prepared"
                                                                    / "split1")
    assert default_records_dir("image_folder", str(data) + "/", 1) == str(
        tmp_path / "clips.prepared" / "split1")
    assert default_records_dir("hmdb51", str(data), 2) == str(data / "prepared" / "split2")


def test_output_dir_in_a_class_folder_is_refused(tmp_path, write_video):
    root = tmp_path / "clips"
    write_video(root / "jump" / "j0.avi")
    write_video(root / "run" / "r0.avi")
    for out in (root / "jump" / "records", root):
        with pytest.raises(ValueError, match=r"output_dir=.*choose a folder outside the "
                                             "class folders"):
            prepare_dataset("video_folder", str(root), str(out), workers=0)
    assert not (root / "jump" / "records").exists()


def test_every_listed_entry_is_accounted_for_per_split_and_class(tmp_path, hmdb51_tree):
    root = hmdb51_tree(tmp_path / "hmdb51", EVERY_KIND)
    out = tmp_path / "out"
    result = run_cli("--dataset=hmdb51", f"--data_dir={root}", f"--output_dir={out}",
                     "--workers=0", "--short_side=16")
    assert result.returncode == 1, result.stderr
    assert error_line(result) == (
        "prepare.py: error: too many listed samples not prepared ({'train': '5 of 8', "
        "'test': '3 of 5'}; limit --max_failure_fraction=0.05); classes without records: "
        "'catch' (train: 0 of 1, test: 0 of 1); everything else was written, see skipped "
        "in manifest.json; fix those files and rerun with --overwrite")
    assert "  train: 3 records of 8 listed (4 skipped when read, 1 failed to decode)" \
        in result.stdout
    assert "  test: 2 records of 5 listed (3 skipped when read, 0 failed to decode)" \
        in result.stdout
    assert "  train: no records for 1 classes: catch" in result.stdout
    assert "  1 lines of the dataset's files name no split" in result.stdout
    manifest = manifest_of(out)
    table = manifest["accounting"]
    for split, classes in EVERY_KIND_ACCOUNTING.items():
        got = {c: tuple(row[k] for k in ("listed", "records", "skipped", "failed"))
               for c, row in table[split]["classes"].items()}
        assert got == classes, split
        assert table[split]["listed"] == sum(c[0] for c in classes.values())
        assert manifest["listed"][split] == table[split]["listed"]
        assert manifest["splits"][split] == sum(c[1] for c in classes.values())
    assert manifest["unassigned"] == 1 and manifest["reader_info"]["unused"] == 1
    assert sum(manifest["listed"].values()) + 1 + 1 == EVERY_KIND_LINES
    assert manifest["failures"]["train"] == {"failed": 5, "listed": 8, "fraction": 5 / 8}
    assert manifest["lost_classes"] == [{"class": "catch", "split": "train", "listed": 1},
                                        {"class": "catch", "split": "test", "listed": 1}]
    assert manifest["ok"] is False
    reasons = {(os.path.basename(s["path"]), s.get("line")): s["reason"]
               for s in manifest["skipped"]}
    assert reasons[("loop.avi", 4)] == f"cannot read ({LOOP})"
    assert reasons[("empty.avi", 5)] == "empty file (0 bytes)"
    assert reasons[("gone.avi", 6)] == f"file not found in {root / 'brush_hair'}"
    assert reasons[("f.avi", 1)] == f"folder {root / 'catch'} not found"
    assert reasons[("text.avi", None)].startswith("not a readable video")

    again = run_cli("--dataset=hmdb51", f"--data_dir={root}", f"--output_dir={out}",
                    "--workers=0", "--short_side=16", "--on_error=fail")
    assert again.returncode == 2, again.stderr
    line = error_line(again)
    assert line.startswith(f"prepare.py: error: {root / HMDB51_SPLITS}/brush_hair_test_split1"
                           ".txt, line 9: malformed line")


def test_empty_files_count_toward_the_failure_limit(tmp_path, hmdb51_tree):
    root = hmdb51_tree(tmp_path / "hmdb51", {
        "wave": [(f"w{i:02d}.avi", 1, "empty" if i < 3 else "video") for i in range(12)]})
    out = tmp_path / "out"
    args = ["--dataset=hmdb51", f"--data_dir={root}", f"--output_dir={out}", "--workers=0",
            "--short_side=16"]
    result = run_cli(*args)
    assert result.returncode == 1, result.stderr
    assert error_line(result).startswith(
        "prepare.py: error: too many listed samples not prepared ({'train': '3 of 12'}; "
        "limit --max_failure_fraction=0.05); everything else was written")
    assert "  train: 9 records of 12 listed (3 skipped when read" in result.stdout
    accepted = run_cli(*args, "--max_failure_fraction=0.25")  # 3 / 12 = 0.25: within
    assert accepted.returncode == 0, accepted.stderr
    assert "Nothing to do" in accepted.stdout


def test_link_loop_cli_prepares_the_rest_of_its_folder(tmp_path, hmdb51_tree):
    root = hmdb51_tree(tmp_path / "hmdb51", {
        "brush_hair": [(f"b{i}.avi", 1 + i % 2, "video") for i in range(8)]
        + [("x.avi", "unlisted", "loop")],
        "cartwheel": [(f"c{i}.avi", 1 + i % 2, "video") for i in range(4)]})
    out = tmp_path / "out"
    result = run_cli("--dataset=hmdb51", f"--data_dir={root}", f"--output_dir={out}",
                     "--workers=0", "--short_side=16")
    assert result.returncode == 0, result.stderr
    assert "  train: 6 records of 6 listed (0 skipped when read" in result.stdout
    assert "  test: 6 records of 6 listed (0 skipped when read" in result.stdout
    assert f"x.avi: not listed in the split file; cannot read ({LOOP})" in result.stdout
    manifest = manifest_of(out)
    assert manifest["class_counts"] == {"train": {"brush_hair": 4, "cartwheel": 2},
                                        "test": {"brush_hair": 4, "cartwheel": 2}}


def test_video_folder_second_run_keeps_its_classes(tmp_path, write_video):
    root = tmp_path / "clips"
    for i in range(4):
        write_video(root / "jump" / f"j{i}.avi")
        write_video(root / "run" / f"r{i}.avi")
    write_video(root / "wave" / "w0.avi")  # one clip: train only, no test clip
    out = root / "prepared" / "split1"     # where fit.py used to put them
    args = ["--dataset=video_folder", f"--data_dir={root}", f"--output_dir={out}",
            "--workers=0", "--short_side=16"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "  test: no records for 1 classes: wave" in first.stdout
    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    # Nothing converted; the manifest is rewritten, as it now names the records folder.
    assert "Nothing to convert" in second.stdout
    assert f"{out}: holds prepared records" in second.stdout
    assert manifest_of(out)["classes"] == ["jump", "run", "wave"]
    inside = run_cli("--dataset=video_folder", f"--data_dir={root}",
                     f"--output_dir={root / 'run' / 'records'}", "--workers=0")
    assert inside.returncode == 2, inside.stderr
    assert error_line(inside) == (
        f"prepare.py: error: output_dir={root / 'run' / 'records'}: lies in the class folder "
        f"{root / 'run'}, whose files are read as class 'run'; choose a folder outside the "
        f"class folders, such as {tmp_path / 'clips.prepared' / 'split1'}")


def test_split_file_for_a_class_without_folder_names_it(tmp_path, write_video):
    root = tmp_path / "clips"
    write_video(root / "jump" / "j0.avi")
    write_video(root / "jump" / "j1.avi")
    split_file = write_lines(tmp_path / "split.txt", [
        "jump/j0.avi train", "jump/j1.avi test", "swim/s0.avi train"])
    spec = read_video_folder(str(root), split_file=str(split_file))
    assert spec.classes == ["jump"]
    [swim] = spec.skipped
    assert (swim.line, swim.split, swim.label, swim.listed) == (3, "train", None, True)
    assert swim.reason == "unknown class 'swim' (no such class folder)"
    assert spec.listed() == {"train": 2, "test": 1}


def test_fit_resolves_the_records_dir_next_to_the_class_folders(tmp_path):
    from keras_attnpool.trainer.config import ExperimentConfig, resolve

    (tmp_path / "clips" / "jump").mkdir(parents=True)
    (tmp_path / "hmdb51").mkdir()
    folders = resolve(ExperimentConfig(dataset="video_folder", data_dir=str(tmp_path / "clips"),
                                       augment_on="cpu"))
    assert folders.records_dir == str(tmp_path / "clips.prepared" / "split1")
    released = resolve(ExperimentConfig(dataset="hmdb51", data_dir=str(tmp_path / "hmdb51"),
                                        split=2, augment_on="cpu"))
    assert released.records_dir == str(tmp_path / "hmdb51" / "prepared" / "split2")


@pytest.mark.parametrize("workers", [0, 2])
def test_a_full_disk_names_the_file_keeps_nothing_half_written_and_resumes(
        tmp_path, hmdb51_tree, workers):
    from tools import file_size_limit  # tests/tools.py

    root = hmdb51_tree(tmp_path / "hmdb51", {
        "wave": [(f"w{i:02d}.avi", 1 + i % 2, "video") for i in range(8)]})
    out = tmp_path / "out"
    args = ["--dataset=hmdb51", f"--data_dir={root}", f"--output_dir={out}",
            f"--workers={workers}", "--short_side=16", "--shard_size=2"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    sizes = sorted(p.stat().st_size for p in out.glob("*.tfrecord"))
    shutil.rmtree(out)
    # Room for the smaller shards, not for the largest.
    full = run_cli(*args, preexec_fn=file_size_limit(sizes[-1] - 1))
    assert full.returncode == 2, full.stderr
    line = error_line(full)
    assert line.startswith(f"prepare.py: error: {out}/") and line.endswith(
        ".tfrecord: could not be written (File too large); nothing of it was kept. Free "
        "space on that disk and rerun the same command: it goes on from what was finished")
    named = pathlib.Path(line.split("error: ")[1].split(":")[0])
    assert not named.exists()
    # Every file left is whole: finished shards with their indexes, nothing temporary.
    left = sorted(p.name for p in out.iterdir() if p.is_file())
    assert not [n for n in left if n.startswith(".") or ".tmp-" in n], left
    assert not (out / "manifest.json").exists()
    for shard in out.glob("*.tfrecord"):
        assert (out / f"{shard.name}.index").is_file()
        assert len(list(tfrecord.read_tfrecord(str(shard)))) == 2
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert manifest_of(out)["splits"] == {"train": 4, "test": 4}


def test_fit_refuses_records_that_are_not_ok(tmp_path, hmdb51_tree):
    from keras_attnpool.trainer.experiment import run_experiment
    from keras_attnpool.trainer.presets import make_config

    tree = {"wave": [(f"w{i:02d}.avi", 1 + i % 2, "empty" if i < 2 else "video")
                     for i in range(8)],
            "catch": [("f.avi", 1, "missing"), ("g.avi", 2, "missing")]}
    root = hmdb51_tree(tmp_path / "hmdb51", tree)
    out = tmp_path / "records"
    config = make_config("hmdb51", data_dir=str(root), records_dir=str(out), backbone="tiny",
                         image_size=32, weights="none", workdir=str(tmp_path / "w"),
                         steps=1, batch_size=2, workers=0, test_frames=2)
    with pytest.raises(ValueError) as refused:
        run_experiment(config, export_model=False, log=lambda _: None, verbose=False)
    assert str(refused.value).startswith(
        f"{out}: too many listed samples not prepared ({{'train': '2 of 5', 'test': '2 of 5'}}"
        "; limit --max_failure_fraction=0.05); classes without records: 'catch' (train: 0 "
        "of 1, test: 0 of 1); everything else was written")
    assert str(refused.value).endswith(f"(training/prepare.py --output_dir={out} --overwrite)"
                                       " and rerun")
    assert not (tmp_path / "w" / "config.json").exists()  # the workdir was not claimed


def test_pose_attention_on_records_without_keypoints_is_refused(tmp_path, hmdb51_tree):
    from keras_attnpool.trainer.experiment import run_experiment
    from keras_attnpool.trainer.presets import make_config

    root = hmdb51_tree(tmp_path / "hmdb51", {
        "wave": [(f"w{i}.avi", 1 + i % 2, "video") for i in range(4)],
        "jump": [(f"j{i}.avi", 1 + i % 2, "video") for i in range(4)]})
    out = tmp_path / "records"
    config = make_config("hmdb51", data_dir=str(root), records_dir=str(out), backbone="tiny",
                         image_size=32, weights="none", workdir=str(tmp_path / "w"),
                         head="pose_attention", steps=1, batch_size=2, workers=0,
                         test_frames=2)
    with pytest.raises(ValueError) as refused:
        run_experiment(config, export_model=False, log=lambda _: None, verbose=False)
    assert str(refused.value) == (
        f"--records_dir={out}: no train record holds keypoints, and --head=pose_attention "
        f"trains on them; prepare the records with the OpenPose keypoints (training/prepare.py"
        f" --output_dir={out} --keypoints_dir=<their folder> --overwrite), or choose another "
        "--head")
    assert manifest_of(out)["keypoints"] == {"train": {"samples": 0, "frames": 0},
                                             "test": {"samples": 0, "frames": 0}}
    assert not (tmp_path / "w" / "config.json").exists()
