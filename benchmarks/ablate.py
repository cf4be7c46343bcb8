r"""The paper's ablation as one command: every pooling variant trained at an equal budget.

    python benchmarks/ablate.py                       # the demo, 2 seeds: see below
    python benchmarks/ablate.py --seeds=1,2,3 --steps=600 --out=ablation.md
    python benchmarks/ablate.py --dataset=hmdb51 --data_dir=~/data/hmdb51 --seeds=1

Rows (Girdhar & Ramanan 2017, Sec. 4 and Table 1's analysis): average pooling, attention of
rank 1, 2 and 5, class-specific bottom-up attention, pose-regularised attention (only where
the records carry keypoints: the demo does, HMDB51 with OpenPose output does) and full
second-order pooling (projected to 256 channels first, as `run_experiment` builds it).
Every row is the dataset's preset (`make_config(dataset)`, so the same command follows the
preset when it changes) with the same steps, batch and seeds; only the head differs.

Columns: the dataset's metric (top-1 for videos, mAP for MPII/HICO) as mean ± sample
standard deviation over the seeds, with each seed's value; the head's parameters; and the
head's latency ratio to average pooling: the head layer alone on the backbone's features
(batch 8), timed in interleaved repeats (each repeat times every head once, in a rotating
order, best of 5 calls), the ratio taken within each repeat and its median reported.

Time on the demo (400 steps, 2 seeds, 14 runs): 35 min of wall time (17 min of CPU time)
on 2 CPU cores shared with other jobs (load ~8); about 20 minutes on 2 idle cores. The
preset's length (600 steps) or a third seed (--seeds=1,2,3) add half as much again each.

Pose-regularised attention on video datasets: the heatmap loss of a clip is the mean over
its frames (`losses.masked_heatmap_loss`).

Each run's workdir is `<workdir>/<variant>_<size>px_seed<seed>_<config hash>`; a finished
run (metrics.json beside the same config.json) is reused, so rerunning after an interruption
only trains what is missing, and `benchmarks/resolution.py` reuses the preset-size rows.
"""

import argparse
import dataclasses
import hashlib
import json
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_attnpool.data import pipeline  # noqa: E402
from keras_attnpool.data.record_format import parse_example  # noqa: E402
from keras_attnpool.trainer import experiment  # noqa: E402
from keras_attnpool.trainer.presets import DATASETS, ExperimentConfig, make_config  # noqa: E402

# Row name -> the config fields that make the variant (everything else is the preset's).
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
# The demo preset's own length (600 steps) x 7 rows x 2 seeds takes ~36 min on 2 shared
# cores; 400 steps (past both learning-rate decays) keeps the default run under 30 minutes.
DEMO_STEPS = 400


def dataset_metric(dataset: str) -> str:
    """The metric the paper reports for a dataset: mAP for MPII and HICO, top-1 otherwise."""
    return "mAP" if dataset in ("mpii", "hico") else "top1"


def variant_config(base: dict, variant: str, seed: int, root: str,
                   image_size: Optional[int] = None) -> ExperimentConfig:
    """The preset of `base["dataset"]` with the variant's head, the seed and a workdir named
    by the variant, input size, seed and a hash of the whole config."""
    overrides = {**base, **VARIANTS[variant][1], "seed": seed}
    if image_size is not None:
        # Frames are upsampled to the new size rather than cropped from a larger frame.
        overrides.update(image_size=image_size, resize_short=image_size)
    config = make_config(**overrides)
    digest = hashlib.sha1(json.dumps(dataclasses.asdict(config), sort_keys=True)
                          .encode()).hexdigest()[:8]
    name = f"{variant}_{config.image_size}px_seed{seed}_{digest}"
    return dataclasses.replace(config, workdir=os.path.join(root, name))


def finished_metrics(config: ExperimentConfig) -> Optional[dict]:
    """The metrics of a finished run of exactly this config, or None."""
    workdir = experiment.config_workdir(config)
    paths = [os.path.join(workdir, name) for name in ("config.json", "metrics.json")]
    if not all(os.path.exists(p) for p in paths):
        return None
    with open(paths[0]) as f:
        # Compared as JSON: config.json holds lists where the config has tuples.
        if json.load(f) != json.loads(json.dumps(dataclasses.asdict(config))):
            return None
    with open(paths[1]) as f:
        return json.load(f)


def train_and_score(config: ExperimentConfig, log: Callable[[str], None] = print) -> dict:
    """Runs (or reuses) one experiment and returns its test metrics."""
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
    files = pipeline.split_record_files(records_dir, "train")
    for serialized in tf.data.TFRecordDataset(files[:4]).take(max_records):
        if int(tf.size(parse_example(serialized)["keypoints"].flat_values)) > 0:
            return True
    return False


def _head_input(head: str, features: dict):
    return [features["pose"], features["final"]] if head == "pose_attention" else (
        features["final"])


def _timed(function, inputs) -> float:
    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy(), function(inputs))
    return time.perf_counter() - start


def head_costs(configs: Dict[str, ExperimentConfig], num_classes: int,
               repeats: int = 15) -> Dict[str, dict]:
    """{variant: {"params", "latency_ratio", "latency_ms"}} for the head layers alone on the
    backbone's features; ratios to the "avg" variant, paired within interleaved repeats.
    """
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


