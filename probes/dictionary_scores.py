"""Scoring a dictionary's features against concept labels: coverage, probes side by side, what matches nothing.

Game-agnostic: a dictionary is seen through its feature activations (``codes [N, F]``), a
concept through a boolean label per row, rows through the game (group) they come from, and
rows are split into train / validation / test folds by game. Choices are made on train and
validation rows; test rows are scored once.

* `feature_aurocs`: the AUROC of every feature as a detector of a label (rank statistics, one
  pass for all features); `weighted_auroc` the same with per-row weights (bootstrap replicates).
* `score_concept`: for one concept, the **best single feature** (highest train AUROC; its F1 at
  the threshold that maximises train F1), the **best small set** (logistic regression on the k
  best features, k chosen on validation) and the **linear probe** on the same layer's
  activations (L2 logistic regression, C chosen on validation), all scored on the test rows,
  with a paired bootstrap over test games of feature-minus-probe; the raw test scores are
  returned too, so callers can pair one dictionary with another (`paired_difference`).
* `describe_features`: per feature, the concepts it detects (precision of its firing, with a
  lift over the base rate) and, for features that match no concept, the descriptor that best
  separates the rows where it fires from the rest (`descriptor_separations`; any named per-row
  quantity, e.g. a solver's value or a board property).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from scipy import stats
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

SET_SIZES = (1, 2, 4, 8)
PROBE_CS = (0.01, 0.1, 1.0)
MAX_FIT_ROWS = 10000  # rows a logistic regression is fitted on (drawn at random when there are more)


@dataclass(frozen=True)
class Folds:
    """Row indices of the train, validation and test folds, and the group (game) of every row."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    groups: np.ndarray


