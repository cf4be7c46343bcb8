"""One training loop for every tf.distribute strategy.

Keras 3's `Model.fit` fails under `MultiWorkerMirroredStrategy` (keras-team/keras#20585),
so the loop runs `strategy.run` steps itself: the same code on one device, mirrored over
several, and across workers. Around it: global-batch loss scaling, gradient accumulation,
L2 weight decay as in the paper's recipe, loss scaling for mixed precision, checkpoints that
resume after a kill (weights, optimizer state and the data position), a progress bar,
TensorBoard scalars, and evaluations during training that keep the best checkpoint beside
the last ones.
"""

import dataclasses
import glob
import os
import time
from typing import Callable, Optional, Union

import keras
import numpy as np
import tensorflow as tf

from keras_attnpool import files
from keras_attnpool.workdir import Workdir


@dataclasses.dataclass
class TrainConfig:
    """How long and how to train. `global_batch_size` counts examples per optimizer update
    across replicas and accumulation steps."""

    steps: int
    global_batch_size: int
    accumulation_steps: int = 1
    weight_decay: float = 0.0
    mixed_precision: bool = False
    log_every: int = 10
    checkpoint_every: int = 200
    keep_checkpoints: int = 3
    verbose: bool = True
    eval_every: int = 0  # 0: no evaluation during training

    def __post_init__(self):
        for name in ("steps", "global_batch_size", "accumulation_steps", "log_every",
                     "checkpoint_every", "keep_checkpoints", "eval_every"):
            value = getattr(self, name)
            low = 0 if name == "eval_every" else 1
            if not isinstance(value, int) or value < low:
                raise ValueError(f"`{name}` must be an integer >= {low}; got {value!r}.")
        if self.global_batch_size % self.accumulation_steps:
            raise ValueError(f"`global_batch_size` ({self.global_batch_size}) must be divisible "
                             f"by `accumulation_steps` ({self.accumulation_steps}).")

    @property
    def micro_batch_size(self) -> int:
        """Examples per forward pass, across replicas."""
        return self.global_batch_size // self.accumulation_steps

    def check_replicas(self, replicas: int, strategy: str = "") -> None:
        """Raises ValueError when a micro-batch cannot be split over `replicas`."""
        if self.micro_batch_size % replicas:
            where = f" of --strategy={strategy}" if strategy else ""
            raise ValueError(
                f"--batch_size={self.global_batch_size} (/ --accumulation_steps="
                f"{self.accumulation_steps}) is not divisible by the {replicas} replicas"
                f"{where}; use a multiple of {replicas * self.accumulation_steps}.")


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after a checkpoint of the step reached was saved."""

    def __init__(self, step: int):
        super().__init__(f"interrupted at step {step}; rerun the same command to resume")
        self.step = step


def _worker_role(strategy):
    """(is_chief, task_id): multi-worker training writes from the chief only."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", None) or 0
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0), task_id


def _decayed_weights(model):
    """Kernels get weight decay; biases and normalisation parameters do not."""
    return [v for v in model.trainable_variables
            if len(v.shape) > 1 and "gamma" not in v.name and "beta" not in v.name]


