"""Probes: does a layer's activation linearly (or not) encode a concept?

Every probe is fitted on a train split and scored on a held-out split **grouped by game**
(positions of one game never straddle the split: neighbouring positions are near-copies,
and a probe could otherwise memorise). Regularisation strength is chosen by inner
cross-validation, also grouped by game. Metrics come with 95% bootstrap intervals over
the held-out games.

Probe types (`PROBES`):

* ``logistic``: L2 logistic regression, C by inner CV (binary concepts; categorical ones
  one-vs-rest, the class with the largest decision value predicted);
* ``l1``: L1 (sparse) logistic regression, C by inner CV;
* ``ridge``: ridge regression, alpha by inner CV (counts and continuous concepts);
* ``mlp``: one hidden layer (64 ReLU units, early stopping), classifier or regressor by
  kind: the gap to the linear probe measures non-linearly encoded information.

Non-convergence is recorded, not hidden: every `ProbeScore` says whether its solver met its
tolerance within its iteration budget (``converged``, ``n_iter``), and the first probe of a
kind that does not converge logs one warning per process.

Features are standardised on the train split. ``logistic`` and ``ridge`` are solved in
batches by `probes.batched` (`fit_probes` fits a whole sweep cell's concepts and controls at
once, with scikit-learn's objectives, and returns fitted scikit-learn pipelines); ``l1`` and
``mlp`` are scikit-learn estimators fitted one at a time. The module knows nothing about
games: it takes an activation matrix, labels, and group ids.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import sparse
from scipy.special import expit
from scipy.stats import rankdata
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, Ridge
from sklearn.model_selection import GroupKFold, GroupShuffleSplit
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from probes.batched import Standardiser, Whitening, fit_logistic_many, fit_ridge_many

log = logging.getLogger(__name__)

PROBES = ("logistic", "l1", "ridge", "mlp")
MAX_ITER = {"logistic": 100, "l1": 300, "mlp": 200}  # default iteration budgets (logistic: per C of the path)
_warned_not_converged: set[str] = set()  # probe names already warned about in this process
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
    converged: bool = True  # the solver met its tolerance within its iterations (ridge: closed form, always)
    n_iter: int | None = None  # iterations the solver used (None: closed form or not fitted)
    validation_metrics: dict[str, float] = field(default_factory=dict)  # the same metrics on the validation rows
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # "test" / "validation" -> predicted labels

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


def grouped_three_way_split(groups: np.ndarray, validation_size: float = 0.2, test_size: float = 0.2,
                            seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train, validation and test row indices (sorted), every group (game) wholly in one part.

    Validation rows are for choices (which layer, which hyperparameters); test rows are scored
    once, for the record.
    """
    if not (0 < validation_size < 1 and 0 < test_size < 1 and validation_size + test_size < 1):
        raise ValueError(f"validation_size and test_size must be in (0, 1) with a sum below 1, got "
                         f"{validation_size} and {test_size}")
    groups = np.asarray(groups)
    if len(np.unique(groups)) < 3:
        raise ValueError("a train/validation/test split needs positions from at least three games")
    rest, test = grouped_split(groups, test_size=test_size, seed=seed)
    inner_train, inner_val = grouped_split(groups[rest], test_size=validation_size / (1 - test_size), seed=seed)
    return np.sort(rest[inner_train]), np.sort(rest[inner_val]), np.sort(test)


def _inner_cv(groups: np.ndarray, folds: int = 3) -> list:
    k = min(folds, len(np.unique(groups)))
    return list(GroupKFold(n_splits=k).split(np.zeros(len(groups)), groups=groups))


def _check_probe(probe: str, kind: str) -> None:
    if probe not in PROBES:
        raise ValueError(f"unknown probe {probe!r}; probes: {PROBES}")
    if kind not in CLASSIFICATION_KINDS + REGRESSION_KINDS:
        raise ValueError(f"no probe for concept kind {kind!r}; kinds: {CLASSIFICATION_KINDS + REGRESSION_KINDS}")
    classify = kind in CLASSIFICATION_KINDS
    if probe in ("logistic", "l1") and not classify:
        raise ValueError(f"probe {probe!r} needs a binary or categorical concept, not {kind!r}; use ridge or mlp")
    if probe == "ridge" and classify:
        raise ValueError(f"probe 'ridge' needs a count or continuous concept, not {kind!r}; use logistic, l1 or mlp")