def markdown_table(rows: List[dict], metric: str, seeds: Sequence[int],
                   first_column: str = "head") -> str:
    """One Markdown table: rows of {"name", "values", "params", "latency_ratio"}."""
    lines = [f"| {first_column} | {metric} (mean ± sd) | {metric} per seed ("
             f"{', '.join(map(str, seeds))}) | head params | head latency / avg | head ms |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['name']} | {summarize(row['values'])} | "
                     f"{' '.join(f'{v:.3f}' for v in row['values'])} | "
                     f"{row['params']:,} | {row['latency_ratio']:.2f} | "
                     f"{row['latency_ms']:.3f} |")
    return "\n".join(lines)


def describe(config: ExperimentConfig, seeds: Sequence[int], metric: str,
             feature_sizes: str) -> str:
    """The line under a table that says what was measured."""
    return (f"{config.dataset}: {config.backbone} backbone, {feature_sizes} feature map, "
            f"{config.steps} steps of batch {config.batch_size} ({config.optimizer}, lr "
            f"{config.learning_rate}), {len(seeds)} seeds ({', '.join(map(str, seeds))}); "
            f"{metric} on the test split ({config.test_frames} frames per video); latency: "
            f"head alone, batch {LATENCY_BATCH}, median of paired ratios; "
            f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}.")


def ablation_rows(base: dict, variants: Sequence[str], seeds: Sequence[int], root: str,
                  repeats: int, log: Callable[[str], None] = print,
                  image_size: Optional[int] = None, row_prefix: str = "") -> tuple:
    """Trains every (variant, seed) and measures the heads; returns (rows, a config)."""
    configs = {v: variant_config(base, v, seeds[0], root, image_size)
               for v in ["avg"] + list(variants)}
    manifest = experiment.prepare_records(configs["avg"], log=lambda m: None)
    rows = []
    for variant in variants:
        values = []
        for seed in seeds:
            log(f"{row_prefix}{variant}, seed {seed}")
            config = variant_config(base, variant, seed, root, image_size)
            values.append(float(train_and_score(config, log)[dataset_metric(base["dataset"])]))
        name = VARIANTS[variant][0]
        rows.append({"name": row_prefix + name, "values": values})
    costs = head_costs(configs, len(manifest["classes"]), repeats)
    for row, variant in zip(rows, variants):
        row.update(costs[variant])
    return rows, configs["avg"]


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (resolution.py adds --sizes)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="demo", choices=DATASETS)
    parser.add_argument("--data_dir", default=None, help="the dataset's folder (demo: where "
                        "to make it; default ~/.keras_attnpool/demo)")
    parser.add_argument("--workdir", default=None, help="root of the runs' workdirs "
                        "(default workdir/ablate_DATASET)")
    parser.add_argument("--steps", type=int, default=None, help="training steps of every "
                        f"row (default: the preset's; {DEMO_STEPS} for the demo)")
    parser.add_argument("--seeds", default="1,2", help="comma-separated seeds")
    parser.add_argument("--batch_size", type=int, default=None)
    parser.add_argument("--test_frames", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None, help="prepare's processes")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated variants (default: all)")
    parser.add_argument("--repeats", type=int, default=15, help="latency repeats")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    return parser


def check_args(args: argparse.Namespace) -> tuple:
    """(base overrides, seeds, variants) from the arguments; exits 2 on a bad one."""
    def bad(message: str):
        print(f"ablate.py: error: {message}", file=sys.stderr)
        sys.exit(2)

    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        bad(f"--seeds={args.seeds}: give comma-separated integers, e.g. --seeds=1,2,3")
    if not seeds:
        bad("--seeds is empty")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        bad(f"--variants={args.variants}: unknown {', '.join(unknown)}; accepted: "
            f"{', '.join(VARIANTS)}")
    if "avg" not in variants:
        variants.insert(0, "avg")  # the reference of the latency ratio
    if args.dataset != "demo" and not args.data_dir:
        bad(f"--data_dir is required for --dataset={args.dataset}")
    steps = args.steps or (DEMO_STEPS if args.dataset == "demo" else None)
    base = {"dataset": args.dataset, "steps": steps, "batch_size": args.batch_size,
            "test_frames": args.test_frames, "workers": args.workers,
            "data_dir": args.data_dir and os.path.abspath(os.path.expanduser(args.data_dir))}
    return base, seeds, variants


def write_output(text: str, out: Optional[str]) -> None:
    print(text)
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as f:
            f.write(text + "\n")


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    base, seeds, variants = check_args(args)
    root = os.path.abspath(args.workdir or os.path.join("workdir", f"ablate_{args.dataset}"))
    records = experiment.prepare_records(variant_config(base, "avg", seeds[0], root),
                                         log=print)["records_dir"]
    if "pose" in variants and not records_have_keypoints(records):
        print(f"No keypoints in {records}: leaving out the pose-regularised row.")
        variants.remove("pose")
    rows, config = ablation_rows(base, variants, seeds, root, args.repeats)
    metric = dataset_metric(args.dataset)
    from keras_attnpool.models import get_backbone_spec

    side = get_backbone_spec(config.backbone).feature_size(config.image_size)
    text = (markdown_table(rows, metric, seeds) + "\n\n"
            + describe(config, seeds, metric, f"{side}x{side}"))
    write_output(text, args.out)


if __name__ == "__main__":
    main()
