"""Percentile bootstrap over rows, for means of many quantities at once.

`bootstrap_weights` draws the resamples once as a ``[n_boot, n]`` matrix of row weights
(counts / n, each row sums to one); the resampled means of any ``[n, ...]`` array are then one
matrix product (`bootstrap_means`), and every quantity computed from the same weights is
resampled *together* (paired): differences, correlations across columns and verdicts built
from several means keep their dependence. Resampling can be stratified (rows are drawn with
replacement within each stratum, whose size is kept), e.g. by prompt template, so that every
resample has the design's mix.
"""

from __future__ import annotations

import warnings

import numpy as np


def bootstrap_weights(n: int, n_boot: int = 1000, seed: int = 0, strata: np.ndarray | None = None) -> np.ndarray:
    """``[n_boot, n]`` resampling weights: row b holds each row's count in resample b, divided by n.

    :param strata: a label per row; rows are resampled within their stratum (None: one stratum).
    :raises ValueError: ``n < 1``, ``n_boot < 1`` or `strata` of another length.
    """
    if n < 1 or n_boot < 1:
        raise ValueError(f"need at least one row and one resample, got n={n}, n_boot={n_boot}")
    labels = np.zeros(n, dtype=int) if strata is None else np.asarray(strata)
    if labels.shape != (n,):
        raise ValueError(f"strata has shape {labels.shape}, expected ({n},)")
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_boot, n))
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        picks = rows[rng.integers(0, len(rows), size=(n_boot, len(rows)))]
        np.add.at(counts, (np.repeat(np.arange(n_boot), len(rows)), picks.ravel()), 1.0)
    return counts / n


def bootstrap_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Resampled means ``[n_boot, ...]`` of `values` ``[n, ...]`` under `weights` ``[n_boot, n]``."""
    v = np.asarray(values, dtype=np.float64)
    if v.shape[0] != weights.shape[1]:
        raise ValueError(f"values have {v.shape[0]} rows, the weights {weights.shape[1]}")
    return (weights @ v.reshape(len(v), -1)).reshape((len(weights),) + v.shape[1:])


def percentile_interval(boots: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of the resamples along axis 0 (NaN resamples ignored): ``(low, high)``."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    tail = (1 - level) / 2 * 100
    with warnings.catch_warnings():  # an all-NaN column gives NaN bounds, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(np.asarray(boots, dtype=np.float64), [tail, 100 - tail], axis=0)
    return low, high


def row_rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of `a` and `b` ``[n_boot, k]`` row by row (average ranks; NaN where a row is constant)."""
    from scipy.stats import rankdata

    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(axis=1) * (rb ** 2).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, (ra * rb).sum(axis=1) / den, np.nan)


def mean_interval(values: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Mean of `values` (NaNs dropped) and its percentile bootstrap interval over rows:
    ``{"mean", "ci_low", "ci_high", "n"}`` (the same resamples as `bootstrap_weights` with one stratum)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return {"mean": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}
    idx = np.random.default_rng(seed).integers(0, len(v), size=(n_boot, len(v)))
    low, high = percentile_interval(v[idx].mean(axis=1), level)
    return {"mean": float(v.mean()), "ci_low": float(low), "ci_high": float(high), "n": int(len(v))}


def wilcoxon_p(differences) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (zeros dropped, as in Wilcoxon's test).

    1.0 when every difference is zero (nothing to rank); NaN for no differences.
    """
    from scipy.stats import wilcoxon

    d = np.asarray(differences, dtype=np.float64)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return float("nan")
    d = d[d != 0]  # dropped before the call, so that scipy's exact distribution applies to small samples
    if d.size == 0:
        return 1.0
    with warnings.catch_warnings():  # ties among the differences: scipy warns and uses the normal approximation
        warnings.simplefilter("ignore")
        return float(wilcoxon(d, alternative="two-sided").pvalue)


def paired_difference(a, b, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Paired comparison of two series measured on the same units, in the same order (NaN pairs dropped).

    :returns: ``n``, ``mean_a``, ``mean_b``, ``mean_diff`` (a - b), ``ci_low`` / ``ci_high`` (percentile
        bootstrap over units of the mean difference), ``wilcoxon_p`` (two-sided signed-rank test),
        ``n_nonzero`` and ``wins`` / ``ties`` / ``losses`` (units where a is above / equal to / below b).
    :raises ValueError: `a` and `b` of different shapes or not one-dimensional.
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired series need the same one-dimensional shape, got {x.shape} and {y.shape}")
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"n_boot must be >= 1 and level in (0, 1), got {n_boot} and {level}")
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    d = x - y
    ci = mean_interval(d, n_boot=n_boot, seed=seed, level=level)
    nan = float("nan")
    return {"n": int(d.size), "mean_a": float(x.mean()) if d.size else nan,
            "mean_b": float(y.mean()) if d.size else nan, "mean_diff": ci["mean"], "ci_low": ci["ci_low"],
            "ci_high": ci["ci_high"], "wilcoxon_p": wilcoxon_p(d), "n_nonzero": int(np.count_nonzero(d)),
            "wins": int((d > 0).sum()), "ties": int((d == 0).sum()), "losses": int((d < 0).sum())}
