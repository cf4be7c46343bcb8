"""How the attention maps start: AttentionalPooling from scratch, two initialisations.

    python benchmarks/init_study.py            # ~10 min on 2 CPU cores

Trains the tiny backbone from random weights on cluttered digits (keras_attnpool.data.
cluttered_digits) with: average pooling; attentional pooling initialised as the authors did
(both kernels N(0, 0.001), biases 0); and the package default (bottom-up kernel N(0, 0.001),
bottom-up bias 1: the layer starts as average pooling). Same data, epochs and seeds for all;
prints test top-1 per seed and the median.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_attnpool import build_action_model  # noqa: E402
from keras_attnpool.data.cluttered_digits import load_cluttered_digits  # noqa: E402
from keras_attnpool.trainer.arrays import fit_and_evaluate  # noqa: E402

PAPER_INIT = {
    "top_down_initializer": keras.initializers.RandomNormal(stddev=0.001),
    "bottom_up_initializer": keras.initializers.RandomNormal(stddev=0.001),
    "bottom_up_bias_initializer": "zeros",
}
VARIANTS = {
    "avg pooling": ("avg", {}),
    "attention, authors' init": ("attention", PAPER_INIT),
    "attention, default init": ("attention", {}),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    train, test, classes = load_cluttered_digits(seed=0)
    results = {name: [] for name in VARIANTS}
    for seed in range(args.seeds):
        for name, (head, kwargs) in VARIANTS.items():
            keras.utils.set_random_seed(seed)
            model = build_action_model(len(classes), backbone="tiny", head=head,
                                       input_shape=train[0].shape[1:], **kwargs)
            top1 = fit_and_evaluate(model, train, test, epochs=args.epochs, seed=seed)["top1"]
            results[name].append(top1)
            print(f"seed {seed}  {name:<26} top-1 {top1:.3f}", flush=True)
    print(f"\n{'head':<26} {'top-1 per seed':<24} median")
    for name, scores in results.items():
        print(f"{name:<26} {' '.join(f'{s:.3f}' for s in scores):<24} {np.median(scores):.3f}")


if __name__ == "__main__":
    main()