def make_probe(probe: str, kind: str, groups_train: np.ndarray, seed: int = 0, max_iter: int | None = None):
    """An unfitted scikit-learn pipeline (scaler + estimator) for the ``l1`` and ``mlp`` probes.

    ``logistic`` and ``ridge`` are fitted by `probes.batched` (many targets at once, the same
    objective as scikit-learn's) and come back from `fit_probes` as fitted pipelines.

    :param max_iter: the estimator's iteration budget (default `MAX_ITER`).
    """
    _check_probe(probe, kind)
    if max_iter is not None and max_iter < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}")
    budget = max_iter or MAX_ITER.get(probe, 100)
    if probe == "l1":
        est = LogisticRegressionCV(Cs=np.logspace(-3, 1, 5), cv=_inner_cv(groups_train), solver="saga",
                                   l1_ratios=(1.0,), scoring="neg_log_loss", max_iter=budget, random_state=seed,
                                   use_legacy_attributes=False)
    elif probe == "mlp" and kind in CLASSIFICATION_KINDS:
        est = MLPClassifier(hidden_layer_sizes=(64,), early_stopping=True, max_iter=budget, random_state=seed)
    elif probe == "mlp":
        est = MLPRegressor(hidden_layer_sizes=(64,), early_stopping=True, max_iter=budget, random_state=seed)
    else:
        raise ValueError(f"probe {probe!r} is fitted in batches by fit_probes, not by a scikit-learn estimator")
    return make_pipeline(StandardScaler(), est)


def _fitted_pipeline(standardiser: Standardiser, estimator) -> object:
    """A fitted scikit-learn pipeline (scaler + linear model) from batched-fit parameters."""
    scaler = StandardScaler()
    scaler.mean_, scaler.scale_ = standardiser.mean, standardiser.scale
    scaler.var_, scaler.n_features_in_, scaler.n_samples_seen_ = standardiser.scale ** 2, len(standardiser.mean), 0
    return make_pipeline(scaler, estimator)


def _logistic_estimator(coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray, C: np.ndarray):
    est = LogisticRegression(C=float(np.median(C)))
    est.coef_, est.intercept_ = np.asarray(coef, dtype=np.float64), np.asarray(intercept, dtype=np.float64)
    est.classes_, est.n_features_in_, est.n_iter_ = classes, coef.shape[1], np.zeros(1, dtype=int)
    est.C_ = np.asarray(C)
    return est


def _ridge_estimator(coef: np.ndarray, intercept: float, alpha: float):
    est = Ridge(alpha=alpha)
    est.coef_, est.intercept_, est.n_features_in_ = coef, intercept, len(coef)
    return est


