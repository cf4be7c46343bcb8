"""Evaluation during training: a held-out slice of train kept out of the training stream,
TensorBoard's `eval` run, the best checkpoint beside the last ones (across a resume), and
`fit.py --eval_every --val_fraction --export_checkpoint=best` end to end."""

import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.util import event_pb2  # noqa: E402

import keras_attnpool.models  # noqa: E402,F401  registers the layers for load_model
from keras_attnpool.data.input import pipeline  # noqa: E402
from keras_attnpool.data.prepare.run import prepare_dataset  # noqa: E402
from keras_attnpool.data.records.schema import parse_example  # noqa: E402
from keras_attnpool.data.synthetic.demo import make_demo_dataset  # noqa: E402
from keras_attnpool.trainer.loop import TrainConfig, Trainer  # noqa: E402
from keras_attnpool.trainer.objectives import make_loss  # noqa: E402
from keras_attnpool.workdir import Workdir  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIT = os.path.join(ROOT, "training", "fit.py")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """3 classes x 5 clips of 8 frames (3 train + 2 test each)."""
    root = tmp_path_factory.mktemp("demo") / "data"
    return str(make_demo_dataset(str(root), num_classes=3, clips_per_class=5, num_frames=8,
                                 test_fraction=0.4))


@pytest.fixture(scope="module")
def records(demo_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("records"))
    prepare_dataset("hmdb51", demo_dir, out, workers=0, short_side=64, shard_size=4)
    return out


def _whole_record_clips(files):
    """(video_id, label) of every record, parsed from the shards themselves."""
    out = []
    for serialized in tf.data.TFRecordDataset(files):
        record = parse_example(serialized)
        out.append((record["video_id"].numpy().decode(), int(record["label"])))
    return out


@pytest.mark.parametrize("layout", ["whole", "index", "index_in_memory"])
def test_a_held_out_slice_is_left_out_of_training_and_is_all_that_is_evaluated(
        records, layout):
    files = pipeline.split_record_files(records, "train")
    clips = _whole_record_clips(files)
    assert sorted(pipeline.list_clips(files)) == sorted(clips)
    held = [video_id for video_id, label in clips if label == 1]
    assert len(held) == 3
    options = {"whole": dict(use_index=False), "index": dict(index_in_memory=False),
               "index_in_memory": dict(index_in_memory=True)}[layout]
    train = pipeline.train_dataset(files, num_segments=2, image_size=32, batch_size=1, seed=3,
                                   repeat=False, drop_remainder=False, leave_out=held,
                                   **options)
    labels = [int(label) for _, batch in train for label in batch.numpy()]
    assert sorted(labels) == sorted(label for _, label in clips if label != 1)

    evaluated = pipeline.eval_dataset(files, image_size=32, batch_size=2, test_frames=2,
                                      only=held, use_index=options.get("use_index"))
    assert sorted(v.decode() for _, _, ids in evaluated for v in ids.numpy()) == sorted(held)
    first_two = pipeline.eval_dataset(files, image_size=32, batch_size=2, test_frames=2,
                                      only=held, limit=2)
    assert sum(len(ids) for _, _, ids in first_two) == 2


def _events(folder):
    """{tag: {step: value}} of a TensorBoard run's event files, read here directly."""
    out = {}
    for name in os.listdir(folder):
        for record in tf.data.TFRecordDataset(os.path.join(folder, name)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                out.setdefault(value.tag, {})[event.step] = float(
                    tf.make_ndarray(value.tensor))
    return out


def _trainer(workdir, steps):
    def build():
        inputs = keras.Input((3,))
        return keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))

    config = TrainConfig(steps=steps, global_batch_size=4, log_every=2, checkpoint_every=3,
                         eval_every=2, verbose=False)
    return Trainer(tf.distribute.get_strategy(), build, lambda: keras.optimizers.SGD(0.1),
                   make_loss(), workdir, config)


