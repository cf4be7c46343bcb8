"""The paper's ablation as functions: one config per pooling variant at an equal budget,
reuse of finished runs, head costs, and the Markdown tables of `ablate.py` and
`resolution.py` (which hold the command-line flags; this module defines none, so that
`docs/make_docs.py` and the tests can import it).

Rows (Girdhar & Ramanan 2017, Sec. 4 and Table 1's analysis): average pooling, attention of
rank 1, 2 and 5, class-specific bottom-up attention, pose-regularised attention (only where
the records carry keypoints: the demo does, HMDB51 with OpenPose output does) and full
second-order pooling (projected to 256 channels first, as `run_experiment` builds it).
Every row is the dataset's preset (`make_config(dataset)`, so the same command follows the
preset when it changes) with the same steps, batch and seeds; only the head differs.

Each run's workdir is `<workdir>/<variant>_<size>px_seed<seed>_<config hash>`; a finished
run (metrics.json beside the same config.json) is reused.
"""

import dataclasses
import hashlib
import json
import os
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from keras_attnpool.trainer.config import ExperimentConfig
from keras_attnpool.trainer.presets import make_config

# Variant id -> (row name, the config fields that make the variant).
VARIANTS: Dict[str, tuple] = {
    "avg": ("avg pooling", dict(head="avg")),
    "rank1": ("attention, rank 1", dict(head="attention", rank=1)),
    "rank2": ("attention, rank 2", dict(head="attention", rank=2)),
    "rank5": ("attention, rank 5", dict(head="attention", rank=5)),
    "class_specific": ("attention, class-specific bottom-up",
                       dict(head="attention", rank=1, class_specific_bottom_up=True)),
    "pose": ("pose-regularised attention", dict(head="pose_attention")),
    "second_order": ("second-order pooling (256-d projection)", dict(head="second_order")),
}
LATENCY_BATCH = 8
# The demo's default budget: 150 steps of batch 16 (2,400 clips, 7 epochs of the 350 train
# clips; the preset's learning-rate decays come at a third of the steps each), 8 test frames
# per video, and an evaluation every 50 steps (the curves). With the default rows (average
# pooling and rank-1 attention), 5 seeds and both settings (20 runs, plus the source task
# trained once) the default run fits in 45 minutes on 2 CPU cores (docs/benchmark_times.md
# has the last measured time).
DEMO_STEPS = 150
DEMO_BATCH = 16
DEMO_TEST_FRAMES = 8
DEMO_EVAL_EVERY = 50
DEFAULT_VARIANTS = ("avg", "rank1")
# What the paper claims of each row against average pooling (Table 1 and Sec. 4: attention
# of rank 1, 2 and 5 and pose-regularised attention beat it on MPII and HMDB51); None: the
# paper makes no such claim.
CLAIMS = {"rank1": "higher", "rank2": "higher", "rank5": "higher", "pose": "higher",
          "class_specific": None, "second_order": None}
CONFIDENCE = 0.95
# The pretrained setting: the tiny backbone trained once on the five digits the demo does not
# use (5-9, same clutter, same layout), then fine-tuned on the demo's 0-4 with the demo's
# recipe, as ImageNet features are fine-tuned on HMDB51.
SOURCE_FIRST_DIGIT = 5
SOURCE_STEPS = 240
# Part of every run's and the source task's name: raised when a library change alters what
# the same config trains (2: the tiny backbone's batch-norm momentum 0.9), so that runs
# finished before it are trained again rather than reused.
RESULTS_VERSION = 2


def _digest(value) -> str:
    """The first 8 hex digits of the SHA-1 of `value` (JSON) with RESULTS_VERSION."""
    return hashlib.sha1(json.dumps([RESULTS_VERSION, value], sort_keys=True)
                        .encode()).hexdigest()[:8]


def base_overrides(dataset: str = "demo", data_dir: Optional[str] = None,
                   steps: Optional[int] = None, batch_size: Optional[int] = None,
                   test_frames: Optional[int] = None, workers: Optional[int] = None,
                   eval_every: Optional[int] = None) -> dict:
    """The config overrides every row shares (None: the preset's; for the demo, the
    DEMO_* budget). `ablate.py`, `resolution.py` and `docs/make_docs.py` all make them
    here, so that they name the same runs (the workdir names hash the whole config)."""
    demo = dataset == "demo"
    return {"dataset": dataset,
            "steps": steps or (DEMO_STEPS if demo else None),
            "batch_size": batch_size or (DEMO_BATCH if demo else None),
            "test_frames": test_frames or (DEMO_TEST_FRAMES if demo else None),
            "eval_every": eval_every if eval_every is not None else (
                DEMO_EVAL_EVERY if demo else None),
            "workers": workers,
            "data_dir": data_dir and os.path.abspath(os.path.expanduser(data_dir))}