def score_predictions(kind: str, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None) -> dict[str, float]:
    """Accuracy, balanced accuracy and AUROC (binary) for classes; R^2 for numbers.

    The same values as scikit-learn's ``accuracy_score``, ``balanced_accuracy_score`` (mean recall
    over the classes present in `y_true`), ``roc_auc_score`` (ties count one half; the larger
    label is the positive class) and ``r2_score`` (tested against them), computed directly: a
    sweep scores tens of thousands of probes, and scikit-learn's input validation costs ~7 ms
    a call (a 41-cell sweep ran 5:00 with it, 4:18 without, with identical results).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if kind in REGRESSION_KINDS:
        y = y_true.astype(np.float64)
        if len(y) == 0 or np.all(y == y[0]):
            return {"r2": float("nan")}
        sse = float(((y - np.asarray(y_pred, dtype=np.float64)) ** 2).sum())
        sst = float(((y - y.mean()) ** 2).sum())
        return {"r2": 1.0 - sse / sst}
    correct = y_true == y_pred
    classes, class_of = np.unique(y_true, return_inverse=True)
    recall = np.bincount(class_of, weights=correct, minlength=len(classes)) / np.bincount(class_of,
                                                                                          minlength=len(classes))
    out = {"accuracy": float(correct.mean()), "balanced_accuracy": float(recall.mean())}
    if kind == "binary" and proba is not None:
        out["auroc"] = _auroc(y_true == classes[-1], np.asarray(proba)) if len(classes) == 2 else float("nan")
    return out


def _auroc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties one half
    (the Mann-Whitney statistic from mid-ranks)."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    ranks = rankdata(score)  # mid-ranks for ties
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _weighted_metrics(kind: str, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None,
                      weights: np.ndarray) -> dict[str, np.ndarray]:
    """`score_predictions` for many row weightings at once (``weights`` [B, n]) -> metric -> [B]."""
    with np.errstate(invalid="ignore", divide="ignore"):
        total = weights.sum(axis=1)
        if kind in REGRESSION_KINDS:
            y = y_true.astype(np.float64)
            mean = weights @ y / total
            sst = weights @ (y * y) - total * mean * mean
            sse = weights @ ((y - y_pred) ** 2)
            r2 = np.where(sst > 1e-12 * np.maximum(total, 1), 1.0 - sse / sst, np.nan)
            return {"r2": r2}
        correct = (y_true == y_pred).astype(np.float64)
        out = {"accuracy": weights @ correct / total}
        recalls = []
        for c in np.unique(y_true):
            is_c = (y_true == c).astype(np.float64)
            support = weights @ is_c
            recalls.append(np.where(support > 0, weights @ (correct * is_c) / support, np.nan))
        out["balanced_accuracy"] = np.nanmean(np.stack(recalls), axis=0)
        if kind == "binary" and proba is not None:
            levels, level_of = np.unique(proba, return_inverse=True)
            one_hot = sparse.csr_matrix((np.ones(len(proba)), (np.arange(len(proba)), level_of)),
                                        shape=(len(proba), len(levels)))
            positive = (y_true == 1).astype(np.float64)
            pos_per_level = np.asarray(one_hot.T @ (weights * positive).T).T
            neg_per_level = np.asarray(one_hot.T @ (weights * (1.0 - positive)).T).T
            below = np.cumsum(neg_per_level, axis=1) - neg_per_level
            pairs = pos_per_level.sum(axis=1) * neg_per_level.sum(axis=1)
            wins = (pos_per_level * (below + 0.5 * neg_per_level)).sum(axis=1)
            out["auroc"] = np.where(pairs > 0, wins / pairs, np.nan)
        return out


def bootstrap_ci(kind: str, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None, groups: np.ndarray,
                 n_boot: int = 200, seed: int = 0) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of every metric, resampling held-out games with replacement.

    Vectorised: each bootstrap sample is a vector of per-game multiplicities, and every metric
    is computed for all samples at once as a weighted metric (ties in AUROC count one half).
    """
    if n_boot <= 0:
        return {}
    rng = np.random.default_rng(seed)
    unique, inverse = np.unique(groups, return_inverse=True)
    counts = rng.multinomial(len(unique), np.full(len(unique), 1.0 / len(unique)), size=n_boot).astype(np.float64)
    samples = _weighted_metrics(kind, np.asarray(y_true), np.asarray(y_pred), proba, counts[:, inverse])
    out = {}
    for k, v in samples.items():
        v = v[np.isfinite(v)]
        out[k] = (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) if len(v) else (np.nan, np.nan)
    return out


@dataclass
class Target:
    """One label vector to probe for: labels, concept kind, and whether to bootstrap its metrics."""

    labels: np.ndarray
    kind: str
    with_ci: bool = True
    tie: int | None = None  # reuse the regularisation chosen for this other target (e.g. a control task)


