"""Choosing a tf.distribute strategy by name."""

import json
import os

import tensorflow as tf

from keras_attnpool.trainer.config import STRATEGIES


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Returns the strategy for `name`.

    - "auto": mirrored over every GPU when there are several, else one device.
    - "one_device": the first GPU, or the CPU.
    - "mirrored": every GPU, or every logical CPU device when there is no GPU (tests split
      the CPU with `tf.config.set_logical_device_configuration`).
    - "multi_worker": `MultiWorkerMirroredStrategy` over the workers in `TF_CONFIG`.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown `strategy`: {name!r}. Accepted values: {', '.join(STRATEGIES)}.")
    if name == "multi_worker":
        # Before anything lists devices: collective ops must be configured at startup.
        return _multi_worker()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)


def _multi_worker() -> tf.distribute.Strategy:
    config = os.environ.get("TF_CONFIG")
    if not config:
        raise ValueError("`strategy`='multi_worker' needs the TF_CONFIG environment variable "
                         '({"cluster": {"worker": [...]}, "task": {"type": "worker", '
                         '"index": i}}) on every worker.')
    try:
        json.loads(config)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}).") from None
    return tf.distribute.MultiWorkerMirroredStrategy()
