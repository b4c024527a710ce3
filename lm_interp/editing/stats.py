"""Uncertainty over edits: percentile-bootstrap intervals of means and paired tests between editors.

The unit is the edit (one case): every metric is first averaged over an edit's prompts, then
resampled over edits. `mean_interval` (from `probes.interventions`) gives the mean and its 95 %
percentile bootstrap interval; `paired_difference` compares two editors (or an editor and the
unedited model) on the *same* edits: the mean per-edit difference with a paired bootstrap
interval (edits resampled, differences kept together) and a two-sided Wilcoxon signed-rank test.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from probes.interventions import mean_interval

N_BOOT = 2000
LEVEL = 0.95

__all__ = ["N_BOOT", "LEVEL", "interval", "paired_difference", "wilcoxon_p"]


def interval(values: Sequence[float], n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> dict[str, float]:
    """``{"mean", "ci_low", "ci_high", "n"}`` of `values` over edits (NaNs dropped; percentile bootstrap).

    :raises ValueError: `values` is not one-dimensional, or `n_boot` / `level` out of range.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"expected one value per edit, got an array of shape {v.shape}")
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"n_boot must be >= 1 and level in (0, 1), got {n_boot} and {level}")
    return mean_interval(v, n_boot=n_boot, seed=seed, level=level)


def wilcoxon_p(differences: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of per-edit differences (zeros dropped, as in Wilcoxon's test).

    1.0 when every difference is zero (nothing to rank); NaN for no edits.
    """
    from scipy.stats import wilcoxon

    d = np.asarray(differences, dtype=np.float64)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return float("nan")
    if not np.any(d != 0):
        return 1.0
    with warnings.catch_warnings():  # few non-zero differences: scipy warns about the normal approximation
        warnings.simplefilter("ignore")
        return float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def paired_difference(a: Sequence[float], b: Sequence[float], n_boot: int = N_BOOT, seed: int = 0,
                      level: float = LEVEL) -> dict[str, float]:
    """Paired comparison of two per-edit series measured on the same edits, in the same order.

    :returns: ``n`` (edits where both are defined), ``mean_a``, ``mean_b``, ``mean_diff`` (a − b),
        ``ci_low`` / ``ci_high`` (percentile bootstrap over edits of the mean difference),
        ``wilcoxon_p`` (two-sided signed-rank test of the differences) and ``n_nonzero``.
    :raises ValueError: `a` and `b` of different lengths.
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired series need the same one-dimensional shape, got {x.shape} and {y.shape}")
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    d = x - y
    ci = interval(d, n_boot=n_boot, seed=seed, level=level)
    nan = float("nan")
    return {"n": int(d.size), "mean_a": float(x.mean()) if d.size else nan,
            "mean_b": float(y.mean()) if d.size else nan, "mean_diff": ci["mean"], "ci_low": ci["ci_low"],
            "ci_high": ci["ci_high"], "wilcoxon_p": wilcoxon_p(d), "n_nonzero": int(np.count_nonzero(d))}
