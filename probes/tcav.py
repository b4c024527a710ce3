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
* **Significance**: CAVs are trained repeatedly against different negative samples
  (matched to the positives on a nuisance value such as the ply, when one is given), and
  the same number of *random* CAVs (a random half of the negatives against the other
  half); a two-sided Welch t-test compares the two score samples. All CAVs of one test
  are fitted as one batched problem (`probes.batched`). `benjamini_hochberg`
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
from torch import nn

from probes.batched import Standardiser, Whitening, fit_logistic_many


@dataclass
class CAV:
    """A concept activation vector: unit direction (in activation units) and held-out accuracy."""

    direction: np.ndarray
    accuracy: float


def _directions(coef_std: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Unit CAVs in activation units from weights on standardised features ([d, T] -> [T, d])."""
    w = (coef_std / scale[:, None]).T
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    return np.where(norms > 0, w / np.where(norms > 0, norms, 1.0), w)


def train_cav(positives: np.ndarray, negatives: np.ndarray, seed: int = 0, C: float = 1.0) -> CAV:
    """Separate positive from negative activations with L2 logistic regression (balanced by truncation).

    The classes are truncated to the smaller one's size, a third held out for the accuracy.
    """
    positives = positives.reshape(len(positives), -1)
    negatives = negatives.reshape(len(negatives), -1)
    n = min(len(positives), len(negatives))
    if n < 4:
        raise ValueError(f"a CAV needs at least 4 positives and 4 negatives, got {len(positives)} and {len(negatives)}")
    rng = np.random.default_rng(seed)
    x = np.concatenate([positives[rng.choice(len(positives), n, replace=False)],
                        negatives[rng.choice(len(negatives), n, replace=False)]])
    y = np.concatenate([np.ones(n), np.zeros(n)])
    test = np.zeros(2 * n, dtype=bool)
    test[rng.permutation(2 * n)[: (2 * n) // 3]] = True
    standardiser = Standardiser.fit(x[~test])
    x_std = standardiser(x)
    fit = fit_logistic_many(x_std[~test], y[~test, None], np.zeros((~test).sum()), C=C)
    accuracy = float((((x_std[test] @ fit.coef[:, 0] + fit.intercept[0]) > 0) == (y[test] == 1)).mean())
    return CAV(_directions(fit.coef, standardiser.scale)[0], accuracy)


def sensitivities(gradients: np.ndarray, cav: CAV) -> np.ndarray:
    """Directional derivatives ``grad . cav`` per input."""
    return gradients.reshape(len(gradients), -1) @ cav.direction


def gradient_is_constant(gradients: np.ndarray, tol: float = 1e-5, groups: np.ndarray | None = None) -> bool:
    """Whether the gradients point the same way for every input (zero gradients aside), or, with
    `groups`, the same way within each group (e.g. the output column a policy-logit target names).

    Then the target is, at this layer, a monotone function of one linear direction per group (a
    layer that feeds a linear head): an input's directional derivative along a CAV has a sign
    fixed by its group alone, each CAV's TCAV score only counts groups, and no test is possible.

    :param tol: largest ``1 - cosine`` between a gradient and the group's first non-zero one
        that still counts as the same direction.
    """
    flat = np.asarray(gradients, dtype=np.float64).reshape(len(gradients), -1)
    groups = np.zeros(len(flat), dtype=int) if groups is None else np.asarray(groups)
    if len(groups) != len(flat):
        raise ValueError(f"groups ({len(groups)}) must have one entry per gradient ({len(flat)})")
    norms = np.linalg.norm(flat, axis=1)
    nonzero = norms > 1e-12 * max(float(norms.max(initial=0.0)), 1e-300)
    if not nonzero.any():
        return len(flat) >= 2
    compared = 0
    for g in np.unique(groups[nonzero]):
        rows = nonzero & (groups == g)
        if rows.sum() < 2:
            continue
        unit = flat[rows] / norms[rows, None]
        if (1.0 - unit @ unit[0]).max() > tol:
            return False
        compared += 1
    return compared > 0


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


def _matched_sample(rng: np.random.Generator, wanted: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Indices into `pool` whose match values equal `wanted`'s (without replacement while possible,
    then with replacement; the nearest value when a value is missing from the pool)."""
    out = np.empty(len(wanted), dtype=int)
    values = np.unique(pool)
    for v in np.unique(wanted):
        slots = np.flatnonzero(wanted == v)
        candidates = np.flatnonzero(pool == v)
        if len(candidates) == 0:
            candidates = np.flatnonzero(pool == values[np.argmin(np.abs(values - v))])
        replace = len(candidates) < len(slots)
        out[slots] = rng.choice(candidates, len(slots), replace=replace)
    return out


@dataclass
class CAVSet:
    """Concept CAVs and random CAVs of one test: unit directions ``[runs, d]`` and held-out accuracies."""

    concept: np.ndarray
    random: np.ndarray
    concept_accuracy: np.ndarray
    random_accuracy: np.ndarray


def fit_cavs(positives: np.ndarray, negatives: np.ndarray, runs: int = 50, seed: int = 0,
             positive_match: np.ndarray | None = None, negative_match: np.ndarray | None = None,
             sample_size: int = 500, C: float = 1.0, max_components: int | None = None,
             geometry: tuple[Standardiser, Whitening] | None = None) -> CAVSet:
    """`runs` concept CAVs and `runs` random CAVs, fitted as one batched logistic problem.

    Concept CAV r separates a sample of positives from as many negatives (matched on
    `positive_match` / `negative_match`, e.g. the ply, when given); random CAV r separates two
    disjoint random halves of the negatives. A third of each CAV's rows is held out for its
    accuracy.

    :param positives: layer activations of concept-positive inputs.
    :param negatives: layer activations of negative inputs (the random pool).
    :param positive_match, negative_match: a nuisance value per input to match negatives on.
    :param sample_size: positives (and negatives) per CAV, at most.
    :param max_components: fit in at most this many principal directions (None: all).
    :param geometry: a standardiser and whitening to reuse (e.g. fitted once on a layer's
        train split for all its concepts); default: fitted on these positives and negatives.
    """
    if runs < 2:
        raise ValueError(f"runs must be at least 2 for a significance test, got {runs}")
    positives = positives.reshape(len(positives), -1)
    negatives = negatives.reshape(len(negatives), -1)
    m = min(len(positives), len(negatives) // 2, sample_size)
    if m < 4:
        raise ValueError(f"TCAV needs at least 4 positives and 8 negatives, got {len(positives)} and {len(negatives)}")
    if (positive_match is None) != (negative_match is None):
        raise ValueError("give both positive_match and negative_match, or neither")
    rng = np.random.default_rng(seed)
    x = np.concatenate([positives, negatives])
    n_pos = len(positives)
    labels = np.zeros((len(x), 2 * runs), dtype=np.float32)
    train_w = np.zeros_like(labels)
    test_w = np.zeros_like(labels)

    def assign(column: int, ones: np.ndarray, zeros: np.ndarray) -> None:
        rows = np.concatenate([ones, zeros])
        is_test = np.zeros(len(rows), dtype=bool)
        is_test[rng.permutation(len(rows))[: len(rows) // 3]] = True
        labels[ones, column] = 1.0
        np.add.at(train_w[:, column], rows[~is_test], 1.0)
        np.add.at(test_w[:, column], rows[is_test], 1.0)

    for r in range(runs):
        pos = rng.choice(n_pos, m, replace=False)
        if positive_match is not None:
            neg = _matched_sample(rng, np.asarray(positive_match)[pos], np.asarray(negative_match))
        else:
            neg = rng.choice(len(negatives), m, replace=False)
        assign(r, pos, n_pos + neg)
        halves = rng.permutation(len(negatives))
        assign(runs + r, n_pos + halves[:m], n_pos + halves[m: 2 * m])
    standardiser, whitening = geometry or (None, None)
    standardiser = standardiser or Standardiser.fit(x)
    x_std = standardiser(x)
    whitening = whitening or Whitening.fit(x_std, max_components)
    fit = fit_logistic_many(x_std, labels, np.zeros(len(x)), whitening, weight=train_w, C=C)
    correct = ((x_std @ fit.coef + fit.intercept) > 0) == (labels == 1)
    accuracy = (correct * test_w).sum(axis=0) / np.maximum(test_w.sum(axis=0), 1)
    directions = _directions(fit.coef, standardiser.scale)
    return CAVSet(directions[:runs], directions[runs:], accuracy[:runs], accuracy[runs:])


def tcav_test(cavs: CAVSet, gradients: np.ndarray) -> TCAVResult:
    """TCAV scores of concept and random CAVs on the explained inputs' gradients, and their t-test."""
    grads = gradients.reshape(len(gradients), -1)
    concept_s, random_s = grads @ cavs.concept.T, grads @ cavs.random.T  # [inputs, runs]
    concept_arr, random_arr = (concept_s > 0).mean(axis=0), (random_s > 0).mean(axis=0)
    total = np.abs(concept_s).sum(axis=0)
    magnitude = np.where(total > 0, np.clip(concept_s, 0, None).sum(axis=0) / np.where(total > 0, total, 1), 0.5)
    if np.ptp(concept_arr) == 0 and np.ptp(random_arr) == 0:
        p = 1.0 if concept_arr[0] == random_arr[0] else 0.0
    else:
        with warnings.catch_warnings():  # one sample may be constant (e.g. all scores 1.0)
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(stats.ttest_ind(concept_arr, random_arr, equal_var=False).pvalue)
    return TCAVResult(float(concept_arr.mean()), float(magnitude.mean()), float(random_arr.mean()), p,
                      float(cavs.concept_accuracy.mean()), concept_arr, random_arr)


def tcav(positives: np.ndarray, negatives: np.ndarray, gradients: np.ndarray, runs: int = 50, seed: int = 0,
         positive_match: np.ndarray | None = None, negative_match: np.ndarray | None = None,
         sample_size: int = 500) -> TCAVResult:
    """TCAV of a concept with significance against random CAVs (`fit_cavs` then `tcav_test`).

    :param gradients: gradients of the target w.r.t. the layer on the inputs being explained.
    """
    return tcav_test(fit_cavs(positives, negatives, runs, seed, positive_match, negative_match, sample_size), gradients)


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
    """Gradients of a per-input scalar target with respect to `layer`'s output (zeros where it does not depend on it).

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
            grad = captured[0].grad  # None when the target does not depend on the layer
            out.append(np.zeros((len(x), captured[0][0].numel()), dtype=np.float32) if grad is None
                       else grad.detach().cpu().numpy().reshape(len(x), -1))
            module.zero_grad(set_to_none=True)
    finally:
        handle.remove()
    return np.concatenate(out)
