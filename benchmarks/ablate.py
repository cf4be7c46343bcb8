r"""The paper's ablation as one command: every pooling variant trained at an equal budget.

    python benchmarks/ablate.py                       # the demo: 2 heads x 5 seeds x 2 settings
    python benchmarks/ablate.py --variants=avg,rank1,rank2,rank5,class_specific,pose,second_order
    python benchmarks/ablate.py --dataset=hmdb51 --data_dir=~/data/hmdb51 --seeds=1,2,3,4,5

Rows: average pooling, attention of rank 1, 2 and 5, class-specific bottom-up attention,
pose-regularised attention (where the records carry keypoints) and second-order pooling
(default: average pooling and rank-1 attention, the paper's central comparison); every row
is the dataset's preset with the same steps, batch and seeds, only the head differing
(`ablation.py` says how each row is built).

Settings (the demo): from scratch, and fine-tuned from a pretrained backbone, as the paper
fine-tunes ImageNet features: the tiny backbone trained once on the cluttered digits the
demo does not use (5-9), saved as a weights file, then trained with the demo's recipe on
its digits 0-4 (`ablation.source_weights`). Real datasets run their preset's start.

Columns: the dataset's metric (top-1 for videos, mAP for MPII/HICO) as mean ± sample
standard deviation over the seeds, with each seed's value; the mean paired difference to
average pooling (the same seed is a pair) with its 95% interval by the paired t
distribution; the paper's claim and the verdict (agrees or disagrees when the interval
excludes 0, else not resolved at this budget); the head's parameters; and the head's
latency ratio to average pooling: the head layer alone on the backbone's features (batch
8), timed in interleaved repeats (each repeat times every head once, in a rotating order,
best of 5 calls), the ratio taken within each repeat and its median reported.

Every run evaluates during training (`--eval_every`, on the test split: the curves only;
the table scores the last checkpoint), and `--curves` draws the rows' mean curves. The
demo's default budget (`ablation.DEMO_*`: 150 steps of batch 16, 8 test frames, the source
task 240 steps) keeps the default run (20 runs and the source task) within 45 minutes on 2
CPU cores (docs/benchmark_times.md has the last measured time).

Pose-regularised attention on video datasets: the heatmap loss of a clip is the mean over
its frames (`losses.masked_heatmap_loss`).

Each run's workdir is `<workdir>/<variant>_<size>px_seed<seed>_<config hash>`; a finished
run (metrics.json beside the same config.json) is reused, so rerunning after an interruption
only trains what is missing, and `benchmarks/resolution.py` reuses the preset-size rows.
"""

import os
import time
from typing import List, NamedTuple, Optional

from absl import flags, logging

from ablation import (DEFAULT_VARIANTS, DEMO_EVAL_EVERY, DEMO_STEPS, SOURCE_STEPS, VARIANTS,
                      ablation_table, base_overrides, write_output)
from keras_attnpool import cli
from keras_attnpool.trainer.config import DATASETS

_DATASET = flags.DEFINE_enum("dataset", "demo", DATASETS, "The dataset to ablate on.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "The dataset's folder (demo: where to make "
                                "it; default ~/.keras_attnpool/demo).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Root of the runs' workdirs (default "
                               "workdir/ablate_DATASET).")
_STEPS = flags.DEFINE_integer("steps", None, "Training steps of every row (default: the "
                              f"preset's; {DEMO_STEPS} for the demo).", lower_bound=1)
_SEEDS = flags.DEFINE_list("seeds", "1,2,3,4,5", "Comma-separated seeds (at least 2 for "
                           "an interval).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Batch of every row (default: the "
                                   "preset's).", lower_bound=1)
_TEST_FRAMES = flags.DEFINE_integer("test_frames", None, "Frames per test video (default: "
                                    "the preset's).", lower_bound=1)
_WORKERS = flags.DEFINE_integer("workers", None, "Prepare's processes.", lower_bound=0)
_VARIANTS = flags.DEFINE_list("variants", ",".join(DEFAULT_VARIANTS), "Comma-separated "
                              f"variants: {', '.join(VARIANTS)}.")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", None, "Evaluations during training every N "
                                   f"steps, for the curves (default {DEMO_EVAL_EVERY} for "
                                   "the demo, none otherwise; 0: none).", lower_bound=0)
_SOURCE_STEPS = flags.DEFINE_integer("source_steps", SOURCE_STEPS, "Training steps of the "
                                     "demo's source task (digits 5-9).", lower_bound=1)
_CURVES = flags.DEFINE_string("curves", None, "The PNG of the evaluation curves (default "
                              "WORKDIR/curves.png).")
_REPEATS = flags.DEFINE_integer("repeats", 15, "Latency repeats.", lower_bound=1)
_OUT = flags.DEFINE_string("out", None, "Also write the table to this file.")


class Options(NamedTuple):
    """What the flags ask for, checked: the rows' shared config overrides and the rest."""
    base: dict
    seeds: List[int]
    variants: List[str]
    root: str
    repeats: int
    out: Optional[str]
    curves: str


def checked_flags(variants: Optional[List[str]] = None) -> Options:
    """The flags as `Options` (`variants` replaces --variants); exits 2 on a bad one."""
    try:
        seeds = [int(s) for s in _SEEDS.value if s]
    except ValueError:
        cli.fail(f"--seeds={','.join(_SEEDS.value)}: give comma-separated integers, "
                 "e.g. --seeds=1,2,3")
    if not seeds:
        cli.fail("--seeds is empty")
    variants = [v for v in (_VARIANTS.value if variants is None else variants) if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        cli.fail(f"--variants={','.join(_VARIANTS.value)}: unknown {', '.join(unknown)}; "
                 f"accepted: {', '.join(VARIANTS)}")
    if "avg" not in variants:
        variants.insert(0, "avg")  # the reference of the latency ratio
    if _DATASET.value != "demo" and not _DATA_DIR.value:
        cli.fail(f"--data_dir is required for --dataset={_DATASET.value}")
    base = base_overrides(_DATASET.value, _DATA_DIR.value, _STEPS.value, _BATCH_SIZE.value,
                          _TEST_FRAMES.value, _WORKERS.value, _EVAL_EVERY.value)
    # resolution.py shares the root: the runs both tools train are reused, not retrained.
    root = os.path.abspath(_WORKDIR.value or os.path.join("workdir", f"ablate_{_DATASET.value}"))
    curves = os.path.abspath(_CURVES.value or os.path.join(root, "curves.png"))
    return Options(base, seeds, variants, root, _REPEATS.value, _OUT.value, curves)


def main(argv) -> None:
    del argv
    options = checked_flags()
    logging.set_verbosity(logging.WARNING)
    start = time.perf_counter()
    with cli.quiet_native_logs():  # TensorFlow loads here, its start-up lines hidden
        import keras_attnpool.trainer.experiment  # noqa: F401

    write_output(ablation_table(options.base, options.variants, options.seeds, options.root,
                                options.repeats, curves=options.curves,
                                source_steps=_SOURCE_STEPS.value), options.out)
    print(f"\n{time.perf_counter() - start:.0f} s wall time, {os.cpu_count()} CPU cores")


if __name__ == "__main__":
    cli.run(main)
