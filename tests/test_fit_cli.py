"""training/fit.py and training/evaluate.py end to end on a miniature demo dataset."""

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import keras_attnpool.models  # noqa: F401  registers the layers for load_model
from keras_attnpool.data.synthetic.demo import make_demo_dataset
from keras_attnpool.trainer import experiment
from keras_attnpool.trainer.presets import make_config
from keras_attnpool.workdir import Workdir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIT = os.path.join(ROOT, "training", "fit.py")
EVALUATE = os.path.join(ROOT, "training", "evaluate.py")
EXPORT = os.path.join(ROOT, "training", "export.py")
SMALL = ["--steps=6", "--batch_size=4", "--test_frames=4", "--export=false", "--workers=0"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """A small demo dataset: 3 classes x 5 clips of 8 frames (3 train + 2 test each)."""
    root = tmp_path_factory.mktemp("demo") / "data"
    return str(make_demo_dataset(str(root), num_classes=3, clips_per_class=5, num_frames=8,
                                 test_fraction=0.4))


def _run(script, *flags, wait=True):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, script, *flags]
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def test_demo_trains_evaluates_and_leaves_a_workdir(demo_dir, tmp_path):
    workdir = tmp_path / "run"
    result = _run(FIT, f"--data_dir={demo_dir}", f"--workdir={workdir}", *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["num_examples"] == 6            # 3 classes x 2 test clips
    assert {"top1", "top5", "mean_class_accuracy", "mAP"} <= set(metrics)
    assert (workdir / "labels.txt").read_text().split() == ["digit_0", "digit_1", "digit_2"]
    config = json.loads((workdir / "config.json").read_text())
    assert config["steps"] == 6 and config["backbone"] == "tiny"
    model = keras.saving.load_model(workdir / "model.keras", safe_mode=True)
    assert model(np.zeros((1, 64, 64, 3), "float32")).shape == (1, 3)
    assert (workdir / "per_class.csv").read_text().startswith("class,examples,accuracy,AP")
    assert os.listdir(workdir / "logs" / "train")

    again = _run(EVALUATE, f"--workdir={workdir}", "--test_frames=2", "--resize_short=80")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["num_examples"] == 6
    protocol = json.loads((workdir / "metrics.json").read_text())["protocol"]
    assert (protocol["test_frames"], protocol["resize_short"]) == (2, 80)
    # What is served is what was evaluated: an export of these metrics is refused.
    export = _run(EXPORT, f"--workdir={workdir}", f"--export_dir={tmp_path / 'sm' / 'm'}")
    assert export.returncode == 2, export.stderr[-2000:]
    assert "scored at resize_short=80, but the model serves its run's 64" in export.stderr
    assert not (tmp_path / "sm").exists()
    assert _run(EVALUATE, f"--workdir={workdir}", "--test_frames=2").returncode == 0
    export = _run(EXPORT, f"--workdir={workdir}", f"--export_dir={tmp_path / 'sm' / 'm'}")
    assert export.returncode == 0, export.stderr[-2000:]

    # Records of other classes are refused, and the metrics are left as they were.
    other = tmp_path / "other_records"
    shutil.copytree(config["records_dir"], other)
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest,
                                                     "classes": ["alpha", "beta", "gamma"]}))
    before = (workdir / "metrics.json").read_bytes()
    refused = _run(EVALUATE, f"--workdir={workdir}", f"--records_dir={other}")
    assert refused.returncode == 2
    assert f"--records_dir={other} holds the classes [alpha, beta, gamma] (3) but the model " \
        "was trained on [digit_0, digit_1, digit_2] (3)" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert (workdir / "metrics.json").read_bytes() == before


