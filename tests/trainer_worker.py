"""Runs the Trainer on a fixed synthetic task in its own process (for distributed tests).

    python tests/trainer_worker.py OUT.npz STRATEGY [STEPS] [ACCUMULATION]

Splits the CPU into 2 logical devices first (so "mirrored" has 2 replicas), trains the tiny
backbone + attention head, and saves the per-step losses and final weights to OUT.npz.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

if sys.argv[2] != "multi_worker":  # each worker keeps its CPU whole
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

import keras  # noqa: E402

from keras_attnpool import build_action_model  # noqa: E402
from keras_attnpool.trainer.loop import TrainConfig, Trainer  # noqa: E402
from keras_attnpool.trainer.objectives import make_loss  # noqa: E402
from keras_attnpool.trainer.strategy import make_strategy  # noqa: E402


def dataset_fn(batch_size):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (64, 16, 16, 3)).astype("float32")
    labels = rng.integers(0, 3, 64)

    def make(start):
        return (tf.data.Dataset.from_tensor_slices((images, labels)).repeat()
                .batch(batch_size, drop_remainder=True).skip(start))
    return make


def main(out, strategy_name, steps=6, accumulation=1, workdir=None):
    keras.utils.set_random_seed(0)
    strategy = make_strategy(strategy_name)
    config = TrainConfig(steps=steps, global_batch_size=8, accumulation_steps=accumulation,
                         weight_decay=5e-4, log_every=1, checkpoint_every=2, verbose=False)
    losses = []
    trainer = Trainer(
        strategy,
        lambda: build_action_model(3, backbone="tiny", head="attention", input_shape=(16, 16, 3)),
        lambda: keras.optimizers.SGD(0.05, momentum=0.9), make_loss("single_label"),
        workdir or os.path.join(os.path.dirname(out), f"workdir_{strategy_name}"), config)
    result = trainer.fit(dataset_fn(config.micro_batch_size),
                         on_log=lambda step, logs: losses.append(logs["loss"]))
    np.savez(out, losses=np.array(losses), step=result["step"],
             replicas=strategy.num_replicas_in_sync,
             **{f"w{i}": np.asarray(w) for i, w in enumerate(trainer.model.weights)})


if __name__ == "__main__":
    args = sys.argv[1:] + [None] * 5
    main(args[0], args[1], int(args[2] or 6), int(args[3] or 1), args[4])
