"""The training workdir: the one place that knows its files, their names and their formats.

    W/config.json     the run's resolved ExperimentConfig (what ran)
    W/labels.txt      class names, one per line, in label order
    W/checkpoints/    tf.train.CheckpointManager checkpoints (resume)
    W/checkpoints/best/  the best checkpoint by the evaluations during training, and
                      best.json: its step, metric and value
    W/logs/train/     TensorBoard: scalars and attention pictures
    W/logs/eval/      TensorBoard: the evaluations during training (--eval_every)
    W/held_out.txt    the video ids of train clips held out for them (--val_fraction)
    W/model.keras     the trained single-frame model (raw RGB in [0, 255] -> logits)
    W/metrics.json    the test metrics; W/per_class.csv the per-class table
    W/predictions.csv the evaluation's per-clip logits (averaged over frames and views)
    W/export/         SavedModel versions for TF Serving

fit, evaluate, export, visualize and the TensorBoard summaries all go through `Workdir`;
every file is written atomically (`keras_attnpool.files`). Reading fails with
`WorkdirError`, one line naming the file and what to do.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from typing import TYPE_CHECKING, List, Sequence

from keras_attnpool import files
from keras_attnpool.trainer.config import RESUMABLE_CHANGES, ConfigError, ExperimentConfig

if TYPE_CHECKING:
    import keras


class WorkdirError(ValueError):
    """A workdir is missing a file, holds an unusable one, or holds another run."""


class Workdir:
    """Paths and reading/writing of one workdir (see the module docstring)."""

    CONFIG = "config.json"
    LABELS = "labels.txt"
    MODEL = "model.keras"
    METRICS = "metrics.json"
    PER_CLASS = "per_class.csv"
    PREDICTIONS = "predictions.csv"
    CHECKPOINTS = "checkpoints"
    LOGS = "logs"
    EXPORT = "export"
    EVAL_RUN = "eval"  # the TensorBoard run of the evaluations during training
    BEST = "best"  # under checkpoints/: the best checkpoint of those evaluations
    BEST_RECORD = "best.json"
    HELD_OUT = "held_out.txt"

    def __init__(self, path: str | os.PathLike):
        self.path = os.path.abspath(os.path.expanduser(os.fspath(path)))

    def __repr__(self) -> str:
        return f"Workdir({self.path!r})"

    def __fspath__(self) -> str:
        return self.path

    def _join(self, *names: str) -> str:
        return os.path.join(self.path, *names)

    @property
    def config_path(self) -> str:
        return self._join(self.CONFIG)

    @property
    def labels_path(self) -> str:
        return self._join(self.LABELS)

    @property
    def model_path(self) -> str:
        return self._join(self.MODEL)

    @property
    def metrics_path(self) -> str:
        return self._join(self.METRICS)

    @property
    def per_class_path(self) -> str:
        return self._join(self.PER_CLASS)

    @property
    def predictions_path(self) -> str:
        return self._join(self.PREDICTIONS)

    @property
    def checkpoints_dir(self) -> str:
        return self._join(self.CHECKPOINTS)

    @property
    def best_checkpoint_dir(self) -> str:
        return self._join(self.CHECKPOINTS, self.BEST)

    @property
    def held_out_path(self) -> str:
        return self._join(self.HELD_OUT)

    def read_best(self) -> dict | None:
        """The best checkpoint's record {"step", "metric", "value"}, or None."""
        record = files.read_json(os.path.join(self.best_checkpoint_dir, self.BEST_RECORD))
        if record is not None and not (isinstance(record, dict)
                                       and {"step", "metric", "value"} <= set(record)):
            raise WorkdirError(f"{os.path.join(self.best_checkpoint_dir, self.BEST_RECORD)}: "
                               "not a best-checkpoint record; delete it to start the record "
                               "again.")
        return record

    def write_best(self, record: dict) -> None:
        os.makedirs(self.best_checkpoint_dir, exist_ok=True)
        files.write_json(os.path.join(self.best_checkpoint_dir, self.BEST_RECORD), record)

    def write_held_out(self, video_ids: Sequence[str]) -> None:
        """held_out.txt: the held-out train clips' ids, one per line, sorted."""
        os.makedirs(self.path, exist_ok=True)
        files.write_text(self.held_out_path, "".join(f"{v}\n" for v in sorted(video_ids)))

    def worker_checkpoints_dir(self, task_id: int) -> str:
        """Where a non-chief multi-worker task saves (every worker must save; only the
        chief's checkpoints are kept)."""
        return self._join("tmp", f"worker{task_id}_checkpoints")

    def logs_dir(self, run: str = "train") -> str:
        """A TensorBoard run's folder (`tensorboard --logdir W/logs` shows them all)."""
        return self._join(self.LOGS, run)

    @property
    def export_dir(self) -> str:
        return self._join(self.EXPORT)

    # config.json
    def check_trained(self) -> dict:
        """The JSON of config.json; raises WorkdirError (without loading TensorFlow) when
        the workdir is no folder, or config.json is missing or not JSON."""
        if not os.path.isdir(self.path):
            raise WorkdirError(f"workdir {self.path} is not a directory; pass the folder "
                               "training/fit.py wrote.")
        values = files.read_json(self.config_path)
        if values is None:
            if not os.path.isfile(self.config_path):
                raise WorkdirError(f"{self.config_path} not found; is {self.path} a training "
                                   "workdir? Train one with training/fit.py.")
            raise WorkdirError(f"{self.config_path} is not valid JSON; restore it, or train "
                               "again in a new workdir.")
        return values

    def read_config(self) -> ExperimentConfig:
        """The resolved config of the run (`config.resolve` fills what older files lack)."""
        from keras_attnpool.trainer.config import resolve

        values = self.check_trained()
        try:
            return resolve(ExperimentConfig.from_json(values, source=self.config_path))
        except ConfigError as error:
            message = str(error)
            if not message.startswith(self.config_path):
                message = f"{self.config_path}: {message}"
            raise WorkdirError(message) from None

    def check_config(self, config: ExperimentConfig) -> None:
        """Raises WorkdirError when config.json holds a run with other settings."""
        old = files.read_json(self.config_path)
        if old is None:
            if os.path.isfile(self.config_path):
                raise WorkdirError(f"{self.config_path} is not valid JSON; delete the "
                                   "workdir to start again, or use another --workdir.")
            return
        new = config.to_json()
        changed = sorted(k for k in set(old) | set(new)
                         if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
        if changed:
            detail = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:3])
            raise WorkdirError(
                f"--workdir {self.path} holds a run with other settings ({detail}); use "
                "another --workdir, or delete that one to start again.")

    def write_config(self, config: ExperimentConfig) -> None:
        """Claims the workdir for `config` (checked against what it holds), atomically."""
        self.check_config(config)
        os.makedirs(self.path, exist_ok=True)
        files.write_json(self.config_path, config.to_json())

    # labels.txt
    def read_labels(self) -> List[str]:
        if not os.path.isfile(self.labels_path):
            raise WorkdirError(f"{self.labels_path} not found; train first (training/fit.py), "
                               "or write the class names there, one per line.")
        with open(self.labels_path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]

    def write_labels(self, class_names: Sequence[str]) -> None:
        os.makedirs(self.path, exist_ok=True)
        files.write_text(self.labels_path, "".join(f"{name}\n" for name in class_names))

    # model.keras
    def save_model(self, model: "keras.Model") -> str:
        files.atomic_write(self.model_path, model.save, suffix=".keras")
        return self.model_path

    def load_model(self) -> "keras.Model":
        """The trained single-frame model, checked against labels.txt and config.json."""
        import keras

        import keras_attnpool.models  # noqa: F401  registers the package's layers

        if not os.path.isfile(self.model_path):
            raise WorkdirError(f"{self.model_path} not found; train first (training/fit.py).")
        try:
            model = keras.saving.load_model(self.model_path, safe_mode=True)
        except Exception as error:  # Keras raises many types for a damaged archive
            damage = _zip_damage(self.model_path)  # Keras calls it "File not found"
            if damage:
                raise WorkdirError(f"{self.model_path} is damaged ({damage}); train again, "
                                   "or restore the file.") from None
            reason = " ".join(str(error).split())[:200]
            raise WorkdirError(f"{self.model_path} could not be loaded ({type(error).__name__}: "
                               f"{reason}); train again, or restore the file.") from None
        return model

    # metrics.json, per_class.csv
    def write_metrics(self, result: dict, rows: List[dict]) -> None:
        files.write_json(self.metrics_path, result)
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v)
                             for k, v in row.items()})
        files.write_text(self.per_class_path, text.getvalue())

    def write_predictions(self, video_ids: Sequence[str], logits: Sequence[Sequence[float]],
                          labels: Sequence, class_names: Sequence[str]) -> str:
        """predictions.csv: per clip its id, label, top-1 class name and one logit per class
        (columns named by class, written to float32 precision)."""
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        writer.writerow(["video_id", "label", "predicted", *class_names])
        for video_id, row, label in zip(video_ids, logits, labels):
            row = [float(value) for value in row]
            # Multi-label targets (1, -1, 0, NaN) as space-separated numbers.
            label = " ".join(f"{v:g}" for v in label) if hasattr(label, "__len__") else int(
                label)
            writer.writerow([video_id, label, class_names[row.index(max(row))],
                             *(f"{value:.9g}" for value in row)])
        files.write_text(self.predictions_path, text.getvalue())
        return self.predictions_path

    def read_metrics(self) -> dict | None:
        return files.read_json(self.metrics_path)

    def read_eval_curves(self) -> dict:
        """The evaluations during training (`--eval_every`), from the TensorBoard run
        `logs/eval`: {metric: [(step, value), ...] in step order}; {} without one. A step
        evaluated again after a resume keeps its latest value."""
        import tensorflow as tf
        from tensorflow.core.util import event_pb2

        folder = self.logs_dir(self.EVAL_RUN)
        curves: dict = {}
        for path in sorted(tf.io.gfile.glob(os.path.join(folder, "events.out.tfevents.*"))):
            for record in tf.data.TFRecordDataset(path):
                event = event_pb2.Event.FromString(record.numpy())
                for value in event.summary.value:
                    number = (float(tf.make_ndarray(value.tensor)) if value.HasField("tensor")
                              else float(value.simple_value))
                    curves.setdefault(value.tag, {})[int(event.step)] = number
        return {tag: sorted(points.items()) for tag, points in curves.items()}

    def load_run(self) -> "TrainedRun":
        """The trained model with its resolved config and class names, checked to agree."""
        config = self.read_config()
        class_names = self.read_labels()
        model = self.load_model()
        check_agreement(self, config, class_names, model)
        return TrainedRun(self, model, config, class_names)


