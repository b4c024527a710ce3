"""Uncertainty over edits: percentile-bootstrap intervals of means and paired tests between editors.

The unit is the edit (one case): every metric is first averaged over an edit's prompts, then
resampled over edits. `mean_interval` (from `probes.bootstrap`) gives the mean and its 95 %
percentile bootstrap interval; `paired_difference` compares two editors (or an editor and the
unedited model) on the *same* edits: the mean per-edit difference with a paired bootstrap
interval (edits resampled, differences kept together) and a two-sided Wilcoxon signed-rank test.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from probes.bootstrap import mean_interval, wilcoxon_p
from probes.bootstrap import paired_difference as shared_paired_difference

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


def paired_difference(a: Sequence[float], b: Sequence[float], n_boot: int = N_BOOT, seed: int = 0,
                      level: float = LEVEL) -> dict[str, float]:
    """Paired comparison of two per-edit series on the same edits (`probes.bootstrap.paired_difference`,
    with this module's resampling defaults)."""
    return shared_paired_difference(a, b, n_boot=n_boot, seed=seed, level=level)
