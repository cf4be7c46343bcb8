"""Evaluation metrics of the paper's protocols, in NumPy: top-k, mean class accuracy, AP, mAP.

AP is the PASCAL VOC / MPII one the paper reports: precision made monotone (each point takes
the best precision at any higher recall), then the area under that precision-recall curve.
"""

from typing import Optional, Sequence

import numpy as np


def top_k_accuracy(labels: np.ndarray, scores: np.ndarray, k: int = 1) -> float:
    """Fraction of samples whose label is among the `k` highest scores."""
    labels = np.asarray(labels)
    scores = np.asarray(scores)
    if len(labels) == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def per_class_accuracy(labels: np.ndarray, scores: np.ndarray, num_classes: int) -> np.ndarray:
    """Top-1 accuracy of each class's samples; NaN for classes without samples."""
    labels = np.asarray(labels)
    predictions = np.argmax(scores, axis=1)
    accuracy = np.full(num_classes, np.nan)
    for k in range(num_classes):
        mask = labels == k
        if mask.any():
            accuracy[k] = np.mean(predictions[mask] == k)
    return accuracy


def mean_class_accuracy(labels: np.ndarray, scores: np.ndarray, num_classes: int) -> float:
    """Mean over the classes that have samples of their top-1 accuracy."""
    return float(np.nanmean(per_class_accuracy(labels, scores, num_classes)))


def average_precision(targets: np.ndarray, scores: np.ndarray, interpolate: bool = True) -> float:
    """AP of one class.

    Args:
        targets: 1 positive, 0 negative; any other value (HICO's ambiguous) is left out.
        scores: higher means more confident.
        interpolate: make precision monotone first (VOC/MPII AP, the paper's); False gives
            the plain step-wise area (scikit-learn's `average_precision_score`).
    Returns:
        AP in [0, 1], or NaN when the class has no positive.
    """
    targets = np.asarray(targets, np.float64)
    scores = np.asarray(scores, np.float64)
    keep = (targets == 0) | (targets == 1)
    targets, scores = targets[keep], scores[keep]
    positives = np.sum(targets == 1)
    if positives == 0:
        return float("nan")
    # Tied scores count as one threshold, as in scikit-learn.
    order = np.argsort(-scores, kind="mergesort")
    scores, targets = scores[order], targets[order]
    last_of_tie = np.r_[np.diff(scores) != 0, True]
    true_positives = np.cumsum(targets)[last_of_tie]
    predicted = (np.arange(1, len(targets) + 1))[last_of_tie]
    precision = true_positives / predicted
    recall = true_positives / positives
    if interpolate:
        precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(targets: np.ndarray, scores: np.ndarray,
                           interpolate: bool = True) -> tuple:
    """mAP over classes with at least one positive.

    Args:
        targets: (N, K) in {1, 0, other = ignored}, or (N,) integer labels (one-vs-rest).
        scores: (N, K).
    Returns:
        (mAP, per-class APs (K,), NaN for classes without positives).
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets)
    if targets.ndim == 1:
        targets = (targets[:, None] == np.arange(scores.shape[1])[None, :]).astype(np.float64)
    aps = np.array([average_precision(targets[:, k], scores[:, k], interpolate)
                    for k in range(scores.shape[1])])
    return float(np.nanmean(aps)) if np.any(~np.isnan(aps)) else float("nan"), aps


def hico_targets(labels: np.ndarray) -> np.ndarray:
    """HICO's 1 / -1 / 0 / NaN -> 1 positive, 0 negative (-1 and NaN), -1 ignored (0)."""
    labels = np.asarray(labels, np.float64)
    targets = np.where(labels == 1, 1.0, 0.0)
    return np.where(labels == 0, -1.0, targets)


def average_per_video(video_ids: Sequence, scores: np.ndarray,
                      labels: Optional[np.ndarray] = None):
    """Averages the scores of every view/frame of a video (the paper's test protocol).

    Returns:
        (ids in first-seen order, (V, K) mean scores, labels of each video or None).
    """
    index, order = {}, []
    for position, video_id in enumerate(video_ids):
        key = video_id.decode() if isinstance(video_id, bytes) else str(video_id)
        if key not in index:
            index[key] = []
            order.append(key)
        index[key].append(position)
    scores = np.asarray(scores)
    mean_scores = np.stack([scores[index[key]].mean(axis=0) for key in order])
    video_labels = None
    if labels is not None:
        labels = np.asarray(labels)
        video_labels = np.stack([labels[index[key][0]] for key in order])
    return order, mean_scores, video_labels
