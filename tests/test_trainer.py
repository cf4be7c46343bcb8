"""The strategy-aware training loop: distribution, accumulation, resume, NaN, summaries."""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_attnpool import build_action_model
from keras_attnpool.data.input import augment
from keras_attnpool.trainer.loop import NonFiniteLossError, TrainConfig, Trainer
from keras_attnpool.trainer.objectives import make_loss, multi_label_loss
from keras_attnpool.trainer.strategy import make_strategy

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "trainer_worker.py")


def _run_worker(out, strategy, steps=6, accumulation=1, env=None):
    command = [sys.executable, WORKER, str(out), strategy, str(steps), str(accumulation),
               str(out.parent / f"workdir_{out.stem}")]
    return subprocess.Popen(command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process):
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]


def _weights(result):
    return [result[k] for k in sorted((k for k in result.files if k.startswith("w")),
                                      key=lambda k: int(k[1:]))]


@pytest.mark.parametrize("accumulation", [1, 2])
def test_mirrored_over_two_devices_matches_one_device(tmp_path, accumulation):
    one, mirrored = tmp_path / "one.npz", tmp_path / "mirrored.npz"
    for process in [_run_worker(one, "one_device", accumulation=accumulation),
                    _run_worker(mirrored, "mirrored", accumulation=accumulation)]:
        _finish(process)
    one, mirrored = np.load(one), np.load(mirrored)
    assert int(one["replicas"]) == 1 and int(mirrored["replicas"]) == 2
    assert int(one["step"]) == int(mirrored["step"]) == 6
    np.testing.assert_allclose(mirrored["losses"], one["losses"], rtol=1e-5)
    for a, b in zip(_weights(one), _weights(mirrored)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_multi_worker_processes_end_with_identical_weights(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(_run_worker(tmp_path / f"worker{index}.npz", "multi_worker",
                                     env={"TF_CONFIG": json.dumps(tf_config)}))
    for process in processes:
        _finish(process)
    first, second = np.load(tmp_path / "worker0.npz"), np.load(tmp_path / "worker1.npz")
    assert int(first["replicas"]) == 2 and int(first["step"]) == 6
    np.testing.assert_array_equal(first["losses"], second["losses"])
    for a, b in zip(_weights(first), _weights(second)):
        np.testing.assert_array_equal(a, b)
    assert np.all(np.isfinite(first["losses"]))


def _trainer(workdir, steps, preprocess=None, **config):
    keras.utils.set_random_seed(0)
    return Trainer(
        make_strategy("one_device"),
        lambda: build_action_model(3, backbone="tiny", head="attention", input_shape=(16, 16, 3)),
        lambda: keras.optimizers.SGD(0.05, momentum=0.9), make_loss("single_label"),
        str(workdir), TrainConfig(steps=steps, global_batch_size=8, log_every=1,
                                  checkpoint_every=2, verbose=False, **config),
        preprocess=preprocess)


def _dataset_fn(start, images=None):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (64, 16, 16, 3)).astype("float32") if images is None else images
    labels = rng.integers(0, 3, len(images))
    return (tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(8)
            .skip(start))


def test_resume_continues_from_the_checkpoint_and_matches_an_uninterrupted_run(tmp_path):
    uninterrupted = _trainer(tmp_path / "a", steps=8)
    uninterrupted.fit(_dataset_fn)
    first = _trainer(tmp_path / "b", steps=4)
    assert first.fit(_dataset_fn)["resumed_from"] is None
    resumed = _trainer(tmp_path / "b", steps=8)
    result = resumed.fit(_dataset_fn)
    assert result["resumed_from"].endswith("ckpt-4")
    assert result["step"] == 8
    for a, b in zip(uninterrupted.model.weights, resumed.model.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    # Momentum buffers came back too: the optimizer's variables match.
    for a, b in zip(uninterrupted.optimizer.variables, resumed.optimizer.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_non_finite_loss_stops_and_names_the_step(tmp_path):
    trainer = _trainer(tmp_path, steps=5)
    images = np.full((64, 16, 16, 3), np.nan, "float32")
    with pytest.raises(NonFiniteLossError, match="at step 1"):
        trainer.fit(lambda start: _dataset_fn(start, images))


def test_mixed_precision_trains_with_loss_scaling(tmp_path):
    keras.config.set_dtype_policy("mixed_float16")
    trainer = _trainer(tmp_path, steps=3, mixed_precision=True)
    result = trainer.fit(_dataset_fn)
    assert result["step"] == 3 and np.isfinite(result["loss"])
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)


def _device_batches(start):
    """`augment_on="device"` batches: uint8 windows on a 24-px canvas and crop boxes, for a
    model that takes 16-px frames (it fails unless the preprocessing runs first)."""
    rng = np.random.default_rng(0)
    windows = rng.integers(0, 256, (64, 24, 24, 3)).astype("uint8")
    boxes = np.tile(np.array([[0.0, 0.6, 0.6, 0.0]], "float32"), [64, 1])  # a flipped crop
    labels = rng.integers(0, 3, 64)
    return (tf.data.Dataset.from_tensor_slices(({"frames": windows, "boxes": boxes}, labels))
            .repeat().batch(8).skip(start))


def test_mixed_precision_trains_on_device_augmented_batches(tmp_path):
    keras.config.set_dtype_policy("mixed_float16")
    trainer = _trainer(tmp_path, steps=3, mixed_precision=True,
                       preprocess=lambda inputs: augment.device_augment(inputs, 16))
    result = trainer.fit(_device_batches)
    assert result["step"] == 3 and np.isfinite(result["loss"])
    assert any(layer.compute_dtype == "float16" for layer in trainer.model.layers)


def test_tensorboard_scalars_are_written(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _trainer(tmp_path, steps=3).fit(_dataset_fn)
    events = EventAccumulator(str(tmp_path / "logs" / "train"),
                              size_guidance={"tensors": 0}).Reload()
    tags = events.Tags()["tensors"]
    assert {"loss", "learning_rate", "examples_per_second"} <= set(tags)
    assert [e.step for e in events.Tensors("loss")] == [1, 2, 3]


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0, "global_batch_size": 8}, "`steps` must be"),
    ({"steps": 1, "global_batch_size": 6, "accumulation_steps": 4}, "divisible"),
])
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_unknown_strategy_names_the_accepted_ones():
    with pytest.raises(ValueError, match="Accepted values: auto, one_device, mirrored"):
        make_strategy("tpu")


def test_multi_worker_without_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        make_strategy("multi_worker")


def test_multi_label_loss_ignores_ambiguous_and_treats_unknown_as_negative():
    labels = np.array([[1.0, -1.0, 0.0, np.nan]], "float32")
    logits = np.array([[2.0, -1.0, 50.0, 3.0]], "float32")
    # positive at 2, negative at -1, negative (NaN) at 3; the ambiguous 50 does not count.
    expected = (np.log1p(np.exp(-2.0)) + np.log1p(np.exp(-1.0)) + np.log1p(np.exp(3.0))) / 3
    np.testing.assert_allclose(multi_label_loss(labels, logits), [expected], rtol=1e-5)
