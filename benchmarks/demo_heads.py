"""Attention against average pooling on the built-in demo, at an equal budget.

    python benchmarks/demo_heads.py                      # 3 seeds x 2 heads
    python benchmarks/demo_heads.py --seeds=0,1 --heads=attention,avg,pose_attention

Each run is `training/fit.py`'s library path (`run_experiment`) on the demo preset: same data,
steps, batch and optimizer for every head, only the head and the seed change. Runs are
interleaved (seed by seed, heads in turn). Prints test top-1 (clip level, the demo's 16
frames averaged) per seed, the mean and the spread, the difference per seed, and each run's
wall time.
"""

import os
import statistics
import tempfile
import time

from absl import flags

from keras_attnpool import cli
from keras_attnpool.trainer.presets import PRESETS

_SEEDS = flags.DEFINE_list("seeds", "0,1,2", "Comma-separated seeds.")
_HEADS = flags.DEFINE_list("heads", "attention,avg", "Comma-separated heads, from "
                           "keras_attnpool.models.HEADS.")
_STEPS = flags.DEFINE_integer("steps", PRESETS["demo"]["steps"], "Training steps of every run.",
                              lower_bound=1)
_WORKDIR = flags.DEFINE_string("workdir", None, "Root of the runs' workdirs (default: a "
                               "temporary folder).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Demo data (default: the usual one).")
_DROPOUT = flags.DEFINE_float("dropout", None, "Head dropout override.")


def _checked_flags(heads: tuple) -> tuple:
    """(seeds, heads) from the flags; `heads` are the accepted ones. Exits 2 on a bad one."""
    try:
        seeds = [int(s) for s in _SEEDS.value]
    except ValueError:
        cli.fail(f"--seeds={','.join(_SEEDS.value)}: give comma-separated integers, "
                 "e.g. --seeds=0,1,2")
    if not seeds:
        cli.fail("--seeds is empty; e.g. --seeds=0,1,2")
    unknown = [h for h in _HEADS.value if h not in heads]
    if unknown or not _HEADS.value:
        cli.fail(f"--heads={','.join(_HEADS.value)}: unknown or empty; accepted: "
                 f"{', '.join(heads)}")
    return seeds, list(_HEADS.value)


def _print_table(results: dict, seeds: list, steps: int, num_examples: int) -> None:
    print(f"\ndemo, {steps} steps per run, test clips: {num_examples}")
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


def main(argv):
    del argv
    with cli.quiet_native_logs():
        import keras

        from keras_attnpool.models import HEADS
        from keras_attnpool.trainer.experiment import run_experiment
        from keras_attnpool.trainer.presets import make_config

    seeds, heads = _checked_flags(HEADS)

    base = _WORKDIR.value or tempfile.mkdtemp(prefix="demo_heads_")
    results = {head: {} for head in heads}
    start_all = time.perf_counter()
    for seed in seeds:
        for head in heads:
            keras.backend.clear_session()
            config = make_config("demo", workdir=os.path.join(base, f"{head}_seed{seed}"),
                                 head=head, seed=seed, steps=_STEPS.value,
                                 data_dir=_DATA_DIR.value, dropout=_DROPOUT.value)
            start = time.perf_counter()
            run = run_experiment(config, export_model=False, verbose=False, log=lambda m: None)
            top1 = run["metrics"]["top1"]
            results[head][seed] = top1
            print(f"seed {seed}  {head:<15} top-1 {top1:.3f}  "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    _print_table(results, seeds, _STEPS.value, run["metrics"]["num_examples"])
    print(f"{len(seeds) * len(heads)} runs: {time.perf_counter() - start_all:.0f} s wall time "
          f"on {os.cpu_count()} CPU cores")


if __name__ == "__main__":
    cli.run(main)
