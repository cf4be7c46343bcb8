r"""Train action-recognition heads on the built-in cluttered-digit task and compare them.

    python training/fit.py                        # attention vs average pooling, ~3 min on 2 CPUs
    python training/fit.py --heads=attention --epochs=5 --workdir=/tmp/run

Frames are 64 px with a 16 px handwritten digit among fragments of other digits: the evidence
is small and surrounded by clutter, where the paper says attention should help. Each head is
trained from scratch on the same frames with the same seed on the `tiny` backbone, scored on
held-out handwriting, and saved as a `.keras` file in the workdir with `metrics.json`.
"""

import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

_HEADS = flags.DEFINE_list("heads", ["avg", "attention"],
                           "Heads to train, in order: attention, avg, second_order.")
_EPOCHS = flags.DEFINE_integer("epochs", 15, "Training epochs per head.", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Batch size.", lower_bound=1)
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.",
                                    lower_bound=0.0)
_NUM_TRAIN = flags.DEFINE_integer("num_train", 1500, "Training frames.", lower_bound=10)
_NUM_TEST = flags.DEFINE_integer("num_test", 500, "Test frames.", lower_bound=10)
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 5, "Digit classes (2-10).", lower_bound=2,
                                    upper_bound=10)
_SEED = flags.DEFINE_integer("seed", 0, "Seed for the data and the weights.")
_WORKDIR = flags.DEFINE_string("workdir", "workdir/demo", "Where models and metrics go.")

_ACCEPTED_HEADS = ("attention", "avg", "second_order")


def _fail(message: str) -> None:
    print(f"fit.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def _write_json(path: str, payload: dict) -> None:
    """Atomic: a reader never sees half a file."""
    directory = os.path.dirname(path)
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as f:
        json.dump(payload, f, indent=2)
    os.replace(f.name, path)


def main(argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]}; flags look like --epochs=5.")
    unknown = [h for h in _HEADS.value if h not in _ACCEPTED_HEADS]
    if unknown or not _HEADS.value:
        _fail(f"--heads: unknown {unknown}; accepted: {', '.join(_ACCEPTED_HEADS)}.")
    try:
        os.makedirs(_WORKDIR.value, exist_ok=True)
    except OSError as error:
        _fail(f"--workdir={_WORKDIR.value}: cannot create it ({error.strerror}).")

    import keras

    from keras_attnpool import build_action_model
    from keras_attnpool.data.cluttered_digits import load_cluttered_digits
    from keras_attnpool.trainer.arrays import fit_and_evaluate

    # Data: the same frames for every head.
    train, test, class_names = load_cluttered_digits(
        _NUM_TRAIN.value, _NUM_TEST.value, _NUM_CLASSES.value, seed=_SEED.value)
    print(f"Cluttered digits: {len(train[0])} train / {len(test[0])} test frames, "
          f"{len(class_names)} classes, {train[0].shape[1]} px.")

    # Train and score each head from the same seed.
    results = {}
    for head in _HEADS.value:
        keras.utils.set_random_seed(_SEED.value)
        model = build_action_model(len(class_names), backbone="tiny", head=head,
                                   input_shape=train[0].shape[1:])
        print(f"\n[{head}] {model.count_params():,} parameters, {_EPOCHS.value} epochs")
        metrics = fit_and_evaluate(model, train, test, epochs=_EPOCHS.value,
                                   batch_size=_BATCH_SIZE.value,
                                   learning_rate=_LEARNING_RATE.value, seed=_SEED.value,
                                   verbose=2)
        path = os.path.join(_WORKDIR.value, f"{head}.keras")
        model.save(path)
        results[head] = {**metrics, "model": path}
        print(f"[{head}] test top-1 {metrics['top1']:.3f}  -> {path}")

    # Report.
    metrics_path = os.path.join(_WORKDIR.value, "metrics.json")
    _write_json(metrics_path, {"classes": class_names, "seed": _SEED.value, "heads": results})
    print("\nhead            test top-1")
    for head, metrics in results.items():
        print(f"{head:<15} {metrics['top1']:.3f}")
    print(f"\nModels and metrics: {os.path.abspath(_WORKDIR.value)}")


if __name__ == "__main__":
    app.run(main)
