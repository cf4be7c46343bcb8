"""How the attention maps start: AttentionalPooling from scratch, two initialisations.

    python benchmarks/init_study.py
    python benchmarks/init_study.py --seeds=3 --epochs=15

Trains the tiny backbone from random weights on cluttered digits (keras_attnpool.data.
cluttered_digits) with: average pooling; attentional pooling initialised as the authors did
(both kernels N(0, 0.001), biases 0); and the package default (bottom-up kernel N(0, 0.001),
bottom-up bias 1: the layer starts as average pooling). Same data, epochs and seeds for all;
prints test top-1 per seed, the median and the wall time.
"""

import time

from absl import flags

from keras_attnpool import cli

_SEEDS = flags.DEFINE_integer("seeds", 2, "Number of seeds (0, 1, ...).", lower_bound=1)
_EPOCHS = flags.DEFINE_integer("epochs", 12, "Training epochs of every run.", lower_bound=1)


def _variants(keras) -> dict:
    """Row name -> (head, head keyword arguments)."""
    paper_init = {
        "top_down_initializer": keras.initializers.RandomNormal(stddev=0.001),
        "bottom_up_initializer": keras.initializers.RandomNormal(stddev=0.001),
        "bottom_up_bias_initializer": "zeros",
    }
    return {
        "avg pooling": ("avg", {}),
        "attention, authors' init": ("attention", paper_init),
        "attention, default init": ("attention", {}),
    }


def main(argv):
    del argv
    start = time.perf_counter()
    with cli.quiet_native_logs():
        import keras
        import numpy as np

        from arrays import fit_and_evaluate
        from keras_attnpool import build_action_model
        from keras_attnpool.data.synthetic.cluttered_digits import load_cluttered_digits

    variants = _variants(keras)
    train, test, classes = load_cluttered_digits(seed=0)
    results = {name: [] for name in variants}
    for seed in range(_SEEDS.value):
        for name, (head, kwargs) in variants.items():
            keras.utils.set_random_seed(seed)
            model = build_action_model(len(classes), backbone="tiny", head=head,
                                       input_shape=train[0].shape[1:], **kwargs)
            top1 = fit_and_evaluate(model, train, test, epochs=_EPOCHS.value, seed=seed)["top1"]
            results[name].append(top1)
            print(f"seed {seed}  {name:<26} top-1 {top1:.3f}", flush=True)
    print(f"\n{'head':<26} {'top-1 per seed':<24} median")
    for name, scores in results.items():
        print(f"{name:<26} {' '.join(f'{s:.3f}' for s in scores):<24} {np.median(scores):.3f}")
    print(f"\n{_SEEDS.value} seeds x {len(variants)} heads, {_EPOCHS.value} epochs each: "
          f"{time.perf_counter() - start:.0f} s wall time")


if __name__ == "__main__":
    cli.run(main)