def _data(start):
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    return tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(4).skip(start)


def test_the_best_checkpoint_is_kept_beside_the_last_and_across_a_resume(tmp_path):
    workdir = Workdir(tmp_path / "run")
    scores = {2: 0.3, 4: 0.7, 6: float("nan"), 8: 0.6, 10: 0.9}
    seen = {}

    def scripted(trainer):
        def evaluate(step):
            seen[step] = [w.copy() for w in trainer.model.get_weights()]
            return {"top1": scores[step], "num_examples": 5}
        return evaluate

    first = _trainer(workdir, steps=6)
    first.fit(_data, evaluate=scripted(first), best_by="top1")
    assert workdir.read_best() == {"step": 4, "metric": "top1", "value": 0.7}
    assert tf.train.latest_checkpoint(workdir.checkpoints_dir).endswith("ckpt-6")
    first.restore_best()
    for a, b in zip(first.model.get_weights(), seen[4]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(seen[4][0], seen[6][0])

    # Resumed with more steps: 0.6 at step 8 is no better than 0.7; 0.9 at step 10 is.
    second = _trainer(workdir, steps=8)
    second.fit(_data, evaluate=scripted(second), best_by="top1")
    assert workdir.read_best()["step"] == 4
    third = _trainer(workdir, steps=10)
    third.fit(_data, evaluate=scripted(third), best_by="top1")
    assert workdir.read_best() == {"step": 10, "metric": "top1", "value": 0.9}
    curves = _events(workdir.logs_dir("eval"))
    assert set(curves) == {"top1"}  # floats only: num_examples is not a curve
    assert curves["top1"].keys() == {2, 4, 6, 8, 10}
    np.testing.assert_allclose([curves["top1"][s] for s in (2, 4, 8, 10)], [0.3, 0.7, 0.6, 0.9])
    assert np.isnan(curves["top1"][6])
    assert [step for step, _ in workdir.read_eval_curves()["top1"]] == [2, 4, 6, 8, 10]


def _fit(*flags):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, FIT, *flags], capture_output=True, text=True,
                          env=env, timeout=600)


def _checkpoint_arrays(prefix):
    reader = tf.train.load_checkpoint(prefix)
    arrays = (reader.get_tensor(key) for key in reader.get_variable_to_shape_map())
    return [a for a in arrays if isinstance(a, np.ndarray)]


def _holds_weights(prefix, model):
    arrays = _checkpoint_arrays(prefix)
    return all(any(a.shape == tuple(w.shape) and np.array_equal(a, w.numpy()) for a in arrays)
               for w in model.weights)


def test_fit_evaluates_on_held_out_train_clips_and_exports_the_best_checkpoint(demo_dir,
                                                                               tmp_path):
    workdir = tmp_path / "run"
    result = _fit(f"--data_dir={demo_dir}", f"--workdir={workdir}", "--steps=6",
                  "--batch_size=4", "--test_frames=2", "--export=false", "--workers=0",
                  "--eval_every=2", "--val_fraction=0.34", "--export_checkpoint=best")
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((workdir / "config.json").read_text())
    assert (config["eval_every"], config["val_fraction"], config["export_checkpoint"]) == (
        2, 0.34, "best")
    # One of each class's 3 train clips (round(0.34 * 3)), all of them train clips.
    held = (workdir / "held_out.txt").read_text().split()
    train_ids = {v for v, _ in _whole_record_clips(
        pipeline.split_record_files(config["records_dir"], "train"))}
    assert len(held) == 3 and set(held) <= train_ids
    assert sorted(h.split("/")[0] for h in held) == ["digit_0", "digit_1", "digit_2"]

    curves = _events(workdir / "logs" / "eval")
    assert set(curves) == {"top1", "top5", "mean_class_accuracy", "mAP", "loss"}
    assert all(set(points) == {2, 4, 6} for points in curves.values())
    best_step = max(sorted(curves["top1"]), key=lambda s: (curves["top1"][s], -s))
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["checkpoint"] == {"used": "best", "step": best_step,
                                     "held_out_top1": pytest.approx(curves["top1"][best_step])}
    assert f"Evaluating the best checkpoint (step {best_step}" in result.stdout
    # What was evaluated and saved (and would be served) holds the best checkpoint's weights.
    model = keras.saving.load_model(workdir / "model.keras", safe_mode=True)
    best = tf.train.latest_checkpoint(workdir / "checkpoints" / "best")
    assert best.endswith(f"ckpt-{best_step}") and _holds_weights(best, model)
    if best_step != 6:
        assert not _holds_weights(str(workdir / "checkpoints" / "ckpt-6"), model)


