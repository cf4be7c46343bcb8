"""Scoring a single-frame model with the dataset's protocol.

Videos: `test_frames` uniformly spaced frames (25, the paper's protocol) and any extra views
go through the single-frame model; the logits of each video are averaged, then scored with
top-1, top-5 and mean class accuracy. Images (MPII): mAP over classes and accuracy.
Multi-label (HICO): mAP over classes, ambiguous labels left out per class. Every result
also has the training objective's loss on those per-video logits.

Which records are scored: the final evaluation scores the test split (MPII: the val split,
its test images having no public action labels); the evaluations during training score a
slice of train held out with `val_fraction`, else the val split where the records have
one, else the test split (`held_out_split`).
"""

from typing import Iterable, Optional, Sequence

import keras
import numpy as np

from keras_attnpool import metrics
from keras_attnpool.trainer import objectives

# The metric the paper reports for a dataset (and the one the best checkpoint is kept by):
# mAP for MPII and HICO, top-1 over videos otherwise. Larger is better for both.
MAP_DATASETS = ("mpii", "hico")


def dataset_metric(dataset: str) -> str:
    """"mAP" for MPII and HICO, "top1" for the others."""
    return "mAP" if dataset in MAP_DATASETS else "top1"


def final_split(dataset: str) -> str:
    """The split the final evaluation scores."""
    return "val" if dataset == "mpii" else "test"


def held_out_split(dataset: str, splits: Sequence[str], val_fraction: Optional[float]) -> str:
    """The split the evaluations during training score: "train" (its held-out slice) with
    `val_fraction`, else "val" where the records have it, else the test split."""
    if val_fraction:
        return "train"
    return "val" if "val" in splits else final_split(dataset)


def _logits(outputs):
    return outputs["logits"] if isinstance(outputs, dict) else outputs


def predict_per_video(model: keras.Model, batches: Iterable) -> tuple:
    """Runs `model` over `(frames, labels, video_ids)` batches whose rows are single frames,
    and averages the logits of each video's rows. Returns (ids, logits (V, K), labels)."""
    logits, labels, ids = [], [], []
    for frames, batch_labels, batch_ids in batches:
        logits.append(np.asarray(_logits(model(frames, training=False))))
        labels.append(np.asarray(batch_labels))
        ids.extend(np.asarray(batch_ids).tolist())
    if not ids:
        raise ValueError("The evaluation data is empty: no test records were found.")
    return metrics.average_per_video(ids, np.concatenate(logits), np.concatenate(labels))


def _softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def score(logits: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
          multi_label: bool) -> tuple:
    """(metrics dict, per-class rows) for per-video (or per-image) logits and labels."""
    num_classes = len(class_names)
    if multi_label:
        targets = metrics.hico_targets(labels)
        value, aps = metrics.mean_average_precision(targets, 1 / (1 + np.exp(-logits)))
        rows = [{"class": name, "positives": int(np.sum(targets[:, k] == 1)),
                 "AP": aps[k]} for k, name in enumerate(class_names)]
        loss = objectives.multi_label_loss(labels, logits)
        return {"mAP": value, "loss": float(np.mean(loss)),
                "num_examples": int(len(labels))}, rows
    labels = labels.astype(np.int64)
    probabilities = _softmax(logits)
    value, aps = metrics.mean_average_precision(labels, probabilities)
    accuracy = metrics.per_class_accuracy(labels, logits, num_classes)
    result = {
        "top1": metrics.top_k_accuracy(labels, logits, 1),
        "top5": metrics.top_k_accuracy(labels, logits, 5),
        "mean_class_accuracy": metrics.mean_class_accuracy(labels, logits, num_classes),
        "mAP": value,
        "loss": float(np.mean(objectives.single_label_loss(labels, logits))),
        "num_examples": int(len(labels)),
    }
    rows = [{"class": name, "examples": int(np.sum(labels == k)), "accuracy": accuracy[k],
             "AP": aps[k]} for k, name in enumerate(class_names)]
    return result, rows
