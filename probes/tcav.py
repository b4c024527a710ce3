"""TCAV (Kim et al. 2018): is a model's output sensitive to a concept direction in a layer?

* A **CAV** is the unit normal of a linear classifier (logistic regression) separating a
  layer's activations on concept-positive inputs from those on negatives (ideally matched
  on nuisance variables, e.g. ply-matched positions); its held-out accuracy is reported
  beside every score (a CAV near chance makes its TCAV meaningless).
* The **conceptual sensitivity** of an input is the directional derivative of the target
  (a scalar per input: a value head, a pre-mask policy logit, an LM logit) with respect to
  the layer's activation, along the CAV: ``grad . cav``.
* The **TCAV score** is the fraction of inputs with positive sensitivity (``sign``) and
  the magnitude variant ``sum(pos S) / sum(|S|)``.
* **Significance**: CAVs are trained repeatedly against different negative samples, and
  the same number of *random* CAVs (a random half of the negatives against the other
  half); a two-sided Welch t-test compares the two score samples. `benjamini_hochberg`
  controls the false-discovery rate over a whole grid of tests.

Inputs are activations and gradients as arrays; `layer_gradients` produces the gradients
for a torch module, so the module stays model-agnostic.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from torch import nn


@dataclass
class CAV:
    """A concept activation vector: unit direction (in activation units) and held-out accuracy."""

    direction: np.ndarray
    accuracy: float


def train_cav(positives: np.ndarray, negatives: np.ndarray, seed: int = 0) -> CAV:
    """Separate positive from negative activations with L2 logistic regression (balanced by truncation).

    The classes are truncated to the smaller one's size, a third held out for the accuracy.
    """
    positives = positives.reshape(len(positives), -1)
    negatives = negatives.reshape(len(negatives), -1)
    n = min(len(positives), len(negatives))
    if n < 4:
        raise ValueError(f"a CAV needs at least 4 positives and 4 negatives, got {len(positives)} and {len(negatives)}")
    rng = np.random.default_rng(seed)
    pos = positives[rng.choice(len(positives), n, replace=False)]
    neg = negatives[rng.choice(len(negatives), n, replace=False)]
    x = np.concatenate([pos, neg])
    y = np.concatenate([np.ones(n), np.zeros(n)])
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.33, stratify=y, random_state=seed)
    scale = x_train.std(axis=0) + 1e-8
    clf = LogisticRegression(C=1.0, max_iter=1000)
    clf.fit(x_train / scale, y_train)
    accuracy = float(clf.score(x_test / scale, y_test))
    w = clf.coef_[0] / scale
    norm = np.linalg.norm(w)
    direction = w / norm if norm > 0 else w
    return CAV(direction, accuracy)


def sensitivities(gradients: np.ndarray, cav: CAV) -> np.ndarray:
    """Directional derivatives ``grad . cav`` per input."""
    return gradients.reshape(len(gradients), -1) @ cav.direction


def tcav_scores(gradients: np.ndarray, cav: CAV) -> tuple[float, float]:
    """(sign score, magnitude score) of one CAV on a set of inputs."""
    s = sensitivities(gradients, cav)
    total = np.abs(s).sum()
    return float((s > 0).mean()), float(s[s > 0].sum() / total) if total > 0 else 0.5


@dataclass
class TCAVResult:
    """A concept's TCAV against random CAVs."""

    score: float  # mean sign score over concept CAVs
    magnitude: float  # mean magnitude score over concept CAVs
    random_score: float  # mean sign score over random CAVs
    p_value: float  # two-sided Welch t-test, concept vs random sign scores
    cav_accuracy: float  # mean held-out accuracy of the concept CAVs
    concept_scores: np.ndarray
    random_scores: np.ndarray


