"""Probes: does a layer's activation linearly (or not) encode a concept?

Every probe is fitted on a train split and scored on a held-out split **grouped by game**
(positions of one game never straddle the split: neighbouring positions are near-copies,
and a probe could otherwise memorise). Regularisation strength is chosen by inner
cross-validation, also grouped by game. Metrics come with 95% bootstrap intervals over
the held-out games.

Probe types (`PROBES`):

* ``logistic``: L2 logistic regression, C by inner CV (binary and categorical concepts);
* ``l1``: L1 (sparse) logistic regression, C by inner CV;
* ``ridge``: ridge regression, alpha by inner CV (counts and continuous concepts);
* ``mlp``: one hidden layer (64 ReLU units, early stopping), classifier or regressor by
  kind: the gap to the linear probe measures non-linearly encoded information.

Features are standardised on the train split. The module knows nothing about games: it
takes an activation matrix, labels, and group ids.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.metrics import accuracy_score, balanced_accuracy_score, r2_score, roc_auc_score
from sklearn.model_selection import GroupKFold, GroupShuffleSplit
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

PROBES = ("logistic", "l1", "ridge", "mlp")
CLASSIFICATION_KINDS = ("binary", "categorical")
REGRESSION_KINDS = ("count", "continuous")


@dataclass
class ProbeScore:
    """Held-out scores of one probe: metric -> value, with 95% bootstrap intervals over games."""

    probe: str
    metrics: dict[str, float]
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    n_train: int = 0
    n_test: int = 0
    model: object = None

    def __getitem__(self, metric: str) -> float:
        return self.metrics[metric]


def default_probe(kind: str) -> str:
    """The linear probe for a concept kind: logistic for classes, ridge for numbers."""
    if kind in CLASSIFICATION_KINDS:
        return "logistic"
    if kind in REGRESSION_KINDS:
        return "ridge"
    raise ValueError(f"no probe for concept kind {kind!r}; kinds: {CLASSIFICATION_KINDS + REGRESSION_KINDS}")


def grouped_split(groups: np.ndarray, test_size: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row indices with every group (game) wholly on one side."""
    groups = np.asarray(groups)
    if len(np.unique(groups)) < 2:
        raise ValueError("a grouped split needs positions from at least two games")
    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train, test = next(splitter.split(np.zeros(len(groups)), groups=groups))
    return train, test


def _inner_cv(groups: np.ndarray, folds: int = 3) -> list:
    k = min(folds, len(np.unique(groups)))
    return list(GroupKFold(n_splits=k).split(np.zeros(len(groups)), groups=groups))


def make_probe(probe: str, kind: str, groups_train: np.ndarray, seed: int = 0):
    """An unfitted scikit-learn pipeline (scaler + estimator) for `probe` on a `kind` concept."""
    classify = kind in CLASSIFICATION_KINDS
    if probe not in PROBES:
        raise ValueError(f"unknown probe {probe!r}; probes: {PROBES}")
    if probe in ("logistic", "l1") and not classify:
        raise ValueError(f"probe {probe!r} needs a binary or categorical concept, not {kind!r}; use ridge or mlp")
    if probe == "ridge" and classify:
        raise ValueError(f"probe 'ridge' needs a count or continuous concept, not {kind!r}; use logistic, l1 or mlp")
    cv = _inner_cv(groups_train)
    if probe == "logistic":
        est = LogisticRegressionCV(Cs=np.logspace(-3, 2, 6), cv=cv, l1_ratios=(0.0,), scoring="neg_log_loss",
                                   max_iter=500, random_state=seed, use_legacy_attributes=False)
    elif probe == "l1":
        est = LogisticRegressionCV(Cs=np.logspace(-3, 1, 5), cv=cv, solver="saga", l1_ratios=(1.0,),
                                   scoring="neg_log_loss", max_iter=300, random_state=seed, use_legacy_attributes=False)
    elif probe == "ridge":
        est = RidgeCV(alphas=np.logspace(-2, 4, 7), cv=cv)
    elif classify:
        est = MLPClassifier(hidden_layer_sizes=(64,), early_stopping=True, max_iter=200, random_state=seed)
    else:
        est = MLPRegressor(hidden_layer_sizes=(64,), early_stopping=True, max_iter=200, random_state=seed)
    return make_pipeline(StandardScaler(), est)