def _constant(kind: str, n: int, value) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions of a probe whose train split had one class only."""
    return np.full(n, value), (np.full(n, float(value)) if kind == "binary" else None)


def _note_convergence(scores: Sequence[ProbeScore], max_iter: int) -> None:
    """Warn once per probe name and process when some of `scores` did not converge."""
    for name in dict.fromkeys(s.probe for s in scores if not s.converged):
        if name in _warned_not_converged:
            continue
        _warned_not_converged.add(name)
        failed = sum(1 for s in scores if s.probe == name and not s.converged)
        log.warning("%d %s probe(s) did not converge within max_iter=%d (recorded as converged=False in the "
                    "results; further ones are not reported here); raise max_iter to fit them fully",
                    failed, name, max_iter)


def fit_probes(features: np.ndarray, targets: Sequence[Target], groups: np.ndarray, probe: str = "linear",
               split: tuple[np.ndarray, np.ndarray] | None = None, seed: int = 0, n_boot: int = 200,
               max_components: int | None = None, max_iter: int | None = None,
               validation: np.ndarray | None = None) -> list[ProbeScore]:
    """Fit one probe per target on the same features; score each on the held-out games.

    All logistic targets (binary, and categorical one-vs-rest) share one batched solve and
    all ridge targets one closed form (`probes.batched`), so a sweep cell costs about one
    fit however many concepts and controls it has. ``l1`` and ``mlp`` are fitted one target
    at a time with scikit-learn.

    :param features: ``[N, D]`` activations (see `probes.activations.as_flat` / `per_square`).
    :param targets: label vectors with their kinds.
    :param groups: ``[N]`` game ids (the split never separates positions of one game).
    :param probe: "linear" (logistic for classes, ridge for numbers), or a name in `PROBES`.
    :param split: fixed (train, test) row indices; default a 75/25 grouped split by `seed`.
    :param max_components: keep at most this many principal directions of the features for
        the logistic solves (None: all with non-negligible variance).
    :param max_iter: iteration budget of the iterative probes (default `MAX_ITER` per probe);
        whether each probe converged within it is in `ProbeScore.converged`.
    :param validation: rows (disjoint from both parts of `split`) also scored, without
        intervals, into `ProbeScore.validation_metrics`, for choices made before the test rows
        are looked at. Every score keeps its predicted labels on the test (and validation) rows
        in `ProbeScore.predictions`, for paired comparisons between probes.
    """
    if max_iter is not None and max_iter < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}")
    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    groups = np.asarray(groups)
    names = [default_probe(t.kind) if probe == "linear" else probe for t in targets]
    for t, name in zip(targets, names):
        if not (len(features) == len(t.labels) == len(groups)):
            raise ValueError(f"features, labels and groups differ in length: {len(features)}, {len(t.labels)}, "
                             f"{len(groups)}")
        _check_probe(name, t.kind)
    train, test = split if split is not None else grouped_split(groups, seed=seed)
    folds = {"test": np.asarray(test)}
    if validation is not None:
        folds["validation"] = np.asarray(validation)
    if any(name in ("l1", "mlp") for name in names):
        scores = [_fit_sklearn(features, t, groups, name, train, folds, seed, n_boot, max_iter)
                  for t, name in zip(targets, names)]
        _note_convergence(scores, max_iter or max(MAX_ITER[n] for n in names if n in MAX_ITER))
        return scores
    standardiser = Standardiser.fit(features[train])
    x_train = standardiser(features[train])
    x_folds = {fold: standardiser(features[rows]) for fold, rows in folds.items()}
    whitening = Whitening.fit(x_train, max_components)
    x_train_pc = x_train @ whitening.vectors  # principal coordinates (for ridge)
    columns, owners, classes_of = [], [], {}  # one logistic column per binary target, per class of a categorical
    for i, t in enumerate(targets):
        if t.kind in CLASSIFICATION_KINDS:
            classes = np.unique(t.labels[train])
            if len(classes) >= 2:
                for c in (classes[1:] if t.kind == "binary" else classes):
                    columns.append(t.labels[train] == c)
                    owners.append(i)
                    classes_of[(i, c)] = len(columns) - 1
    logistic = None
    if columns:
        tie = np.full(len(columns), -1)
        for (i, c), col in classes_of.items():
            j = targets[i].tie
            if j is not None:
                tie[col] = classes_of.get((j, c), next((k for (o, _), k in classes_of.items() if o == j), -1))
        logistic = fit_logistic_many(x_train, np.stack(columns, axis=1), groups[train], whitening, tie=tie,
                                     max_iter=max_iter or MAX_ITER["logistic"])
    ridge_of = {i: j for j, i in enumerate(i for i, t in enumerate(targets) if t.kind in REGRESSION_KINDS)}
    ridge = None
    if ridge_of:
        y = np.stack([targets[i].labels[train].astype(np.float64) for i in ridge_of], axis=1)
        tie = np.array([ridge_of.get(targets[i].tie, -1) for i in ridge_of])
        ridge = fit_ridge_many(x_train_pc, y, groups[train], tie=tie)
        ridge.coef = whitening.vectors @ ridge.coef  # back to standardised feature units
    scores = []
    for i, t in enumerate(targets):
        classify = t.kind in CLASSIFICATION_KINDS
        model, converged, n_iter = None, True, None
        if not classify:
            j = ridge_of[i]
            model = _fitted_pipeline(standardiser, _ridge_estimator(ridge.coef[:, j], float(ridge.intercept[j]),
                                                                    float(ridge.alpha[j])))

            def predict(x: np.ndarray, j=j) -> tuple[np.ndarray, None]:
                return x @ ridge.coef[:, j] + ridge.intercept[j], None
        elif i not in owners:
            def predict(x: np.ndarray, t=t) -> tuple[np.ndarray, np.ndarray | None]:
                return _constant(t.kind, len(x), t.labels[train][0])
        else:
            cols = [k for k, owner in enumerate(owners) if owner == i]
            coef, intercept = logistic.coef[:, cols].T, logistic.intercept[cols]
            converged, n_iter = bool(logistic.converged[cols].all()), logistic.n_iter
            classes = np.unique(t.labels[train])
            model = _fitted_pipeline(standardiser, _logistic_estimator(coef, intercept, classes, logistic.C[cols]))

            def predict(x: np.ndarray, t=t, coef=coef, intercept=intercept, classes=classes):
                decision = x @ coef.T + intercept
                if t.kind == "binary":
                    return np.where(decision[:, 0] > 0, classes[1], classes[0]), expit(decision[:, 0])
                return classes[np.argmax(decision, axis=1)], None
        predictions, metrics, ci = {}, {}, {}
        for fold, rows in folds.items():
            y_pred, proba = predict(x_folds[fold])
            y_true = t.labels[rows] if classify else t.labels[rows].astype(np.float64)
            predictions[fold] = y_pred
            metrics[fold] = score_predictions(t.kind, y_true, y_pred, proba)
            if fold == "test" and t.with_ci:
                ci = bootstrap_ci(t.kind, y_true, y_pred, proba, groups[rows], n_boot, seed)
        scores.append(ProbeScore(names[i], metrics["test"], ci, len(train), len(test), model, converged, n_iter,
                                 metrics.get("validation", {}), predictions))
    _note_convergence(scores, 3 * (max_iter or MAX_ITER["logistic"]))
    return scores


def _fit_sklearn(features: np.ndarray, target: Target, groups: np.ndarray, probe: str, train: np.ndarray,
                 folds: dict[str, np.ndarray], seed: int, n_boot: int, max_iter: int | None = None) -> ProbeScore:
    """One ``l1`` or ``mlp`` probe through its scikit-learn pipeline (convergence taken from its warnings),
    scored on each of `folds` (``"test"`` with intervals)."""
    y_train = target.labels[train]
    classify = target.kind in CLASSIFICATION_KINDS
    model, converged, n_iter = None, True, None
    if not (classify and len(np.unique(y_train)) < 2):
        model = make_probe(probe, target.kind, groups[train], seed, max_iter)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(features[train], y_train if classify else y_train.astype(np.float64))
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        for w in caught:  # pass on everything that is not about convergence
            if not issubclass(w.category, ConvergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        n_iter = int(np.max(getattr(model[-1], "n_iter_", 0)))
    predictions, metrics, ci = {}, {}, {}
    for fold, rows in folds.items():
        y_true = target.labels[rows] if classify else target.labels[rows].astype(np.float64)
        if model is None:
            y_pred, proba = _constant(target.kind, len(rows), y_train[0])
        else:
            y_pred = model.predict(features[rows])
            proba = (model.predict_proba(features[rows])[:, 1]
                     if target.kind == "binary" and len(model.classes_) == 2 else None)
        predictions[fold] = y_pred
        metrics[fold] = score_predictions(target.kind, y_true, y_pred, proba)
        if fold == "test" and target.with_ci:
            ci = bootstrap_ci(target.kind, y_true, y_pred, proba, groups[rows], n_boot, seed)
    return ProbeScore(probe, metrics["test"], ci, len(train), len(folds["test"]), model, converged, n_iter,
                      metrics.get("validation", {}), predictions)


def fit_probe(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, kind: str, probe: str | None = None,
              split: tuple[np.ndarray, np.ndarray] | None = None, seed: int = 0, n_boot: int = 200,
              max_iter: int | None = None) -> ProbeScore:
    """Fit one probe on a grouped train split and score it on the held-out games (see `fit_probes`).

    :param probe: a name in `PROBES` (default: `default_probe(kind)`).
    :param max_iter: iteration budget of iterative probes (default `MAX_ITER`).
    """
    return fit_probes(features, [Target(np.asarray(labels), kind, n_boot > 0)], groups, probe or "linear", split,
                      seed, n_boot, max_iter=max_iter)[0]


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