class Trainer:
    """Trains a Keras model with `strategy.run` steps and resumable checkpoints.

    Args:
        strategy: any tf.distribute strategy (see `make_strategy`).
        build_model: returns the model; called inside `strategy.scope()`.
        build_optimizer: returns a Keras optimizer; called inside the scope.
        loss_fn: `(targets, outputs) -> (B,)` per-example loss.
        workdir: a `Workdir` (or its path): checkpoints and TensorBoard logs go there.
        config: a `TrainConfig`.
        preprocess: applied to each batch's inputs on the replica before the model (e.g.
            `augment.device_augment` for a pipeline with augment_on="device").
    """

    def __init__(self, strategy: tf.distribute.Strategy, build_model: Callable[[], keras.Model],
                 build_optimizer: Callable[[], keras.optimizers.Optimizer],
                 loss_fn: Callable, workdir: Union[Workdir, str], config: TrainConfig,
                 preprocess: Optional[Callable] = None):
        config.check_replicas(strategy.num_replicas_in_sync)
        self.strategy, self.loss_fn, self.config = strategy, loss_fn, config
        self.preprocess = preprocess
        self.workdir = Workdir(workdir)
        with strategy.scope():
            self.model = build_model()
            optimizer = build_optimizer()
            if config.mixed_precision:
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            self.optimizer = optimizer
            self.optimizer.build(self.model.trainable_variables)
            self._accumulators = [
                tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False,
                            synchronization=tf.VariableSynchronization.ON_READ,
                            aggregation=tf.VariableAggregation.SUM)
                for v in self.model.trainable_variables] if config.accumulation_steps > 1 else []
        self.is_chief, task_id = _worker_role(strategy)
        # Every worker must take part in saving; only the chief's copy is kept.
        checkpoint_dir = (self.workdir.checkpoints_dir if self.is_chief
                          else self.workdir.worker_checkpoints_dir(task_id))
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, checkpoint_dir, max_to_keep=config.keep_checkpoints)
        best_dir = (self.workdir.best_checkpoint_dir if self.is_chief
                    else os.path.join(checkpoint_dir, Workdir.BEST))
        self.best_manager = tf.train.CheckpointManager(self.checkpoint, best_dir,
                                                       max_to_keep=1)
        self._decayed = _decayed_weights(self.model)
        self._step_fn = None

    @property
    def step(self) -> int:
        """Optimizer updates done so far (restored from the checkpoint on resume)."""
        return int(self.optimizer.iterations.numpy())

    def restore(self) -> Optional[str]:
        """Restores the latest checkpoint, if any; returns its path."""
        path = tf.train.latest_checkpoint(self.workdir.checkpoints_dir)
        if path:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        return path

    def restore_best(self) -> Optional[dict]:
        """Restores the best checkpoint kept by the evaluations during training; returns
        its record ({"step", "metric", "value"}), or None (nothing restored) without one."""
        best = self.workdir.read_best()
        path = tf.train.latest_checkpoint(self.workdir.best_checkpoint_dir)
        if best is None or path is None or not path.endswith(f"ckpt-{best['step']}"):
            return None
        self.checkpoint.restore(path).assert_existing_objects_matched()
        return best

    def _replica_loss(self, batch):
        inputs, targets = batch
        if self.preprocess is not None:  # e.g. augment.device_augment, on the replica
            inputs = self.preprocess(inputs)
        outputs = self.model(inputs, training=True)
        per_example = self.loss_fn(targets, outputs)
        loss = tf.nn.compute_average_loss(
            per_example, global_batch_size=self.config.micro_batch_size)
        loss = loss / self.config.accumulation_steps
        if self.config.weight_decay and self._decayed:
            l2 = tf.add_n([tf.reduce_sum(tf.square(tf.cast(v, tf.float32)))
                           for v in self._decayed])
            replicas = self.strategy.num_replicas_in_sync
            loss += 0.5 * self.config.weight_decay * l2 / (
                replicas * self.config.accumulation_steps)
        return loss

    def _gradients(self, batch):
        with tf.GradientTape() as tape:
            loss = self._replica_loss(batch)
            scaled = self.optimizer.scale_loss(loss) if self.config.mixed_precision else loss
        return loss, tape.gradient(scaled, self.model.trainable_variables)

    def _build_step(self):
        variables = self.model.trainable_variables
        accumulation = self.config.accumulation_steps

        def apply(batch):
            loss, grads = self._gradients(batch)
            self.optimizer.apply_gradients(zip(grads, variables))
            return loss

        def accumulate(batch):
            loss, grads = self._gradients(batch)
            for accumulator, grad in zip(self._accumulators, grads):
                accumulator.assign_add(grad)
            return loss

        def apply_accumulated():
            self.optimizer.apply_gradients(
                zip([a.read_value() for a in self._accumulators], variables))
            for accumulator in self._accumulators:
                accumulator.assign(tf.zeros_like(accumulator))

        # No Python control flow depends on tensors here: autograph has nothing to convert
        # (and, converting closures rebuilt per run, it warns).
        apply, accumulate, apply_accumulated = (
            tf.autograph.experimental.do_not_convert(f)
            for f in (apply, accumulate, apply_accumulated))

        @tf.function(autograph=False)
        def step(iterator):
            if accumulation == 1:
                losses = self.strategy.run(apply, args=(next(iterator),))
                return self.strategy.reduce("SUM", losses, axis=None)
            total = tf.constant(0.0)
            for _ in range(accumulation):
                losses = self.strategy.run(accumulate, args=(next(iterator),))
                total += self.strategy.reduce("SUM", losses, axis=None)
            self.strategy.run(apply_accumulated)
            return total

        return step

    def fit(self, dataset_fn: Callable[[int], tf.data.Dataset],
            on_log: Optional[Callable[[int, dict], None]] = None,
            evaluate: Optional[Callable[[int], dict]] = None,
            best_by: Optional[str] = None) -> dict:
        """Trains until `config.steps` updates, resuming from the latest checkpoint.

        Args:
            dataset_fn: `start_micro_batch -> tf.data.Dataset` of global micro-batches
                `(inputs, targets)` (`config.micro_batch_size` examples each), positioned at
                that micro-batch of a deterministic, repeating stream. Resuming asks for the
                position after the last checkpointed update, so no example is seen twice.
            on_log: called as `on_log(step, logs)` at every log step (for extra summaries).
            evaluate: with `config.eval_every`, called as `evaluate(step)` every that many
                steps and at the last one; returns metrics {name: value}, written to the
                TensorBoard run `eval`. The checkpoint of the step with the largest
                `best_by` metric so far is kept (`restore_best`), across resumes.
            best_by: the metric of `evaluate`'s result to keep the best checkpoint by.
        Returns:
            {"step", "loss", "examples_per_second", "resumed_from"}.
        """
        resumed_from = self.restore()
        start = self.step
        config = self.config
        if start >= config.steps:
            return {"step": start, "loss": float("nan"), "examples_per_second": 0.0,
                    "resumed_from": resumed_from}
        dataset = dataset_fn(start * config.accumulation_steps)
        iterator = iter(self.strategy.experimental_distribute_dataset(dataset))
        self._step_fn = self._step_fn or self._build_step()
        writer = (tf.summary.create_file_writer(self.workdir.logs_dir("train"))
                  if self.is_chief else tf.summary.create_noop_writer())
        progbar = keras.utils.Progbar(config.steps, stateful_metrics=["examples/s"],
                                      verbose=1 if config.verbose and self.is_chief else 0)
        progbar.update(start)
        evaluations = None
        if evaluate is not None and config.eval_every:
            evaluations = _Evaluations(self, evaluate, best_by)
        try:
            loss, rate = self._train_steps(iterator, start, writer, progbar, on_log,
                                           evaluations)
        except KeyboardInterrupt:
            raise TrainingInterrupted(self._save_at_interrupt()) from None
        writer.flush()
        if evaluations is not None:
            evaluations.writer.flush()
        return {"step": self.step, "loss": loss, "examples_per_second": rate,
                "resumed_from": resumed_from}

    def _save_at_interrupt(self) -> int:
        """Saves the step reached (its data position is the optimizer's step count), unless
        that needs the other workers, who were not interrupted."""
        step = self.step
        multi_worker = isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)
        latest = self.manager.latest_checkpoint
        saved = int(latest.rsplit("-", 1)[1]) if latest else 0  # "ckpt-<step>"
        if not multi_worker and step > saved:
            self._save(step)
        return step

    def _save(self, step: int, manager: Optional[tf.train.CheckpointManager] = None) -> None:
        """Saves the checkpoint of `step`; a save that fails leaves none of its files (the
        previous checkpoint stays the latest), and one that ran out of space raises
        `files.DiskFullError` naming it."""
        manager = manager or self.manager
        prefix = os.path.join(manager.directory, f"ckpt-{step}")
        with files.writing(prefix, leftovers=lambda: glob.glob(glob.escape(prefix) + "[._]*")):
            manager.save(checkpoint_number=step)

    def _train_steps(self, iterator, start, writer, progbar, on_log, evaluations):
        config = self.config
        loss, rate, window_start, window_steps = float("nan"), 0.0, time.perf_counter(), 0
        for step in range(start + 1, config.steps + 1):
            loss = float(self._step_fn(iterator))
            if not np.isfinite(loss):
                raise NonFiniteLossError(
                    f"Training loss became {loss} at step {step}; lower --learning_rate, "
                    "or check the inputs and labels of that batch.")
            window_steps += 1
            if step % config.log_every == 0 or step == config.steps:
                elapsed = time.perf_counter() - window_start
                rate = window_steps * config.global_batch_size / max(elapsed, 1e-9)
                self._log(writer, step, loss, rate, on_log)
                window_start, window_steps = time.perf_counter(), 0
            progbar.update(step, [("loss", loss), ("examples/s", rate)])
            # Evaluated before the step's checkpoint: a run killed in between evaluates
            # the step again after resuming, rather than never.
            if evaluations is not None and (step % config.eval_every == 0
                                            or step == config.steps):
                evaluations.run(step)
            if step % config.checkpoint_every == 0 or step == config.steps:
                self._save(step)
        return loss, rate

    def _log(self, writer, step, loss, rate, on_log):
        logs = {"loss": loss, "examples_per_second": rate,
                "learning_rate": float(keras.ops.convert_to_numpy(self._learning_rate()))}
        if self.config.mixed_precision:
            logs["loss_scale"] = float(self.optimizer.dynamic_scale.numpy())
        with writer.as_default(step=step):
            for name, value in logs.items():
                tf.summary.scalar(name, value)
        if on_log is not None:
            with writer.as_default(step=step):
                on_log(step, logs)

    def _learning_rate(self):
        optimizer = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        return optimizer.learning_rate


class _Evaluations:
    """The evaluations during training: TensorBoard run `eval`, and the best checkpoint
    with its record (`Workdir.write_best`), which a resumed run continues from."""

    def __init__(self, trainer: Trainer, evaluate: Callable[[int], dict],
                 best_by: Optional[str]):
        self.trainer, self.evaluate, self.best_by = trainer, evaluate, best_by
        workdir = trainer.workdir
        self.writer = (tf.summary.create_file_writer(workdir.logs_dir(Workdir.EVAL_RUN))
                       if trainer.is_chief else tf.summary.create_noop_writer())
        self.best = workdir.read_best()  # the chief's, shared by every worker

    def run(self, step: int) -> None:
        result = self.evaluate(step)
        with self.writer.as_default(step=step):
            for name, value in result.items():
                if isinstance(value, float):
                    tf.summary.scalar(name, value)
        self.writer.flush()
        value = result.get(self.best_by) if self.best_by else None
        if value is None or not np.isfinite(value):
            return
        if self.best is None or value > self.best["value"]:
            self.trainer._save(step, self.trainer.best_manager)
            self.best = {"step": step, "metric": self.best_by, "value": float(value)}
            if self.trainer.is_chief:
                self.trainer.workdir.write_best(self.best)