def dataset_metric(dataset: str) -> str:
    """`evaluation.dataset_metric` (imported when asked: it loads TensorFlow, which the
    tools' flag errors come before)."""
    from keras_attnpool.trainer.evaluation import dataset_metric as metric

    return metric(dataset)


def variant_config(base: dict, variant: str, seed: int, root: str,
                   image_size: Optional[int] = None) -> ExperimentConfig:
    """The preset of `base["dataset"]` with the variant's head, the seed and a workdir named
    by the variant, input size, seed and a hash of the whole config."""
    overrides = {**base, **VARIANTS[variant][1], "seed": seed}
    if image_size is not None:
        # Frames are upsampled to the new size rather than cropped from a larger frame.
        overrides.update(image_size=image_size, resize_short=image_size)
    config = make_config(**overrides)
    name = f"{variant}_{config.image_size}px_seed{seed}_{_digest(dataclasses.asdict(config))}"
    return dataclasses.replace(config, workdir=os.path.join(root, name))


def finished_metrics(config: ExperimentConfig) -> Optional[dict]:
    """The metrics of a finished run of exactly this config, or None."""
    from keras_attnpool import files
    from keras_attnpool.workdir import Workdir

    workdir = Workdir(config.workdir)
    if files.read_json(workdir.config_path) != config.to_json():
        return None
    return workdir.read_metrics()


def train_and_score(config: ExperimentConfig, log: Callable[[str], None] = print) -> dict:
    """Runs (or reuses) one experiment and returns its test metrics."""
    from keras_attnpool.trainer import experiment

    metrics = finished_metrics(config)
    if metrics is not None:
        log(f"  reusing {config.workdir}")
        return metrics
    start = time.perf_counter()
    result = experiment.run_experiment(config, export_model=False, verbose=False,
                                       log=lambda message: None)
    log(f"  trained in {time.perf_counter() - start:.0f} s: {config.workdir}")
    return result["metrics"]


def records_have_keypoints(records_dir: str, max_records: int = 32) -> bool:
    """Whether any of the first training records carries keypoints."""
    import tensorflow as tf

    from keras_attnpool.data.input import pipeline
    from keras_attnpool.data.records.schema import parse_example

    files = pipeline.split_record_files(records_dir, "train")
    for serialized in tf.data.TFRecordDataset(files[:4]).take(max_records):
        if int(tf.size(parse_example(serialized)["keypoints"].flat_values)) > 0:
            return True
    return False


def _head_input(head: str, features: dict):
    return [features["pose"], features["final"]] if head == "pose_attention" else (
        features["final"])


def _timed(function, inputs) -> float:
    import tensorflow as tf

    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy(), function(inputs))
    return time.perf_counter() - start


def head_costs(configs: Dict[str, ExperimentConfig], num_classes: int,
               repeats: int = 15) -> Dict[str, dict]:
    """{variant: {"params", "latency_ratio", "latency_ms"}} for the head layers alone on the
    backbone's features; ratios to the "avg" variant, paired within interleaved repeats.
    """
    import tensorflow as tf

    from keras_attnpool.trainer import experiment

    heads, inputs = {}, {}
    for name, config in configs.items():
        model = experiment.build_model(config, num_classes, clip=False)
        layer = model.get_layer(f"{config.head}_head")
        images = np.random.default_rng(0).uniform(
            0, 255, (LATENCY_BATCH, config.image_size, config.image_size, 3)).astype("float32")
        features = model.get_layer(f"{config.backbone}_backbone")(images, training=False)
        inputs[name] = _head_input(config.head, features)
        heads[name] = (layer, tf.function(lambda x, layer=layer: layer(x, training=False)))
        _timed(heads[name][1], inputs[name])  # trace and warm up
    times = {name: [] for name in heads}
    order = list(heads)
    for _ in range(repeats):
        order = order[1:] + order[:1]
        for name in order:
            times[name].append(min(_timed(heads[name][1], inputs[name]) for _ in range(5)))
    reference = times["avg"]
    return {name: {"params": heads[name][0].count_params(),
                   "latency_ms": 1e3 * statistics.median(times[name]),
                   "latency_ratio": statistics.median(
                       a / b for a, b in zip(times[name], reference))}
            for name in heads}


