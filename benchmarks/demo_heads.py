"""Attention against average pooling on the built-in demo, at an equal budget.

    python benchmarks/demo_heads.py                      # 3 seeds x 2 heads, ~15 min, 2 CPUs
    python benchmarks/demo_heads.py --seeds=0,1 --heads=attention,avg,pose_attention

Each run is `training/fit.py`'s library path (`run_experiment`) on the demo preset: same data,
steps, batch and optimizer for every head, only the head and the seed change. Runs are
interleaved (seed by seed, heads in turn). Prints test top-1 (clip level, the demo's 16
frames averaged) per seed, the mean and the spread, and the difference per seed.
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from keras_attnpool.trainer.experiment import run_experiment  # noqa: E402
from keras_attnpool.trainer.presets import PRESETS, make_config  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--heads", default="attention,avg")
    parser.add_argument("--steps", type=int, default=PRESETS["demo"]["steps"])
    parser.add_argument("--workdir", default=None, help="default: a temporary folder")
    parser.add_argument("--data_dir", default=None, help="demo data (default: the usual one)")
    parser.add_argument("--dropout", type=float, default=None, help="head dropout override")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    heads = args.heads.split(",")
    base = args.workdir or tempfile.mkdtemp(prefix="demo_heads_")
    results = {head: {} for head in heads}
    for seed in seeds:
        for head in heads:
            keras.backend.clear_session()
            config = make_config("demo", workdir=os.path.join(base, f"{head}_seed{seed}"),
                                 head=head, seed=seed, steps=args.steps,
                                 data_dir=args.data_dir, dropout=args.dropout)
            start = time.perf_counter()
            run = run_experiment(config, export_model=False, verbose=False, log=lambda m: None)
            top1 = run["metrics"]["top1"]
            results[head][seed] = top1
            print(f"seed {seed}  {head:<15} top-1 {top1:.3f}  "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"\ndemo, {args.steps} steps per run, test clips: "
          f"{run['metrics']['num_examples']}")
    print(f"{'head':<15} {'top-1 per seed':<28} {'mean':>6} {'spread':>7}")
    for head, per_seed in results.items():
        values = [per_seed[s] for s in seeds]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{head:<15} {' '.join(f'{v:.3f}' for v in values):<28} "
              f"{statistics.mean(values):>6.3f} {spread:>7.3f}")
    if "attention" in results and "avg" in results:
        gaps = [results["attention"][s] - results["avg"][s] for s in seeds]
        wins = sum(g > 0 for g in gaps)
        print(f"attention - avg per seed: {' '.join(f'{g:+.3f}' for g in gaps)}; "
              f"attention ahead on {wins} of {len(seeds)} seeds")


if __name__ == "__main__":
    main()
