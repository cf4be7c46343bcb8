"""Train and score a model on in-memory arrays with `Model.fit` (for the benchmarks).

Small experiments (the cluttered-digit demo of `export_size_latency.py`, the initialisation
study of `init_study.py`) fit in memory and run on one device; this is all they need. The
package's own training path is `keras_attnpool.trainer` (records, strategies, checkpoints).
"""

from typing import Sequence

import keras
import numpy as np


def fit_and_evaluate(model: keras.Model, train: Sequence[np.ndarray], test: Sequence[np.ndarray],
                     epochs: int = 15, batch_size: int = 32, learning_rate: float = 1e-3,
                     seed: int = 0, verbose: int = 0) -> dict:
    """Trains `model` (single-label logits) with Adam and returns test metrics.

    Returns:
        {"top1": accuracy on `test`, "train_loss": last epoch's loss, "epochs": epochs}.
    """
    keras.utils.set_random_seed(seed)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    x_train, y_train = train
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs,
                        shuffle=True, verbose=verbose)
    x_test, y_test = test
    logits = model.predict(x_test, batch_size=128, verbose=0)
    top1 = float(np.mean(np.argmax(logits, axis=-1) == np.asarray(y_test)))
    return {"top1": top1, "train_loss": float(history.history["loss"][-1]), "epochs": epochs}