def summarize(values: Sequence[float]) -> str:
    """'mean ± sd' over seeds (sd: sample standard deviation; '± n/a' for one seed)."""
    mean = statistics.fmean(values)
    spread = f"{statistics.stdev(values):.3f}" if len(values) > 1 else "n/a"
    return f"{mean:.3f} ± {spread}"


def paired_interval(values: Sequence[float], reference: Sequence[float],
                    confidence: float = CONFIDENCE) -> tuple:
    """(mean, low, high) of the per-seed differences values - reference: the mean and its
    two-sided `confidence` interval by the paired t distribution (n - 1 degrees of
    freedom); low and high are NaN for fewer than two seeds."""
    from scipy import stats

    differences = [a - b for a, b in zip(values, reference)]
    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return mean, float("nan"), float("nan")
    half = (stats.t.ppf(0.5 + confidence / 2, len(differences) - 1)
            * statistics.stdev(differences) / len(differences) ** 0.5)
    return mean, mean - half, mean + half


def verdict(claim: Optional[str], low: float, high: float) -> str:
    """What the interval says of the paper's claim ("higher" than average pooling)."""
    if claim is None:
        return "no claim in the paper"
    if not (np.isfinite(low) and np.isfinite(high)):
        return "not resolved at this budget"
    if low > 0:
        return "agrees with the paper"
    if high < 0:
        return "disagrees with the paper"
    return "not resolved at this budget"


def _difference_cells(row: dict) -> str:
    reference, variant = row.get("reference"), row.get("variant")
    if reference is None or variant == "avg":
        return "— | — | —"
    mean, low, high = paired_interval(row["values"], reference)
    claim = CLAIMS.get(variant)
    said = {"higher": "higher than avg", None: "—"}[claim]
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}] | {said} | {verdict(claim, low, high)}"


def markdown_table(rows: List[dict], metric: str, seeds: Sequence[int],
                   first_column: str = "head") -> str:
    """One Markdown table: rows of {"name", "values", "params", "latency_ratio",
    "latency_ms"}, with "variant" and "reference" (average pooling's values per seed) for
    the paired difference, its interval and the verdict."""
    lines = [f"| {first_column} | {metric} (mean ± sd) | {metric} per seed ("
             f"{', '.join(map(str, seeds))}) | − avg, paired ({CONFIDENCE:.0%} CI) | "
             "paper | verdict | head params | head latency / avg | head ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['name']} | {summarize(row['values'])} | "
                     f"{' '.join(f'{v:.3f}' for v in row['values'])} | "
                     f"{_difference_cells(row)} | "
                     f"{row['params']:,} | {row['latency_ratio']:.2f} | "
                     f"{row['latency_ms']:.3f} |")
    return "\n".join(lines)


def describe(config: ExperimentConfig, seeds: Sequence[int], metric: str,
             feature_sizes: str) -> str:
    """The line under a table that says what was measured."""
    import tensorflow as tf

    return (f"{config.dataset}: {config.backbone} backbone, {feature_sizes} feature map, "
            f"{config.steps} steps of batch {config.batch_size} ({config.optimizer}, lr "
            f"{config.learning_rate}), {len(seeds)} seeds ({', '.join(map(str, seeds))}); "
            f"{metric} on the test split ({config.test_frames} frames per video), last "
            f"checkpoint; − avg: the mean per-seed difference to average pooling (same "
            f"seed), with its {CONFIDENCE:.0%} interval by the paired t distribution; a "
            "verdict agrees or disagrees when that interval excludes 0; latency: "
            f"head alone, batch {LATENCY_BATCH}, median of paired ratios; "
            f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}.")


