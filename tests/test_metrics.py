"""Metrics against scikit-learn and hand-worked examples."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve, top_k_accuracy_score

from keras_attnpool import metrics

RNG = np.random.default_rng(5)


def test_plain_ap_equals_scikit_learn():
    for _ in range(20):
        targets = RNG.integers(0, 2, 50)
        targets[0] = 1
        scores = np.round(RNG.normal(size=50), 1)  # ties included
        assert metrics.average_precision(targets, scores, interpolate=False) == pytest.approx(
            average_precision_score(targets, scores), abs=1e-12)


def test_monotone_ap_equals_the_envelope_of_scikit_learns_curve():
    for _ in range(20):
        targets = RNG.integers(0, 2, 40)
        targets[0] = 1
        scores = RNG.normal(size=40)
        precision, recall, _ = precision_recall_curve(targets, scores)
        precision, recall = precision[::-1], recall[::-1]        # recall ascending
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        expected = np.sum(np.diff(recall) * envelope[1:])
        assert metrics.average_precision(targets, scores) == pytest.approx(expected, abs=1e-12)
        assert metrics.average_precision(targets, scores) >= average_precision_score(
            targets, scores) - 1e-12


def test_ap_by_hand():
    # Ranked: +, -, +  -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
    # Monotone: 1 at recall 1/2, 2/3 at recall 1: AP = 1/2 + 1/2 * 2/3.
    assert metrics.average_precision([1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx(1 / 2 + 1 / 3)


def test_ambiguous_samples_are_left_out():
    targets = np.array([1, -1, 0, 1])  # -1 is ignored here (already mapped by hico_targets)
    scores = np.array([0.9, 0.95, 0.1, 0.8])
    assert metrics.average_precision(targets, scores) == pytest.approx(
        average_precision_score([1, 0, 1], [0.9, 0.1, 0.8]))


def test_hico_targets():
    labels = np.array([[1, -1, 0, np.nan]])
    np.testing.assert_array_equal(metrics.hico_targets(labels), [[1, 0, -1, 0]])


def test_map_over_classes_with_integer_labels():
    labels = RNG.integers(0, 4, 60)
    scores = RNG.normal(size=(60, 4))
    value, aps = metrics.mean_average_precision(labels, scores, interpolate=False)
    expected = [average_precision_score(labels == k, scores[:, k]) for k in range(4)]
    np.testing.assert_allclose(aps, expected)
    assert value == pytest.approx(np.mean(expected))


def test_top_k_and_mean_class_accuracy():
    labels = np.array([0, 0, 0, 1])
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    assert metrics.top_k_accuracy(labels, scores, 1) == pytest.approx(0.5)
    assert metrics.top_k_accuracy(labels, scores, 2) == pytest.approx(
        top_k_accuracy_score(labels, scores, k=2, labels=[0, 1, 2]))
    # class 0: 2/3 right, class 1: 0/1 -> mean 1/3; class 2 has no samples.
    assert metrics.mean_class_accuracy(labels, scores, 3) == pytest.approx(1 / 3)


def test_average_per_video():
    ids = [b"a", b"b", b"a", b"b", b"c"]
    scores = np.array([[1.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 3.0], [5.0, 5.0]])
    order, mean, labels = metrics.average_per_video(ids, scores, np.array([0, 1, 0, 1, 1]))
    assert order == ["a", "b", "c"]
    np.testing.assert_array_equal(mean, [[2.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    np.testing.assert_array_equal(labels, [0, 1, 1])
