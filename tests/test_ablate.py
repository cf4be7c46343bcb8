"""benchmarks/ablate.py and benchmarks/resolution.py: an equal budget for every row, the
table's numbers, the head costs, reuse of finished runs, bad flags, and a miniature end-to-end
run. The functions live in benchmarks/ablation.py (no flags: importable here); the two
command lines are run as programs."""

import dataclasses
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import ablation  # noqa: E402
from keras_attnpool.data.records import schema as record_format  # noqa: E402
from keras_attnpool.trainer.presets import PRESETS  # noqa: E402

# What a row may change: its head's fields (heatmap_size is derived for the pose head only),
# its seed and its workdir.
HEAD_FIELDS = {"head", "rank", "class_specific_bottom_up", "heatmap_size", "workdir", "seed"}


def test_every_row_is_the_preset_with_only_the_head_changed(tmp_path):
    base = {"dataset": "demo", "steps": None, "batch_size": None}
    configs = {v: ablation.variant_config(base, v, 3, str(tmp_path)) for v in ablation.VARIANTS}
    budgets = [{k: v for k, v in dataclasses.asdict(c).items() if k not in HEAD_FIELDS}
               for c in configs.values()]
    assert all(b == budgets[0] for b in budgets)
    assert budgets[0]["steps"] == PRESETS["demo"]["steps"]  # follows the preset
    assert [configs[v].head for v in ("avg", "rank5", "pose", "second_order")] == [
        "avg", "attention", "pose_attention", "second_order"]
    assert configs["rank5"].rank == 5 and configs["class_specific"].class_specific_bottom_up
    assert len({c.workdir for c in configs.values()}) == len(configs)
    bigger = ablation.variant_config(base, "avg", 3, str(tmp_path), image_size=96)
    assert (bigger.image_size, bigger.resize_short) == (96, 96)
    assert bigger.workdir != configs["avg"].workdir


def test_a_finished_run_is_reused_only_with_the_same_config(tmp_path):
    config = ablation.variant_config({"dataset": "demo"}, "rank1", 1, str(tmp_path))
    assert ablation.finished_metrics(config) is None
    os.makedirs(config.workdir)
    with open(os.path.join(config.workdir, "config.json"), "w") as f:
        json.dump(dataclasses.asdict(config), f)
    with open(os.path.join(config.workdir, "metrics.json"), "w") as f:
        json.dump({"top1": 0.75}, f)
    assert ablation.finished_metrics(config) == {"top1": 0.75}
    assert ablation.train_and_score(config, log=lambda m: None)["top1"] == 0.75
    other = dataclasses.replace(config, steps=config.steps + 1)
    assert ablation.finished_metrics(other) is None


def test_table_has_mean_spread_seeds_paired_interval_verdict_and_costs():
    avg = [0.5, 0.7, 0.6]
    rows = [{"name": "avg pooling", "values": avg, "params": 645, "latency_ratio": 1.0,
             "latency_ms": 0.1, "variant": "avg", "reference": avg},
            {"name": "attention, rank 1", "values": [0.7, 0.8, 0.9], "params": 774,
             "latency_ratio": 1.234, "latency_ms": 0.2, "variant": "rank1", "reference": avg},
            {"name": "second-order", "values": [0.9], "params": 9, "latency_ratio": 2.0,
             "latency_ms": 0.3, "variant": "second_order", "reference": [0.5]}]
    table = ablation.markdown_table(rows, "top1", [1, 2, 3]).splitlines()
    assert table[0].startswith("| head | top1 (mean ± sd) | top1 per seed (1, 2, 3) | "
                               "− avg, paired (95% CI) | paper | verdict |")
    assert table[2] == ("| avg pooling | 0.600 ± 0.100 | 0.500 0.700 0.600 | — | — | — | "
                        "645 | 1.00 | 0.100 |")
    # Differences 0.2, 0.1, 0.3: mean 0.2, sd 0.1, t(0.975, 2) = 4.303: 0.2 ± 0.248.
    assert "| +0.200 [-0.048, +0.448] | higher than avg | not resolved at this budget |" \
        in table[3] and "| 1.23 |" in table[3]
    assert "0.900 ± n/a" in table[4] and "no claim in the paper" in table[4]
    assert ablation.dataset_metric("mpii") == "mAP" and ablation.dataset_metric("hmdb51") == "top1"
    gain = ablation.gain_row("64 px", rows[0], {**rows[1], "values": [0.9, 0.8]})
    np.testing.assert_allclose(gain["values"], [0.4, 0.1])
    assert gain["params"] == 129