def ablation_rows(base: dict, variants: Sequence[str], seeds: Sequence[int], root: str,
                  repeats: int, log: Callable[[str], None] = print,
                  image_size: Optional[int] = None, row_prefix: str = "") -> tuple:
    """Trains every (variant, seed) and measures the heads; returns (rows, a config).
    Each row has "workdirs" (its runs') and "reference" (average pooling's values)."""
    from keras_attnpool.trainer import experiment

    configs = {v: variant_config(base, v, seeds[0], root, image_size)
               for v in ["avg"] + list(variants)}
    manifest = experiment.prepare_records(configs["avg"], log=lambda m: None)
    rows = []
    for variant in variants:
        values, workdirs = [], []
        for seed in seeds:
            log(f"{row_prefix}{variant}, seed {seed}")
            config = variant_config(base, variant, seed, root, image_size)
            values.append(float(train_and_score(config, log)[dataset_metric(base["dataset"])]))
            workdirs.append(config.workdir)
        name = VARIANTS[variant][0]
        rows.append({"name": row_prefix + name, "values": values, "variant": variant,
                     "workdirs": workdirs})
    costs = head_costs(configs, len(manifest["classes"]), repeats)
    reference = next((row["values"] for row in rows if row["variant"] == "avg"), None)
    for row, variant in zip(rows, variants):
        row.update(costs[variant], reference=reference)
    return rows, configs["avg"]


def source_weights(root: str, data_dir: str, log: Callable[[str], None] = print,
                   steps: int = SOURCE_STEPS) -> str:
    """The tiny backbone trained on the source task (cluttered digits from 5, as many
    classes and clips as the demo dataset in `data_dir` has, made once under `root`),
    saved as a weights file that `--weights=FILE` loads; reused when present."""
    from keras_attnpool import files
    from keras_attnpool.data.synthetic.demo import make_demo_dataset
    from keras_attnpool.models import get_backbone_spec
    from keras_attnpool.workdir import Workdir

    from keras_attnpool.data.synthetic.demo import COMPLETE

    demo = make_config("demo")
    made = files.read_json(os.path.join(data_dir, COMPLETE)) or {}
    sizes = {k: made[k] for k in ("num_classes", "clips_per_class", "num_frames",
                                  "num_fragments", "seed") if k in made}
    source = os.path.join(root, f"source_digits{SOURCE_FIRST_DIGIT}+_{_digest(sizes)}")
    path = os.path.join(source, f"tiny_{demo.image_size}px_{steps}steps.weights.h5")
    if os.path.isfile(path):
        return path
    data = make_demo_dataset(os.path.join(source, "data"), first_digit=SOURCE_FIRST_DIGIT,
                             **sizes)
    config = make_config("demo", data_dir=data, head="avg", steps=steps,
                         workdir=os.path.join(source, "run"))
    log(f"Source task: training the tiny backbone on digits {SOURCE_FIRST_DIGIT}-9")
    metrics = train_and_score(config, log)
    model = Workdir(config.workdir).load_model()
    network = get_backbone_spec("tiny").constructor(
        input_shape=(demo.image_size, demo.image_size, 3), include_top=False, weights=None)
    network.set_weights(model.get_layer("tiny_backbone").get_weights())
    files.atomic_write(path, network.save_weights, suffix=".weights.h5")
    log(f"Source task: top1 {metrics['top1']:.3f} on its own test clips; weights {path}")
    return path


def settings(base: dict, root: str, log: Callable[[str], None] = print,
             source_steps: int = SOURCE_STEPS) -> List[tuple]:
    """(label, base overrides) of the ablation's two settings: from random weights, and
    fine-tuned from the source task's backbone (the demo only: elsewhere the preset's own
    start, ImageNet for the real datasets, is the one setting)."""
    if base["dataset"] != "demo":
        return [("", base)]
    from keras_attnpool.data.synthetic import demo

    weights = source_weights(root, base.get("data_dir") or demo.default_root(), log,
                             source_steps)
    return [("from scratch: ", base),
            ("fine-tuned from the source task: ", {**base, "weights": weights})]


