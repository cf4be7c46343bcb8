r"""Feature resolution: does attention help more when the feature map is larger?

    python benchmarks/resolution.py                   # the demo at 64 and 128 px: ~30 min
    python benchmarks/resolution.py --sizes=64,96,128 --seeds=1,2,3
    python benchmarks/resolution.py --dataset=mpii --data_dir=~/data/mpii --sizes=224,450

The paper (Sec. 4): attention gains most on large feature maps (ResNet-101 at 450 px, 15x15,
rather than 224 px, 7x7). This trains average pooling and rank-1 attention on the same task
at each input size (frames resized to the size, so the feature map grows with it: the tiny
backbone's 8x8 at 64 px, 12x12 at 96, 16x16 at 128) with `benchmarks/ablate.py`'s equal
budget and table, and adds a row per size with attention's gain over average pooling.
Runs are shared with `ablate.py` (same workdir root and config: reused, not retrained).
"""

import os
import sys
from typing import List, Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ablate  # noqa: E402
from keras_attnpool.models import get_backbone_spec  # noqa: E402

HEADS = ("avg", "rank1")
DEMO_SIZES = "64,128"


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
    by_size = {}
    for size in sorted(sizes, reverse=True):
        config = ablate.variant_config(base, "avg", seeds[0], root, size)
        side = get_backbone_spec(config.backbone).feature_size(size)
        label = f"{size} px ({side}x{side})"
        size_rows, config = ablate.ablation_rows(base, list(HEADS), seeds, root, repeats,
                                                 image_size=size, row_prefix=f"{label}: ")
        by_size[size] = (size_rows + [gain_row(label, *size_rows)], (config, f"{side}x{side}"))
    rows: List[dict] = [row for size in sorted(by_size) for row in by_size[size][0]]
    return rows, [by_size[size][1] for size in sorted(by_size)]


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = ablate.build_parser()
    parser.add_argument("--sizes", default=DEMO_SIZES, help="comma-separated input sizes")
    args = parser.parse_args(argv)
    args.variants = ",".join(HEADS)
    base, seeds, _ = ablate.check_args(args)
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        sizes = []
    if len(sizes) < 2 or min(sizes) < 8:
        print(f"resolution.py: error: --sizes={args.sizes}: give two or more input sizes "
              "(pixels, >= 8), e.g. --sizes=64,96,128", file=sys.stderr)
        sys.exit(2)
    root = os.path.abspath(args.workdir or os.path.join("workdir", f"ablate_{args.dataset}"))
    rows, configs = resolution_rows(base, sizes, seeds, root, args.repeats)
    metric = ablate.dataset_metric(args.dataset)
    text = (ablate.markdown_table(rows, metric, seeds, first_column="input size: head")
            + "\n\n" + ablate.describe(configs[0][0], seeds, metric,
                                       " / ".join(side for _, side in configs))
            + " Frames are resized to each input size.")
    ablate.write_output(text, args.out)


if __name__ == "__main__":
    main()