def feature_aurocs(codes: np.ndarray, labels: np.ndarray, ranks: np.ndarray | None = None) -> np.ndarray:
    """AUROC of every column of `codes` as a score for the boolean `labels` (0.5 for a constant column).

    :param ranks: precomputed ``scipy.stats.rankdata(codes, axis=0)`` (reuse across labels).
    """
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs rows of both classes")
    if ranks is None:
        ranks = stats.rankdata(codes, axis=0)
    return (ranks[y].sum(axis=0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def weighted_auroc(score: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """AUROC with per-row weights (a row drawn twice counts twice), ties counted half."""
    order = np.argsort(score, kind="mergesort")
    s, y, w = score[order], np.asarray(labels, bool)[order], weights[order]
    _, start = np.unique(s, return_index=True)
    pos_w = np.add.reduceat(np.where(y, w, 0.0), start)
    neg_w = np.add.reduceat(np.where(~y, w, 0.0), start)
    below = np.cumsum(neg_w) - neg_w
    total_pos, total_neg = pos_w.sum(), neg_w.sum()
    if total_pos == 0 or total_neg == 0:
        return float("nan")
    return float((pos_w * (below + 0.5 * neg_w)).sum() / (total_pos * total_neg))


def group_weights(groups: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, rows]`` bootstrap weights resampling whole groups (games) with replacement."""
    names, index = np.unique(groups, return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(names), size=(n_boot, len(names)))
    counts = np.stack([np.bincount(d, minlength=len(names)) for d in draws])
    return counts[:, index].astype(np.float64)


def auroc_replicates(score: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`weighted_auroc` for every row of ``weights [B, N]`` at once (one sort for all replicates)."""
    order = np.argsort(score, kind="mergesort")
    s, y = score[order], np.asarray(labels, bool)[order]
    _, start = np.unique(s, return_index=True)
    out = []
    for chunk in np.array_split(weights[:, order], max(1, len(weights) // 50)):
        pos = np.add.reduceat(chunk * y, start, axis=1)
        neg = np.add.reduceat(chunk * ~y, start, axis=1)
        below = np.cumsum(neg, axis=1) - neg
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append((pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1)))
    return np.concatenate(out)


def paired_difference(score_a: np.ndarray, score_b: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                      n_boot: int = 500, seed: int = 0) -> dict[str, float]:
    """AUROC(a) - AUROC(b) on the same rows, with a 95% bootstrap interval over groups (the same draws for both)."""
    y = np.asarray(labels, bool)
    point = roc_auc_score(y, score_a) - roc_auc_score(y, score_b)
    weights = group_weights(groups, n_boot, seed)
    diffs = auroc_replicates(score_a, y, weights) - auroc_replicates(score_b, y, weights)
    diffs = diffs[~np.isnan(diffs)]
    low, high = (np.percentile(diffs, [2.5, 97.5]) if len(diffs) else (np.nan, np.nan))
    return {"diff": float(point), "ci_low": float(low), "ci_high": float(high)}


def _subsample(rows: np.ndarray, limit: int, seed: int) -> np.ndarray:
    if len(rows) <= limit:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, limit, replace=False))


def probe_path(x_fit: np.ndarray, y_fit: np.ndarray, cs: Sequence[float] = PROBE_CS) -> dict[float, tuple]:
    """L2 logistic regressions for many targets at once: ``y_fit [N, T]`` booleans, one probe per column.

    Minimises, per target, ``C * sum(log loss) + ||w||^2 / 2`` (scikit-learn's objective, intercept not
    penalised) on standardised inputs with full-batch L-BFGS in float64, for each C in increasing
    order, each warm-started from the last. The targets share the rows, so one matrix product serves all.

    :returns: C -> ``(scaler, coef [D, T], intercept [T])``; use `probe_decision`.
    """
    scaler = StandardScaler().fit(x_fit)
    x = torch.as_tensor(scaler.transform(x_fit), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(y_fit, dtype=np.float64))
    n, d = x.shape
    w = torch.zeros(d, y.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(y.shape[1], dtype=torch.float64, requires_grad=True)
    out = {}
    for c in sorted(cs):
        optimiser = torch.optim.LBFGS([w, b], lr=1.0, max_iter=500, tolerance_grad=1e-7, tolerance_change=1e-10,
                                      history_size=20, line_search_fn="strong_wolfe")

        def closure(c=c):
            optimiser.zero_grad()
            logits = x @ w + b
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="sum") / n
            loss = loss + (w * w).sum() / (2 * c * n)
            loss.backward()
            return loss

        optimiser.step(closure)
        out[c] = (scaler, w.detach().numpy().copy(), b.detach().numpy().copy())
    return out


def probe_decision(model: tuple, x: np.ndarray) -> np.ndarray:
    """``[N, T]`` decision values of a `probe_path` entry on rows `x`."""
    scaler, coef, intercept = model
    return scaler.transform(x) @ coef + intercept


def _best_f1(score: np.ndarray, y: np.ndarray) -> float:
    """The threshold on `score` with the largest F1 for `y` (scores above it are predicted positive), among
    0 (for non-negative scores) and 60 quantiles from the median up."""
    candidates = np.unique(np.quantile(score, np.linspace(0.5, 0.999, 60)))
    candidates = np.concatenate([[0.0], candidates]) if score.min() >= 0 else candidates
    order = np.argsort(score, kind="stable")
    below = np.searchsorted(score[order], candidates, side="right")  # rows at or below each threshold
    positives_below = np.concatenate([[0], np.cumsum(np.asarray(y, bool)[order])])[below]
    n_positive = int(np.sum(y))
    true_positive = n_positive - positives_below
    predicted = len(score) - below
    f1 = 2 * true_positive / np.maximum(predicted + n_positive, 1)
    return float(candidates[int(np.argmax(f1))])


def probe_scores(activations: np.ndarray, labels: np.ndarray, folds: Folds, seed: int = 0,
                 cs: Sequence[float] = PROBE_CS) -> list[tuple[float, float, np.ndarray]]:
    """Linear probes of ``labels [N, T]`` (one per column, fitted together on the same train rows), C chosen
    on validation: per column ``(C, validation AUROC, test decision values)``."""
    y = np.asarray(labels, bool)
    fit_rows = _subsample(folds.train, MAX_FIT_ROWS, seed)
    models = probe_path(activations[fit_rows], y[fit_rows], cs)
    validation = {c: probe_decision(m, activations[folds.validation]) for c, m in models.items()}
    test = {c: probe_decision(m, activations[folds.test]) for c, m in models.items()}
    out = []
    for t in range(y.shape[1]):
        aucs = {c: roc_auc_score(y[folds.validation, t], v[:, t]) for c, v in validation.items()}
        best = max(aucs, key=aucs.get)
        out.append((float(best), float(aucs[best]), test[best][:, t]))
    return out


def score_concept(codes: np.ndarray, activations: np.ndarray, labels: np.ndarray, folds: Folds, *,
                  ranks_train: np.ndarray | None = None, n_boot: int = 500, seed: int = 0,
                  probe: tuple[float, float, np.ndarray] | None = None) -> dict:
    """How well a dictionary's features, and a linear probe, detect one concept (see the module docstring).

    :param codes: ``[N, F]`` feature activations of every row.
    :param activations: ``[N, D]`` the layer's activations on the same rows (for the probe).
    :param labels: ``[N]`` booleans.
    :param ranks_train: ``rankdata(codes[folds.train], axis=0)``, to share across concepts.
    :param probe: the probe's ``(C, validation AUROC, test scores)`` when already fitted (`probe_scores` fits
        many concepts at once); fitted here otherwise.
    :returns: a JSON-able record, and under ``_scores`` the test-row scores of the best feature,
        the small set and the probe (for pairing with another dictionary; drop before saving).
    :raises ValueError: when a fold holds a single class.
    """
    y = np.asarray(labels, bool)
    for name in ("train", "validation", "test"):
        part = y[getattr(folds, name)]
        if part.all() or not part.any():
            raise ValueError(f"the {name} rows hold a single class")
    tr, va, te = folds.train, folds.validation, folds.test
    auc_train = feature_aurocs(codes[tr], y[tr], ranks_train)
    order = np.argsort(-auc_train, kind="stable")
    best = int(order[0])
    threshold = _best_f1(codes[tr, best], y[tr])
    test_best = codes[te, best]

    fit_rows = _subsample(tr, MAX_FIT_ROWS, seed)
    set_val = {}
    set_models = {}
    for k in SET_SIZES:
        chosen = order[:k]
        if k == 1:
            set_models[k] = (chosen, lambda x: x[:, 0])
        else:
            fitted = probe_path(codes[np.ix_(fit_rows, chosen)], y[fit_rows, None], (1.0,))[1.0]
            set_models[k] = (chosen, lambda x, fitted=fitted: probe_decision(fitted, x)[:, 0])
        set_val[k] = roc_auc_score(y[va], set_models[k][1](codes[np.ix_(va, chosen)]))
    k_best = max(set_val, key=lambda k: (round(set_val[k], 4), -k))
    chosen, model = set_models[k_best]
    test_set = model(codes[np.ix_(te, chosen)])

    if probe is None:
        probe = probe_scores(activations, y[:, None], folds, seed)[0]
    c_best, probe_validation, test_probe = probe

    groups = folds.groups[te]
    record = {
        "prevalence": float(y.mean()), "n_test": int(len(te)), "n_test_positive": int(y[te].sum()),
        "best_feature": best, "best_feature_auroc_train": float(auc_train[best]),
        "best_feature_auroc_validation": float(roc_auc_score(y[va], codes[va, best])),
        "best_feature_auroc": float(roc_auc_score(y[te], test_best)),
        "best_feature_f1": float(f1_score(y[te], test_best > threshold, zero_division=0.0)),
        "best_feature_threshold": threshold,
        "set_size": int(k_best), "set_features": [int(f) for f in chosen],
        "set_auroc": float(roc_auc_score(y[te], test_set)),
        "set_auroc_validation": float(set_val[k_best]),
        "probe_c": float(c_best), "probe_auroc_validation": float(probe_validation),
        "probe_auroc": float(roc_auc_score(y[te], test_probe)),
    }
    for name, score in (("best_feature", test_best), ("set", test_set)):
        diff = paired_difference(score, test_probe, y[te], groups, n_boot, seed)
        record.update({f"{name}_minus_probe": diff["diff"], f"{name}_minus_probe_ci_low": diff["ci_low"],
                       f"{name}_minus_probe_ci_high": diff["ci_high"]})
    record["_scores"] = {"best_feature": test_best, "set": test_set, "probe": test_probe}
    return record


def descriptor_separations(fired: np.ndarray, descriptors: Mapping[str, np.ndarray],
                           min_rows: int = 10) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """How well each descriptor tells the rows where each feature fires from the rest.

    For descriptor ``d`` and feature ``f``: ``2 * AUROC - 1`` with ``d`` as the score and "f fires" as the
    label, on the rows where ``d`` is defined (not NaN): +1 when ``d`` is higher on every firing row
    than on every other row, -1 when lower, 0 when unrelated; scale-free and not diluted by how rarely
    the feature fires (a rank correlation over all rows is). NaN with fewer than `min_rows` rows of
    either kind.

    :param fired: ``[N, F]`` bool.
    :returns: ``(names, separation [D, F], mean of d where f fires [D, F], mean of d [D])``.
    """
    names = list(descriptors)
    separation = np.full((len(names), fired.shape[1]), np.nan)
    mean_fired = np.full_like(separation, np.nan)
    mean_all = np.full(len(names), np.nan)
    for i, name in enumerate(names):
        d = np.asarray(descriptors[name], dtype=np.float64)
        keep = ~np.isnan(d)
        if keep.sum() < 2 * min_rows or np.ptp(d[keep]) == 0:
            continue
        ranks = stats.rankdata(d[keep])
        f = fired[keep].astype(np.float64)
        n_pos = f.sum(axis=0)
        n_neg = len(ranks) - n_pos
        ok = (n_pos >= min_rows) & (n_neg >= min_rows)
        with np.errstate(invalid="ignore", divide="ignore"):
            auroc = (ranks @ f - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
            separation[i] = np.where(ok, 2 * auroc - 1, np.nan)
            mean_fired[i] = np.where(n_pos > 0, (d[keep] @ f) / n_pos, np.nan)
        mean_all[i] = d[keep].mean()
    return names, separation, mean_fired, mean_all


def concept_precisions(fired: np.ndarray, labels: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(names, precision [C, F], recall [C, F])`` of every feature's firing (``fired [N, F]`` bool) as a
    detector of every concept (``[N]`` bool); precision is NaN for a feature that never fires."""
    names = [n for n, y in labels.items() if np.asarray(y, bool).any()]
    if not names:
        return [], np.zeros((0, fired.shape[1])), np.zeros((0, fired.shape[1]))
    y = np.stack([np.asarray(labels[n], bool) for n in names]).astype(np.float32)  # [C, N]
    hits = y @ fired.astype(np.float32)  # [C, F] rows where the feature fires and the concept holds
    n_fired = fired.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = hits / n_fired[None, :]
    recall = hits / y.sum(axis=1, keepdims=True)
    return names, precision, recall


def describe_features(codes_test: np.ndarray, concept_labels: Mapping[str, np.ndarray],
                      descriptors: Mapping[str, np.ndarray], match_precision: float = 0.9, min_lift: float = 1.5,
                      min_fired: int = 20, min_frequency: float = 1e-3, top: int = 8,
                      solver_descriptors: Sequence[str] = ()) -> list[dict]:
    """One record per live feature: frequency, activation statistics, the concepts it detects, and for features
    that match none the descriptors that best tell where it fires.

    A feature **matches** a concept when, on the test rows where it fires (activation > 0, at least
    `min_fired` of them), the concept holds on at least `match_precision` of them and that is at least
    `min_lift` times the concept's base rate (a concept true almost everywhere matches nothing). Among
    matching concepts the one it covers best (highest recall) is its concept; a feature matching none
    is reported with the concept of best F1, for reference, and with the descriptor of largest
    |separation| (`descriptor_separations`), and the best of the `solver_descriptors` apart.

    :param codes_test: ``[N, F]`` test-row activations.
    :param concept_labels: concept -> ``[N]`` bool on the same rows.
    :param descriptors: name -> ``[N]`` per-row quantity (NaN where undefined).
    :param top: test rows kept per feature as its top activations (indices into `codes_test`).
    """
    fired = codes_test > 0
    freq = fired.mean(axis=0)
    n_fired = fired.sum(axis=0)
    names, precision, recall = concept_precisions(fired, concept_labels)
    base = np.array([np.asarray(concept_labels[n], bool).mean() for n in names])
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    live = np.flatnonzero(freq >= min_frequency)
    d_names, separation, mean_fired, mean_all = descriptor_separations(fired[:, live], descriptors)
    solver_rows = [i for i, n in enumerate(d_names) if n in set(solver_descriptors)]
    records = []
    for j, f in enumerate(live):
        column = codes_test[:, f]
        record = {"feature": int(f), "frequency": float(freq[f]), "n_fired": int(n_fired[f]),
                  "mean_when_active": float(column[fired[:, f]].mean()), "max": float(column.max()),
                  "matched": False, "concept": None, "precision": float("nan"), "recall": float("nan"),
                  "top_rows": [int(r) for r in np.argsort(-column, kind="stable")[:top]]}
        if names:
            ok = (precision[:, f] >= match_precision) & (precision[:, f] >= min_lift * base) & (n_fired[f] >= min_fired)
            if ok.any():
                best = int(np.flatnonzero(ok)[np.argmax(recall[ok, f])])
                record["matched"] = True
            else:
                best = int(np.argmax(f1[:, f]))
            record.update({"concept": names[best], "precision": float(precision[best, f]),
                           "recall": float(recall[best, f]), "concept_base_rate": float(base[best])})
        if not record["matched"]:
            for key, rows in (("best_descriptor", range(len(d_names))), ("best_solver_descriptor", solver_rows)):
                scored = [(abs(separation[i, j]), i) for i in rows if np.isfinite(separation[i, j])]
                if scored:
                    i = max(scored)[1]
                    record.update({key: d_names[i], f"{key}_separation": float(separation[i, j]),
                                   f"{key}_mean_when_fired": float(mean_fired[i, j]),
                                   f"{key}_mean": float(mean_all[i])})
        records.append(record)
    return records
