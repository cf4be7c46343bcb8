"""training/export.py end to end on a small workdir, and its answers to bad flags and paths."""

import json
import os
import re
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_attnpool import build_action_model  # noqa: E402
from keras_attnpool.data.records import schema as record_format  # noqa: E402
from keras_attnpool.data.synthetic.cluttered_digits import load_cluttered_digits  # noqa: E402
from keras_attnpool.export import (WorkdirError, calibration_images,  # noqa: E402
                                   export_workdir, read_models_config)
from keras_attnpool.trainer.presets import make_config  # noqa: E402
from keras_attnpool.workdir import Workdir  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPORT = os.path.join(ROOT, "training", "export.py")


def _run(*flags):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, EXPORT, *flags], capture_output=True, text=True,
                          env=env, timeout=600)


def _write_records(folder, frames):
    os.makedirs(folder)
    for shard in range(2):
        path = os.path.join(folder, record_format.shard_name("train", shard, 2))
        with tf.io.TFRecordWriter(path) as writer:
            for index, frame in enumerate(frames[shard::2]):
                jpeg = tf.io.encode_jpeg(frame).numpy()
                writer.write(record_format.encode_example(
                    f"clip{shard}_{index}", [jpeg, jpeg], label=0, height=64, width=64))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A workdir as the trainer leaves it (model untrained: the CLI is what is tested)."""
    root = tmp_path_factory.mktemp("run")
    (train_frames, _), _, names = load_cluttered_digits(40, 10, 3, seed=0)
    keras.utils.set_random_seed(0)
    build_action_model(3, backbone="tiny", head="attention",
                       input_shape=(64, 64, 3)).save(root / "model.keras")
    (root / "labels.txt").write_text("\n".join(names) + "\n")
    _write_records(str(root / "records"), train_frames)
    Workdir(root).write_config(make_config("demo", workdir=str(root), backbone="tiny",
                                           records_dir=str(root / "records")))
    return root


def test_calibration_images_are_first_frames_from_every_shard(workdir):
    images = calibration_images(str(workdir / "records"), count=5)
    assert len(images) == 5 and images[0].shape == (64, 64, 3) and images[0].dtype == np.uint8


@pytest.mark.slow
def test_exports_a_version_config_and_int8_then_refuses_to_overwrite(workdir, tmp_path):
    export_dir = tmp_path / "savedmodels" / "digits"
    result = _run(f"--workdir={workdir}", f"--export_dir={export_dir}", "--tflite=int8")
    assert result.returncode == 0, result.stderr
    assert (export_dir / "1" / "saved_model.pb").is_file()
    assert (export_dir / "1" / "assets" / "labels.txt").read_text().split() == [
        "digit_0", "digit_1", "digit_2"]
    tflite = export_dir / "tflite" / "1"
    assert {"model_int8.tflite", "model_int8.json", "labels.txt"} <= set(os.listdir(tflite))
    config = read_models_config(str(tmp_path / "savedmodels" / "models.config"))
    assert [(c.name, c.base_path) for c in config.model_config_list.config] == [
        ("digits", "/models/digits")]

    refused = _run(f"--workdir={workdir}", f"--export_dir={export_dir}", "--version=1")
    assert refused.returncode == 2
    assert "already exists" in refused.stderr and "--overwrite" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1

    replaced = _run(f"--workdir={workdir}", f"--export_dir={export_dir}", "--version=1",
                    "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert sorted(os.listdir(export_dir)) == ["1", "tflite"]


def test_served_preprocessing_is_the_runs(workdir, tmp_path):
    """The export states the evaluation's short side and the records' stored one, both
    taken from config.json (what ran), not derived again."""
    config = json.loads((workdir / "config.json").read_text())
    result = export_workdir(str(workdir), str(tmp_path / "out"), models_config=False)
    info = json.loads((tmp_path / "out" / "1" / "assets" / "preprocessing.json").read_text())
    assert result["saved_model"] == str(tmp_path / "out" / "1")
    assert (info["resize_short"], info["prepared_short_side"]) == (config["resize_short"],
                                                                   config["short_side"])
    assert isinstance(info["prepared_short_side"], int)


def _copy_workdir(workdir, target, labels=None, **config_changes):
    """A copy of the workdir with config.json (and labels.txt) changed."""
    target.mkdir()
    for name in ("model.keras", "labels.txt"):
        (target / name).write_bytes((workdir / name).read_bytes())
    if labels is not None:
        (target / "labels.txt").write_text("".join(f"{name}\n" for name in labels))
    config = {**json.loads((workdir / "config.json").read_text()), **config_changes}
    (target / "config.json").write_text(json.dumps(config))
    return target


def test_int8_without_records_fails_before_writing(workdir, tmp_path):
    other = _copy_workdir(workdir, tmp_path / "run", records_dir=str(tmp_path / "none"))
    with pytest.raises(WorkdirError, match="int8 calibration needs training images"):
        export_workdir(str(other), str(tmp_path / "out"), tflite="int8")
    assert not (tmp_path / "out").exists()
    # With calibration images passed in, the same workdir exports.
    frames = calibration_images(str(workdir / "records"), count=8)
    result = export_workdir(str(other), str(tmp_path / "out"), tflite="int8",
                            representative_data=frames, models_config=False)
    assert os.path.isfile(result["tflite"]) and result["version"] == 1


@pytest.mark.parametrize("labels, change, message", [
    (["a", "b", "c", "d"], {}, "labels.txt has 4 names and"),
    (None, {"image_size": 96, "resize_short": 96},
     "image_size 96 differs from the model's input size [64, 64]"),
    (None, {"num_classes": 3}, "unknown setting 'num_classes'; remove it"),
    (None, {"dropout": 2.0}, "--dropout=2.0: must be in [0, 1)"),
])
def test_inconsistent_workdir_is_named(workdir, tmp_path, labels, change, message):
    other = _copy_workdir(workdir, tmp_path / "run", labels=labels, **change)
    with pytest.raises(WorkdirError, match=re.escape(message)):
        export_workdir(str(other), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_config_that_is_not_json_is_named(workdir, tmp_path):
    other = _copy_workdir(workdir, tmp_path / "run")
    (other / "config.json").write_text("{not json")
    with pytest.raises(WorkdirError, match="config.json is not valid JSON"):
        export_workdir(str(other), str(tmp_path / "out"))


@pytest.mark.parametrize("damage", ["not a zip", "truncated", "a member changed"])
def test_a_damaged_model_file_is_named_as_damaged(workdir, tmp_path, damage):
    """Keras's own error for a damaged .keras archive says "File not found"."""
    other = _copy_workdir(workdir, tmp_path / "run")
    data = (other / "model.keras").read_bytes()
    if damage == "not a zip":
        data = b"PK\x03\x04garbage"
    elif damage == "truncated":
        data = data[:len(data) // 2]
    else:  # a byte inside the weights' data: their CRC no longer matches
        middle = len(data) // 2
        data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
    (other / "model.keras").write_bytes(data)
    with pytest.raises(WorkdirError, match=f"^{re.escape(str(other / 'model.keras'))} is "
                                           r"damaged \((not a whole zip archive|.* fails its "
                                           r"checksum)"):
        export_workdir(str(other), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, message", [
    (["--tflite=int4"], "--tflite=int4: value should be one of"),
    (["--version=0"], "--version=0"),
    (["extra"], "unexpected arguments"),
    (["--workdir={missing}"], "no such directory"),
    (["--export_dir={workdir}/model.keras"], "is a file"),
])
def test_bad_flags_and_paths_exit_2_with_one_line(workdir, tmp_path, flags, message):
    defaults = {"--workdir": str(workdir), "--export_dir": str(tmp_path / "m")}
    for flag in flags:
        defaults[flag.split("=")[0]] = flag.split("=", 1)[1] if "=" in flag else None
    argv = [f"{k}={v}" if v is not None else k for k, v in defaults.items()]
    argv = [a.format(missing=tmp_path / "nope", workdir=workdir) for a in argv]
    result = _run(*argv)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_missing_required_flags_exit_2():
    result = _run()
    assert result.returncode == 2
    assert "--workdir" in result.stderr and "Traceback" not in result.stderr