def test_config_json_stores_the_resolved_settings_that_ran(demo_dir, tmp_path):
    """--epochs becomes steps once the records are counted; derived values are stored."""
    workdir = tmp_path / "epochs"
    flags = [f for f in SMALL if not f.startswith("--steps")]
    result = _run(FIT, f"--data_dir={demo_dir}", f"--workdir={workdir}", "--epochs=2",
                  "--head=avg", "--flip", "--crop_scales=1,0.8", "--color_jitter",
                  "--resize_short=72", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((workdir / "config.json").read_text())
    train_clips = 3 * 3                                   # 3 classes x 3 train clips
    assert config["epochs"] == 2 and config["steps"] == -(-2 * train_clips // 4)  # ceil
    assert f"for {config['steps']} steps" in result.stdout
    assert config["augment_on"] == "cpu" and config["test_frames"] == 4
    assert config["workdir"] == str(workdir) and config["records_dir"]
    assert None not in (config["crop_scales"], config["short_side"])
    assert config["resize_short"] == 72
    assert json.loads((workdir / "metrics.json").read_text())["protocol"]["resize_short"] == 72
    # The augmentation flags, over the demo preset's (no flips, scales 1 and 0.875).
    assert (config["flip"], config["crop_scales"], config["color_jitter"]) == (
        True, [1.0, 0.8], True)


def _final_weights(workdir):
    model = keras.saving.load_model(os.path.join(workdir, "model.keras"), safe_mode=True)
    return [np.asarray(w) for w in model.weights]


@pytest.mark.slow
def test_killed_run_resumes_and_ends_like_an_uninterrupted_one(demo_dir, tmp_path):
    flags = [f"--data_dir={demo_dir}", "--steps=40", "--batch_size=4", "--test_frames=2",
             "--export=false", "--workers=0", "--checkpoint_every=5", "--seed=3"]
    reference = _run(FIT, *flags, f"--workdir={tmp_path / 'straight'}")
    assert reference.returncode == 0, reference.stderr[-3000:]

    workdir = tmp_path / "killed"
    process = _run(FIT, *flags, f"--workdir={workdir}", wait=False)
    checkpoint = workdir / "checkpoints" / "ckpt-10.index"
    deadline = time.time() + 300
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (workdir / "model.keras").exists()

    resumed = _run(FIT, *flags, f"--workdir={workdir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resumed from" in resumed.stdout
    resumed_step = int(resumed.stdout.split("Resumed from")[1].split("ckpt-")[1].split()[0])
    assert 10 <= resumed_step < 40
    for a, b in zip(_final_weights(tmp_path / "straight"), _final_weights(workdir)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_ctrl_c_saves_the_step_reached_and_says_how_to_resume(demo_dir, tmp_path):
    workdir = tmp_path / "interrupted"
    flags = [f"--data_dir={demo_dir}", f"--workdir={workdir}", "--steps=100000",
             "--checkpoint_every=100000", "--batch_size=4", "--test_frames=2",
             "--export=false", "--workers=0", "--head=avg"]
    process = _run(FIT, *flags, wait=False)
    logs, deadline = workdir / "logs" / "train", time.time() + 300
    while not (logs.is_dir() and os.listdir(logs)) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # a few steps in
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    step = int(stderr.split("interrupted at step ")[1].split(";")[0])
    assert "rerun the same command to resume" in stderr and step >= 1
    assert (workdir / "checkpoints" / f"ckpt-{step}.index").is_file()
    assert not (workdir / "model.keras").exists()


def test_a_full_disk_names_the_checkpoint_and_leaves_none_of_it(demo_dir, tmp_path):
    from tools import file_size_limit  # tests/tools.py

    workdir = tmp_path / "full"
    flags = [f"--data_dir={demo_dir}", f"--workdir={workdir}", "--head=avg", *SMALL]
    # Room for the records (a few kB a shard), the event file and labels, not for the tiny
    # model's checkpoint (~3 MB).
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    full = subprocess.run([sys.executable, FIT, *flags], capture_output=True, text=True,
                          env=env, timeout=600, preexec_fn=file_size_limit(1_000_000))
    assert full.returncode == 2, full.stderr[-2000:]
    assert "Traceback" not in full.stderr and len(full.stderr.strip().splitlines()) == 1
    assert full.stderr.strip() == (
        f"fit.py: error: {workdir}/checkpoints/ckpt-6: could not be written (File too "
        "large); nothing of it was kept. Free space on that disk and rerun the same command: "
        "it goes on from what was finished")
    assert os.listdir(workdir / "checkpoints") == []
    assert not (workdir / "model.keras").exists()
    again = _run(FIT, *flags)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (workdir / "checkpoints" / "ckpt-6.index").is_file()


@pytest.mark.parametrize("flags, message", [
    (["--dataset=kinetics"], "--dataset=kinetics: accepted values are demo, hmdb51"),
    (["--dataset=hmdb51", "--data_dir=/no/such/folder"], "--data_dir=/no/such/folder: no such"),
    (["--steps=abc"], "--steps"),
    (["--steps=0"], "--steps=0: must be >= 1"),
    (["--crop_scales=1,big"], "--crop_scales=1,big: give comma-separated fractions"),
    (["--resize_short=32"], "--resize_short=32: must be >= --image_size=64"),
    (["--strategy=mirrored", "--cpu_replicas=2", "--batch_size=7"],
     "not divisible by the 2 replicas"),
    (["extra"], "unexpected arguments"),
])
def test_bad_flags_exit_2_with_one_line(flags, message, tmp_path):
    result = _run(FIT, *flags, f"--workdir={tmp_path / 'w'}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("settings, message", [
    ({"dataset": "hmdb51"}, "--data_dir is required for --dataset=hmdb51"),
    ({"dataset": "hmdb51", "data_dir": ".", "split": 4}, "--split=4: hmdb51 has splits 1, 2 and 3"),
    ({"head": "max"}, "--head=max: accepted values are attention"),
    ({"backbone": "resnet9"}, "--backbone=resnet9: accepted values are"),
    ({"batch_size": 10, "accumulation_steps": 4},
     "--batch_size=10: must be divisible by --accumulation_steps=4"),
    ({"augment_on": "gpu"}, "--augment_on"),
    ({"crop_scales": (1.0, 1.5)}, "--crop_scales=1.0,1.5: every scale must be in (0, 1]"),
])
def test_bad_settings_are_refused_naming_the_flag(settings, message, tmp_path):
    """What fit.py checks before any work (its ValueError becomes the one line and exit 2
    that test_bad_flags_exit_2_with_one_line sees), here in one process."""
    dataset = settings.pop("dataset", "demo")
    with pytest.raises(ValueError, match=re.escape(message)):
        make_config(dataset, workdir=str(tmp_path / "w"), **settings)


def test_weights_none_is_the_random_start_and_a_file_is_made_absolute(tmp_path, monkeypatch):
    assert make_config("demo", weights="none").weights is None
    assert make_config("demo", weights="imagenet").weights == "imagenet"
    (tmp_path / "w.h5").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert make_config("demo", weights="w.h5").weights == str(tmp_path / "w.h5")


def test_workdir_of_another_run_is_refused(demo_dir, tmp_path):
    workdir = tmp_path / "w"
    Workdir(workdir).write_config(make_config("demo", workdir=str(workdir), head="avg",
                                              data_dir=demo_dir, steps=6, batch_size=4,
                                              test_frames=4))
    result = _run(FIT, f"--data_dir={demo_dir}", f"--workdir={workdir}", *SMALL)
    assert result.returncode == 2
    assert "holds a run with other settings (head: 'avg' -> 'attention')" in result.stderr
    assert "Traceback" not in result.stderr


def test_evaluate_without_a_trained_model(tmp_path):
    result = _run(EVALUATE, f"--workdir={tmp_path}")
    assert result.returncode == 2
    assert f"{tmp_path / 'config.json'} not found" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_pose_attention_trains_on_clips_with_keypoints(demo_dir, tmp_path):
    """The clip model's heatmaps are (B, T, h, w, J): the masked loss takes clips. With the
    crops finished in the training step (--augment_on=device), as on a GPU."""
    workdir = tmp_path / "pose"
    result = _run(FIT, f"--data_dir={demo_dir}", f"--workdir={workdir}", "--head=pose_attention",
                  "--augment_on=device", *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((workdir / "metrics.json").read_text())["num_examples"] == 6
    assert json.loads((workdir / "config.json").read_text())["augment_on"] == "device"


def test_demo_records_of_an_earlier_format_are_prepared_again(demo_dir, tmp_path):
    from keras_attnpool.data.prepare.output import FORMAT, STATE, STATE_DIR

    records = tmp_path / "records"
    config = make_config("demo", data_dir=demo_dir, records_dir=str(records), workers=0)
    experiment.prepare_records(config, log=lambda _: None)
    state = records / STATE_DIR / STATE
    state.write_text(state.read_text().replace(FORMAT, "keras_attnpool.prepared/1"))
    said = []
    manifest = experiment.prepare_records(config, log=said.append)
    assert manifest["ok"] and manifest["this_run"]["shards_written"] > 0
    assert FORMAT in state.read_text() and "format keras_attnpool.prepared/1" in said[0]


def test_records_changed_under_their_index_end_in_one_line(demo_dir, tmp_path):
    from keras_attnpool.data.records import tfrecord

    records = tmp_path / "records"
    experiment.prepare_records(make_config("demo", data_dir=demo_dir, records_dir=str(records),
                                           workers=0), log=lambda _: None)
    # Every train shard is written again with its records in reverse order: each file is
    # whole, but its index points at other positions.
    shards = sorted(records.glob("train-*.tfrecord"))
    for shard in shards:
        tfrecord.write_tfrecord(str(shard), _records(shard)[::-1])
    result = _run(FIT, f"--data_dir={demo_dir}", f"--records_dir={records}",
                  f"--workdir={tmp_path / 'w'}", *SMALL)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    named = result.stderr.split("fit.py: error: ", 1)[1].split(": ", 1)[0]
    assert named in {str(s) for s in shards}, result.stderr
    assert "sampled frames could not be read at the positions its .index file" in \
        result.stderr and "prepare the records again" in result.stderr


@pytest.mark.parametrize("damaged", ["shard", "index"])
def test_a_damaged_file_is_named_when_training_reads_it(demo_dir, tmp_path, damaged):
    """TensorFlow's errors for a damaged record ("corrupted record at N") or for JPEG bytes
    it cannot decode name no file; the one line does."""
    from keras_attnpool.data.input import indexed
    from keras_attnpool.data.records import frame_index, stored_frame

    records = tmp_path / "records"
    experiment.prepare_records(make_config("demo", data_dir=demo_dir, records_dir=str(records),
                                           workers=0), log=lambda _: None)
    shard = sorted(records.glob("train-*.tfrecord"))[-1]
    target = shard if damaged == "shard" else pathlib.Path(frame_index.index_path(shard))
    data = bytearray(target.read_bytes())
    if damaged == "shard":  # every frame's header after its start marker: undecodable
        for entry in frame_index.index_entries([bytes(r) for r in _records(shard)]):
            for position in indexed.parse_index_entry(entry)["frame_records"].numpy():
                start = position - stored_frame.RECORD_OFFSET
                data[start + 2:start + 40] = bytes(38)
        first_bad = 0
    else:  # a byte of the second entry's data
        first_bad = 12 + len(_records(target)[0]) + 4
        data[first_bad + 20] ^= 0xFF
    target.write_bytes(bytes(data))
    before = {p.name: p.read_bytes() for p in records.iterdir() if p.is_file()}
    result = _run(FIT, f"--data_dir={demo_dir}", f"--records_dir={records}",
                  f"--workdir={tmp_path / 'w'}", *SMALL)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"fit.py: error: {target}: corrupted record at byte ")
    assert "prepare it again (training/prepare.py --overwrite)" in result.stderr
    if damaged == "index":
        assert f"corrupted record at byte {first_bad} (its data fail" in result.stderr
    assert {p.name: p.read_bytes() for p in records.iterdir() if p.is_file()} == before


def _records(shard):
    import tensorflow as tf
    return [r.numpy() for r in tf.data.TFRecordDataset(str(shard))]