def score_predictions(kind: str, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None) -> dict[str, float]:
    """Accuracy, balanced accuracy and AUROC (binary) for classes; R^2 for numbers."""
    if kind in REGRESSION_KINDS:
        return {"r2": float(r2_score(y_true, y_pred)) if len(np.unique(y_true)) > 1 else float("nan")}
    out = {"accuracy": float(accuracy_score(y_true, y_pred)),
           "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred))}
    if kind == "binary" and proba is not None:
        out["auroc"] = float(roc_auc_score(y_true, proba)) if len(np.unique(y_true)) == 2 else float("nan")
    return out


def bootstrap_ci(kind: str, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None, groups: np.ndarray,
                 n_boot: int = 200, seed: int = 0) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of every metric, resampling held-out games with replacement."""
    rng = np.random.default_rng(seed)
    unique, inverse = np.unique(groups, return_inverse=True)
    rows_of = [np.flatnonzero(inverse == g) for g in range(len(unique))]
    samples: dict[str, list[float]] = {}
    for _ in range(n_boot):
        rows = np.concatenate([rows_of[g] for g in rng.integers(0, len(unique), len(unique))])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = score_predictions(kind, y_true[rows], y_pred[rows], None if proba is None else proba[rows])
        for k, v in m.items():
            samples.setdefault(k, []).append(v)
    return {k: (float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))) for k, v in samples.items()}


def fit_probe(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, kind: str, probe: str | None = None,
              split: tuple[np.ndarray, np.ndarray] | None = None, seed: int = 0, n_boot: int = 200) -> ProbeScore:
    """Fit one probe on a grouped train split and score it on the held-out games.

    :param features: ``[N, D]`` activations (see `probes.activations.as_flat` / `per_square`).
    :param labels: ``[N]`` concept labels.
    :param groups: ``[N]`` game ids (the split never separates positions of one game).
    :param kind: the concept's kind (binary / categorical / count / continuous).
    :param probe: a name in `PROBES` (default: `default_probe(kind)`).
    :param split: fixed (train, test) row indices; default a 75/25 grouped split by `seed`.
    """
    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    if not (len(features) == len(labels) == len(groups)):
        raise ValueError(f"features, labels and groups differ in length: {len(features)}, {len(labels)}, {len(groups)}")
    probe = probe or default_probe(kind)
    train, test = split if split is not None else grouped_split(groups, seed=seed)
    y_train = labels[train]
    classify = kind in CLASSIFICATION_KINDS
    if classify and len(np.unique(y_train)) < 2:
        constant = y_train[0]
        y_pred = np.full(len(test), constant)
        proba = np.full(len(test), float(constant)) if kind == "binary" else None
        model = None
    else:
        model = make_probe(probe, kind, groups[train], seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(features[train], y_train if classify else y_train.astype(np.float64))
        y_pred = model.predict(features[test])
        proba = model.predict_proba(features[test])[:, 1] if kind == "binary" and len(model.classes_) == 2 else None
    y_test = labels[test] if classify else labels[test].astype(np.float64)
    metrics = score_predictions(kind, y_test, y_pred, proba)
    ci = bootstrap_ci(kind, y_test, y_pred, proba, groups[test], n_boot=n_boot, seed=seed) if n_boot else {}
    return ProbeScore(probe, metrics, ci, len(train), len(test), model)


def probe_direction(score: ProbeScore) -> np.ndarray:
    """The unit weight vector of a fitted binary linear probe, in the original feature units."""
    if score.model is None:
        raise ValueError("this probe was not fitted (one class only in its train split)")
    scaler, est = score.model[0], score.model[-1]
    coef = getattr(est, "coef_", None)
    if coef is None or coef.shape[0] != 1:
        raise ValueError(f"probe {score.probe!r} has no single linear direction")
    w = coef[0] / scaler.scale_
    return w / np.linalg.norm(w)