def tcav(positives: np.ndarray, negatives: np.ndarray, gradients: np.ndarray, runs: int = 50, seed: int = 0) -> TCAVResult:
    """TCAV of a concept with significance against random CAVs.

    :param positives: layer activations of concept-positive inputs.
    :param negatives: layer activations of negative inputs (the random pool).
    :param gradients: gradients of the target w.r.t. the layer on the inputs being explained.
    :param runs: concept CAVs (each on a different sample of negatives) and as many random CAVs.
    """
    if runs < 2:
        raise ValueError(f"runs must be at least 2 for a significance test, got {runs}")
    rng = np.random.default_rng(seed)
    concept, random_, accuracies, magnitudes = [], [], [], []
    n_neg = len(negatives)
    for r in range(runs):
        take = rng.choice(n_neg, size=min(n_neg, max(len(positives), n_neg // 2)), replace=False)
        cav = train_cav(positives, negatives[take], seed=int(rng.integers(1 << 31)))
        sign, magnitude = tcav_scores(gradients, cav)
        concept.append(sign)
        magnitudes.append(magnitude)
        accuracies.append(cav.accuracy)
        halves = rng.permutation(n_neg)
        random_cav = train_cav(negatives[halves[: n_neg // 2]], negatives[halves[n_neg // 2:]],
                               seed=int(rng.integers(1 << 31)))
        random_.append(tcav_scores(gradients, random_cav)[0])
    concept_arr, random_arr = np.array(concept), np.array(random_)
    if np.ptp(concept_arr) == 0 and np.ptp(random_arr) == 0:
        p = 1.0 if concept_arr[0] == random_arr[0] else 0.0
    else:
        with warnings.catch_warnings():  # one sample may be constant (e.g. all scores 1.0)
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(stats.ttest_ind(concept_arr, random_arr, equal_var=False).pvalue)
    return TCAVResult(float(concept_arr.mean()), float(np.mean(magnitudes)), float(random_arr.mean()), p,
                      float(np.mean(accuracies)), concept_arr, random_arr)


def benjamini_hochberg(p_values: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(q-values, significant) under Benjamini-Hochberg FDR control at level `alpha`."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p, p.astype(bool)
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    q = np.empty(m)
    q[order] = q_sorted
    return q, q <= alpha


def layer_gradients(module: nn.Module, layer: str, inputs: np.ndarray, target: Callable[[object], torch.Tensor],
                    forward: Callable[[nn.Module, torch.Tensor], object] | None = None,
                    batch_size: int = 512) -> np.ndarray:
    """Gradients of a per-input scalar target with respect to `layer`'s output.

    :param module: the network.
    :param layer: a name from ``module.named_modules()``.
    :param inputs: the inputs to explain.
    :param target: maps the forward's output to one scalar per input (e.g. ``lambda out: out[:, 3]``
        for a pre-mask logit, or the value head's output).
    :param forward: how to run the module (default ``module(batch)``).
    """
    modules = dict(module.named_modules())
    if layer not in modules:
        raise ValueError(f"{type(module).__name__} has no submodule named {layer!r}")
    run = forward or (lambda m, x: m(x))
    captured: list[torch.Tensor] = []

    def keep(m, i, o):  # continue the forward from a leaf copy of the layer's output
        leaf = o.detach().requires_grad_(True)
        captured.append(leaf)
        return leaf

    handle = modules[layer].register_forward_hook(keep)
    out = []
    try:
        for start in range(0, len(inputs), batch_size):
            captured.clear()
            x = torch.as_tensor(np.asarray(inputs[start:start + batch_size], dtype=np.float32))
            with torch.enable_grad():
                y = target(run(module, x))
                if y.shape != (len(x),):
                    raise ValueError(f"the target must give one scalar per input, got shape {tuple(y.shape)}")
                y.sum().backward()
            out.append(captured[0].grad.detach().cpu().numpy().reshape(len(x), -1))
            module.zero_grad(set_to_none=True)
    finally:
        handle.remove()
    return np.concatenate(out)
