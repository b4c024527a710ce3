"""Controls that tell a probe's success from memorisation and bugs.

* `majority_baseline`: the score of always predicting the train split's most common class
  (or its mean, for numbers) - what a probe must beat to have learned anything;
* `control_task_labels` (Hewitt & Liang 2019): every distinct input (e.g. a position's
  canonical key) gets a random label drawn from the concept's own label distribution, the
  same label wherever that input recurs. Only memorisation can fit it, so
  **selectivity = task score - control-task score** measures what the representation
  adds beyond a probe's capacity to memorise;
* `shuffled_labels`: labels permuted across rows; a probe scoring above chance on them
  means a leak in the pipeline (e.g. a split that is not grouped).

Random-weight networks of the same architecture are the fourth control; they are built by
whoever owns the model (`probes/` does not know architectures) and probed like any other.
"""

from __future__ import annotations

import numpy as np

from probes.linear import CLASSIFICATION_KINDS, score_predictions


def majority_baseline(labels: np.ndarray, kind: str, train: np.ndarray, test: np.ndarray) -> dict[str, float]:
    """Scores of the constant prediction fitted on `train` (most common class / mean), on `test`."""
    labels = np.asarray(labels)
    if kind in CLASSIFICATION_KINDS:
        values, counts = np.unique(labels[train], return_counts=True)
        constant = values[np.argmax(counts)]
        prediction = np.full(len(test), constant)
        proba = np.full(len(test), float(np.mean(labels[train] == 1))) if kind == "binary" else None
        return score_predictions(kind, labels[test], prediction, proba)
    y = labels.astype(np.float64)
    return score_predictions(kind, y[test], np.full(len(test), y[train].mean()), None)


def control_task_labels(keys: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Random labels, one per distinct key, drawn from the empirical distribution of `labels`.

    Rows with equal keys (the same position met in several games) get equal control labels,
    so the control task is consistent, as in Hewitt & Liang's per-word-type control.
    """
    keys = np.asarray(keys)
    labels = np.asarray(labels)
    if len(keys) != len(labels):
        raise ValueError(f"keys and labels differ in length: {len(keys)} vs {len(labels)}")
    rng = np.random.default_rng(seed)
    unique, inverse = np.unique(keys, return_inverse=True)
    per_key = labels[rng.integers(0, len(labels), size=len(unique))]
    return per_key[inverse]


def shuffled_labels(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """The labels permuted across rows (a pipeline check: probes must score at chance)."""
    return np.random.default_rng(seed).permutation(np.asarray(labels))
