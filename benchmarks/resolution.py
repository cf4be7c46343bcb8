r"""Feature resolution: does attention help more when the feature map is larger?

    python benchmarks/resolution.py                   # the demo at 64 and 96 px
    python benchmarks/resolution.py --sizes=64,96,128 --seeds=1,2,3
    python benchmarks/resolution.py --dataset=mpii --data_dir=~/data/mpii --sizes=224,450

The paper (Sec. 4): attention gains most on large feature maps (ResNet-101 at 450 px, 15x15,
rather than 224 px, 7x7). This trains average pooling and rank-1 attention on the same task
at each input size (frames resized to the size, so the feature map grows with it: the tiny
backbone's 8x8 at 64 px, 12x12 at 96, 16x16 at 128) with `benchmarks/ablate.py`'s equal
budget, flags and table, and adds a row per size with attention's gain over average pooling.
Runs are shared with `ablate.py` (same workdir root and config: reused, not retrained).

The default sizes, 64 and 96 px (8x8 and 12x12 maps), keep the default run (5 seeds; the
64 px runs are ablate.py's) to about 30 minutes on 2 CPU cores after ablate.py: a step costs
about the square of the size, so 128 px (16x16, the paper's ratio of map sides) would take
about 4x ablate.py's from-scratch half, over an hour; ask for it with --sizes=64,96,128.
"""

import os
import time

from absl import flags

import ablate
from ablation import RESOLUTION_HEADS, resolution_table, write_output
from keras_attnpool import cli

# ablate.py's flags are this tool's too (shown in --help), except --variants: this trains
# its own two heads.
for _flag in flags.FLAGS.get_flags_for_module(ablate):
    if _flag.name != "variants":
        flags.declare_key_flag(_flag.name)
_SIZES = flags.DEFINE_list("sizes", "64,96", "Comma-separated input sizes in pixels.")


def _checked_sizes() -> list:
    try:
        sizes = sorted({int(s) for s in _SIZES.value if s})
    except ValueError:
        sizes = []
    if len(sizes) < 2 or min(sizes) < 8:
        cli.fail(f"--sizes={','.join(_SIZES.value)}: give two or more input sizes "
                 "(pixels, >= 8), e.g. --sizes=64,96,128")
    return sizes


def main(argv) -> None:
    del argv
    if flags.FLAGS["variants"].present:
        cli.fail(f"--variants does not apply to resolution.py (it trains "
                 f"{' and '.join(RESOLUTION_HEADS)}); remove it")
    options = ablate.checked_flags(variants=list(RESOLUTION_HEADS))
    sizes = _checked_sizes()
    start = time.perf_counter()
    with cli.quiet_native_logs():  # TensorFlow loads here, its start-up lines hidden
        import keras_attnpool.trainer.experiment  # noqa: F401

    write_output(resolution_table(options.base, sizes, options.seeds, options.root,
                                  options.repeats), options.out)
    print(f"\n{time.perf_counter() - start:.0f} s wall time, {os.cpu_count()} CPU cores")


if __name__ == "__main__":
    cli.run(main)