def test_paired_interval_and_verdict():
    # Differences 0.1, 0.2, 0.1, 0.2: mean 0.15, sd 0.0577, t(0.975, 3) = 3.182: ± 0.0919.
    mean, low, high = ablation.paired_interval([0.6, 0.7, 0.6, 0.7], [0.5, 0.5, 0.5, 0.5])
    np.testing.assert_allclose([mean, low, high], [0.15, 0.0581, 0.2419], atol=1e-4)
    assert ablation.verdict("higher", low, high) == "agrees with the paper"
    assert ablation.verdict("higher", -high, -low) == "disagrees with the paper"
    assert ablation.verdict("higher", -0.1, 0.2) == "not resolved at this budget"
    assert ablation.verdict("higher", *ablation.paired_interval([0.7], [0.5])[1:]) == \
        "not resolved at this budget"  # one seed: no interval
    assert ablation.verdict(None, low, high) == "no claim in the paper"


def test_head_costs_count_the_head_alone_and_pair_ratios_to_avg(tmp_path):
    base = {"dataset": "demo", "image_size": 32, "resize_short": 32}
    configs = {v: ablation.variant_config(base, v, 1, str(tmp_path))
               for v in ("avg", "rank1", "rank5", "pose", "second_order")}
    costs = ablation.head_costs(configs, num_classes=5, repeats=2)
    channels = 128  # the tiny backbone's
    assert costs["avg"]["params"] == channels * 5 + 5
    assert costs["rank1"]["params"] == channels * 6 + 6   # K + 1 maps, with biases
    assert costs["rank5"]["params"] == 5 * costs["rank1"]["params"]
    assert costs["second_order"]["params"] > 50 * costs["rank1"]["params"]
    assert costs["avg"]["latency_ratio"] == 1.0
    assert all(c["latency_ratio"] > 0 and c["latency_ms"] > 0 for c in costs.values())


@pytest.mark.parametrize("with_keypoints", [True, False])
def test_the_pose_row_needs_keypoints_in_the_records(with_keypoints, tmp_path):
    jpeg = tf.io.encode_jpeg(np.zeros((8, 8, 3), np.uint8)).numpy()
    joints = np.ones((1, 16, 3), np.float32) if with_keypoints else None
    path = tmp_path / record_format.shard_name("train", 0, 1)
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(record_format.encode_example("a", [jpeg, jpeg], label=0, height=8,
                                                  width=8, keypoints=[joints, None]))
    assert ablation.records_have_keypoints(str(tmp_path)) == with_keypoints


@pytest.mark.parametrize("script, flags, message", [
    ("ablate.py", ["--seeds=one"], "--seeds=one: give comma-separated integers"),
    ("ablate.py", ["--variants=avg,rank9"], "--variants=avg,rank9: unknown rank9"),
    ("ablate.py", ["--dataset=hmdb51"], "--data_dir is required"),
    ("ablate.py", ["--dataset=kinetics"], "--dataset"),
    ("resolution.py", ["--sizes=64"], "--sizes=64: give two or more input sizes"),
    ("resolution.py", ["--seeds=1,x"], "--seeds=1,x: give comma-separated integers"),
    ("resolution.py", ["--variants=rank5"], "--variants does not apply to resolution.py"),
])
def test_bad_options_exit_2_with_one_line(script, flags, message):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *flags],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [result.stderr.splitlines()[0]]
    assert result.stderr.startswith(f"{script}: error: ") and message in result.stderr