def curves_figure(rows: List[dict], metric: str, path: str) -> str:
    """One PNG of the rows' evaluation curves during training (`--eval_every`), each the
    mean over its seeds at the steps they share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keras_attnpool.workdir import Workdir

    figure, axis = plt.subplots(figsize=(7, 4.2))
    for row in rows:
        curves = [dict(Workdir(w).read_eval_curves().get(metric, [])) for w in row["workdirs"]]
        steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
        if steps:
            axis.plot(steps, [statistics.fmean(c[s] for c in curves) for s in steps],
                      marker="o", label=row["name"],
                      linestyle="--" if row["name"].startswith("fine-tuned") else "-")
    axis.set_xlabel("training step")
    axis.set_ylabel(f"{metric} (mean over seeds)")
    axis.set_title("Evaluations during training")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def ablation_table(base: dict, variants: List[str], seeds: Sequence[int], root: str,
                   repeats: int, log: Callable[[str], None] = print,
                   curves: Optional[str] = None, source_steps: int = SOURCE_STEPS) -> str:
    """`ablate.py`'s output: the table of every variant in each setting and the lines
    saying what ran; with `curves`, the evaluation curves as a PNG there. The pose row is
    left out when the records carry no keypoints."""
    from keras_attnpool.models import get_backbone_spec
    from keras_attnpool.trainer import experiment

    reference = variant_config(base, "avg", seeds[0], root)
    experiment.prepare_records(reference, log=log)
    records = reference.records_dir
    if "pose" in variants and not records_have_keypoints(records):
        log(f"No keypoints in {records}: leaving out the pose-regularised row.")
        variants = [v for v in variants if v != "pose"]
    rows, config = [], reference
    for label, setting in settings(base, root, log, source_steps):
        setting_rows, config = ablation_rows(setting, variants, seeds, root, repeats, log,
                                             row_prefix=label)
        rows += setting_rows
    metric = dataset_metric(base["dataset"])
    if curves and config.eval_every:
        log(f"Curves: {curves_figure(rows, metric, curves)}")
    side = get_backbone_spec(config.backbone).feature_size(config.image_size)
    text = markdown_table(rows, metric, seeds) + "\n\n" + describe(
        config, seeds, metric, f"{side}x{side}")
    if base["dataset"] == "demo":
        text += (f" Fine-tuned: the same recipe from the tiny backbone trained "
                 f"{source_steps} steps (average pooling) on cluttered digits from "
                 f"{SOURCE_FIRST_DIGIT}, classes the demo does not have.")
    return text


# ----------------------------------------------------------------- resolution
RESOLUTION_HEADS = ("avg", "rank1")


def gain_row(size_label: str, avg: dict, attention: dict) -> dict:
    """The per-seed gain of attention over average pooling, as a table row (its cost
    columns are attention's extra parameters and attention's latency)."""
    gains = [a - b for a, b in zip(attention["values"], avg["values"])]
    return {"name": f"{size_label}: attention − avg", "values": gains,
            "params": attention["params"] - avg["params"],
            "latency_ratio": attention["latency_ratio"], "latency_ms": attention["latency_ms"]}


def resolution_rows(base: dict, sizes: Sequence[int], seeds: Sequence[int], root: str,
                    repeats: int) -> tuple:
    """Rows for every size (ascending): avg pooling, attention rank 1 and the gain; and
    (config, map size) per size. The largest size is trained first, so that `ablate.py`
    running beside this has finished the preset-size runs by the time they are reused."""
    from keras_attnpool.models import get_backbone_spec

    by_size = {}
    for size in sorted(sizes, reverse=True):
        config = variant_config(base, "avg", seeds[0], root, size)
        side = get_backbone_spec(config.backbone).feature_size(size)
        label = f"{size} px ({side}x{side})"
        size_rows, config = ablation_rows(base, list(RESOLUTION_HEADS), seeds, root, repeats,
                                          image_size=size, row_prefix=f"{label}: ")
        by_size[size] = (size_rows + [gain_row(label, *size_rows)], (config, f"{side}x{side}"))
    rows: List[dict] = [row for size in sorted(by_size) for row in by_size[size][0]]
    return rows, [by_size[size][1] for size in sorted(by_size)]


def resolution_table(base: dict, sizes: Sequence[int], seeds: Sequence[int], root: str,
                     repeats: int) -> str:
    """`resolution.py`'s output: avg pooling, rank-1 attention and the gain at each size."""
    rows, configs = resolution_rows(base, sizes, seeds, root, repeats)
    metric = dataset_metric(base["dataset"])
    sides = " / ".join(side for _, side in configs)
    return (markdown_table(rows, metric, seeds, first_column="input size: head") + "\n\n"
            + describe(configs[0][0], seeds, metric, sides)
            + " Frames are resized to each input size.")


def write_output(text: str, out: Optional[str]) -> None:
    """Prints `text` and, with `out`, also writes it to that file."""
    print(text)
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as f:
            f.write(text + "\n")