@pytest.mark.parametrize("flags, named", [
    (["--val_fraction=0.2"], "--val_fraction=0.2"),
    (["--export_checkpoint=best"], "--export_checkpoint=best"),
    (["--eval_every=2", "--export_checkpoint=worst"], "--export_checkpoint=worst"),
    (["--eval_every=2", "--val_fraction=1.5"], "--val_fraction=1.5"),
    (["--eval_every=-1"], "--eval_every=-1"),
])
def test_bad_evaluation_flags_end_in_one_line(flags, named, tmp_path):
    result = _fit(f"--workdir={tmp_path / 'run'}", "--steps=2", *flags)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr[-2000:]
    assert not (tmp_path / "run").exists()


def _mpii(root, per_class=4):
    """A miniature MPII release (2 classes, real JPEGs, no joints): the .mat in its
    official nested-struct shape, and images/."""
    import scipy.io
    from PIL import Image

    (root / "mpii_human_pose_v1_u12_2").mkdir(parents=True)
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    names, acts = [], []
    for k, act in enumerate(["bicycling, general", "rock climbing"]):
        for i in range(per_class):
            name = f"{k}{i:08d}.jpg"
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(
                root / "images" / name)
            names.append(name)
            acts.append((act, k + 1))
    empty = np.zeros((0, 0))
    annolist = np.zeros((1, len(names)), dtype=[(f, object) for f in (
        "image", "annorect", "frame_sec", "vididx")])
    act = np.zeros((len(names), 1), dtype=[(f, object) for f in (
        "act_name", "cat_name", "act_id")])
    for i, name in enumerate(names):
        annolist.flat[i] = ({"name": name}, empty, 10, i + 1)
        act.flat[i] = (acts[i][0], acts[i][0].split(",")[0], acts[i][1])
    scipy.io.savemat(root / "mpii_human_pose_v1_u12_2" / "mpii_human_pose_v1_u12_1.mat", {
        "RELEASE": {"annolist": annolist, "img_train": np.ones((1, len(names))), "act": act,
                    "single_person": np.zeros((len(names), 1), object), "version": "12"}})
    return root


@pytest.mark.slow
def test_mpii_is_evaluated_on_its_val_split_during_and_after_training(tmp_path):
    """MPII's test images have no public action labels: both evaluations score val."""
    data = _mpii(tmp_path / "mpii")
    workdir = tmp_path / "run"
    result = _fit("--dataset=mpii", f"--data_dir={data}", f"--workdir={workdir}",
                  "--backbone=tiny", "--weights=none", "--image_size=32", "--steps=2",
                  "--batch_size=2", "--export=false", "--workers=0", "--eval_every=1")
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((tmp_path / "mpii" / "prepared" / "split1" / "manifest.json")
                          .read_text())
    assert "test" not in manifest["splits"] and manifest["splits"]["val"] >= 2
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["protocol"]["records"] == "val"
    assert metrics["num_examples"] == manifest["splits"]["val"]
    assert "Evaluating every 1 steps on the val split" in result.stdout
    assert set(_events(workdir / "logs" / "eval")["mAP"]) == {1, 2}