def _zip_damage(path: str) -> str | None:
    """Why a `.keras` file (a zip archive) is unreadable, or None when it reads whole."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception as error:  # BadZipFile, OSError, zlib.error, EOFError...
        return f"not a whole zip archive: {error}"
    return f"{bad} fails its checksum" if bad else None


@dataclasses.dataclass
class TrainedRun:
    """A workdir's trained single-frame model, loaded with what it was trained with."""

    workdir: Workdir
    model: "keras.Model"
    config: ExperimentConfig
    class_names: List[str]


def check_agreement(workdir: Workdir, config: ExperimentConfig, class_names: Sequence[str],
                    model: "keras.Model") -> None:
    """labels.txt, config.json and the model must describe the same classes and input."""
    logits = model.output["logits"] if isinstance(model.output, dict) else model.output
    if len(class_names) != logits.shape[-1]:
        raise WorkdirError(
            f"{workdir.labels_path} has {len(class_names)} names and {workdir.model_path} "
            f"{logits.shape[-1]} outputs; they must agree (one name per class, in index "
            "order).")
    size = tuple(int(d) for d in model.inputs[0].shape[-3:-1])
    if size != (config.image_size, config.image_size):
        raise WorkdirError(f"{workdir.config_path}: image_size {config.image_size} differs "
                           f"from the model's input size {list(size)}.")