def test_flags_give_the_overrides_of_the_same_names(tmp_path):
    """docs/make_docs.py passes `base_overrides(**overrides)`'s keywords to ablate.py as flags
    of the same names and draws pictures from the runs those name: both must agree."""
    overrides = {"dataset": "hmdb51", "data_dir": str(tmp_path / "hmdb51"), "steps": 7,
                 "batch_size": 3, "test_frames": 2, "workers": 1}
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import ablate; from absl import flags; "
            "flags.FLAGS(['ablate.py'] + sys.argv[2:]); print(repr(ablate.checked_flags().base))")
    result = subprocess.run([sys.executable, "-c", code, os.path.join(ROOT, "benchmarks"),
                             *[f"--{name}={value}" for name, value in overrides.items()]],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr(ablation.base_overrides(**overrides))
    demo = ablation.base_overrides(data_dir="~/d")
    assert (demo["steps"], demo["batch_size"], demo["eval_every"]) == (
        ablation.DEMO_STEPS, ablation.DEMO_BATCH, ablation.DEMO_EVAL_EVERY)
    assert demo["data_dir"] == os.path.join(os.path.expanduser("~"), "d")


@pytest.mark.slow
def test_miniature_ablation_writes_the_table(tmp_path):
    from keras_attnpool.data.synthetic.demo import make_demo_dataset

    data = make_demo_dataset(str(tmp_path / "data"), num_classes=3, clips_per_class=5,
                             num_frames=8, num_fragments=4, test_fraction=0.4)
    out = tmp_path / "table.md"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "ablate.py"), f"--data_dir={data}",
         f"--workdir={tmp_path / 'runs'}", "--steps=2", "--batch_size=4", "--test_frames=2",
         "--seeds=1,2", "--variants=avg,rank1,pose", "--repeats=2", "--workers=0",
         "--eval_every=1", "--source_steps=2", f"--curves={tmp_path / 'curves.png'}",
         f"--out={out}"], capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    lines = out.read_text().splitlines()
    assert lines[0].startswith("| head | top1 (mean ± sd) | top1 per seed (1, 2) |")
    assert [line.split(" | ")[0] for line in lines[2:8]] == [
        "| from scratch: avg pooling", "| from scratch: attention, rank 1",
        "| from scratch: pose-regularised attention",
        "| fine-tuned from the source task: avg pooling",
        "| fine-tuned from the source task: attention, rank 1",
        "| fine-tuned from the source task: pose-regularised attention"]
    text = out.read_text()
    assert "2 steps of batch 4" in text and "2 seeds (1, 2)" in text
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The fine-tuned rows started from the source task's backbone, a weights file.
    configs = [json.loads((tmp_path / "runs" / name / "config.json").read_text())
               for name in os.listdir(tmp_path / "runs") if name.startswith("avg_")]
    weights = {c["weights"] for c in configs}
    assert None in weights and len(weights) == 2
    source = next(w for w in weights if w)
    assert source.endswith(".weights.h5") and os.path.isfile(source)


def test_the_source_task_has_the_digits_the_demo_lacks_and_its_weights_load(tmp_path):
    from keras_attnpool.data.synthetic.demo import COMPLETE, make_demo_dataset
    from keras_attnpool.models import build_backbone

    data = make_demo_dataset(str(tmp_path / "data"), num_classes=2, clips_per_class=3,
                             num_frames=4, num_fragments=2, test_fraction=0.34)
    path = ablation.source_weights(str(tmp_path / "runs"), data, log=lambda m: None, steps=2)
    source_data = os.path.join(os.path.dirname(path), "data")
    classes = sorted(d for d in os.listdir(source_data) if d.startswith("digit_"))
    assert classes == ["digit_5", "digit_6"]  # as many classes as the demo, none of its own
    assert json.loads(open(os.path.join(source_data, COMPLETE)).read())["clips_per_class"] == 3
    trained = build_backbone("tiny", (64, 64, 3), weights=path)
    fresh = build_backbone("tiny", (64, 64, 3))
    assert any(not np.array_equal(a, b)
               for a, b in zip(trained.get_weights(), fresh.get_weights()))
    assert ablation.source_weights(str(tmp_path / "runs"), data, steps=2) == path  # reused
