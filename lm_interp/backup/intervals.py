"""Bootstrap intervals over prompts for the backup-head experiment, and verdicts that state them.

`PromptMeasurements` holds the per-prompt numbers the analysis already computes (clean logit
difference and DLA, and per ablation distribution the ablated logit difference and every
head's DLA change with the name movers ablated). `backup_intervals` resamples prompts
(stratified by template, one set of resamples shared by every quantity, so intervals of
differences and of rank correlations are paired) and reports, per prompt split (``all`` and,
when both are present, ``train`` and ``heldout`` templates apart):

* the clean logit difference, the movers', negative heads' and top heads' clean DLA;
* per distribution, the ablated logit difference and ΔDLA of the heads that matter;
* the Spearman correlation of backup scores between every pair of distributions;
* a verdict per head with its interval: under a distribution a head is ``above`` the backup
  threshold when the interval's lower bound exceeds it, ``below`` when the upper bound is under
  it, otherwise ``undecided``; overall it is a ``backup`` (above under every distribution),
  ``backup under some``, ``not a backup`` (below under every one) or ``undecided``. The same
  verdict is given on the frozen-scale ΔDLA (clean run's final-norm scale), which excludes
  norm rescaling: a head that is a backup on its own scale only is rescaled, not compensating.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from probes.bootstrap import (
    bootstrap_means,
    bootstrap_weights,
    percentile_interval,
    row_rank_correlation,
)

Head = tuple[int, int]


@dataclass
class PromptMeasurements:
    """Per-prompt measurements of one backup analysis (level 0: the name movers ablated).

    :param templates: template id per prompt ``[n]``; :param splits: ``train`` / ``heldout`` / other per prompt.
    :param clean_dla: ``[n, n_layers, n_heads]``; :param delta_dla: per distribution, ablated minus clean DLA
        ``[n, n_layers, n_heads]`` with the ablated run's own norm scale; :param delta_dla_frozen: the same with
        the clean run's scale.
    """

    templates: np.ndarray
    splits: np.ndarray
    clean_logit_diff: np.ndarray
    clean_dla: np.ndarray
    ablated_logit_diff: dict[str, np.ndarray] = field(default_factory=dict)
    delta_dla: dict[str, np.ndarray] = field(default_factory=dict)
    delta_dla_frozen: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.clean_logit_diff)
        arrays = {"templates": self.templates, "splits": self.splits, "clean_dla": self.clean_dla,
                  **{f"ablated_logit_diff[{d}]": v for d, v in self.ablated_logit_diff.items()},
                  **{f"delta_dla[{d}]": v for d, v in self.delta_dla.items()},
                  **{f"delta_dla_frozen[{d}]": v for d, v in self.delta_dla_frozen.items()}}
        for name, v in arrays.items():
            if len(v) != n:
                raise ValueError(f"{name} has {len(v)} prompts, clean_logit_diff {n}")

    def subset(self, rows: np.ndarray) -> PromptMeasurements:
        """The prompts at `rows` (indices or a boolean mask)."""
        return PromptMeasurements(self.templates[rows], self.splits[rows], self.clean_logit_diff[rows],
                                  self.clean_dla[rows], {d: v[rows] for d, v in self.ablated_logit_diff.items()},
                                  {d: v[rows] for d, v in self.delta_dla.items()},
                                  {d: v[rows] for d, v in self.delta_dla_frozen.items()})


def _label(head: Head) -> str:
    return f"{head[0]}.{head[1]}"


def _iv(mean: float, low: float, high: float) -> dict[str, float]:
    return {"mean": round(float(mean), 4), "low": round(float(low), 4), "high": round(float(high), 4)}


def _side(low: float, high: float, threshold: float) -> str:
    return "above" if low > threshold else "below" if high < threshold else "undecided"


def head_verdict(sides: list[str]) -> str:
    """Overall verdict from the per-distribution sides (see the module docstring)."""
    if sides and all(s == "above" for s in sides):
        return "backup"
    if "above" in sides:
        return "backup under some"
    if sides and all(s == "below" for s in sides):
        return "not a backup"
    return "undecided"


def split_intervals(m: PromptMeasurements, movers: list[Head], negative: list[Head], threshold: float,
                    n_boot: int = 1000, seed: int = 0, level: float = 0.95, n_top: int = 6) -> dict:
    """Intervals and verdicts on the prompts of `m` (one split); see the module docstring."""
    n = len(m.clean_logit_diff)
    w = bootstrap_weights(n, n_boot, seed, strata=m.templates)
    _, L, H = m.clean_dla.shape
    heads = [(layer, h) for layer in range(L) for h in range(H)]

    def interval(values: np.ndarray, resampled: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        low, high = percentile_interval(bootstrap_means(values, w) if resampled is None else resampled, level)
        return np.asarray(values, dtype=np.float64).mean(0), low, high

    ld = interval(m.clean_logit_diff)
    dla_mean, dla_low, dla_high = interval(m.clean_dla)
    top = sorted(heads, key=lambda x: -dla_mean[x])[:n_top]
    shown_clean = list(dict.fromkeys(list(movers) + list(negative) + top))
    out = {"n_prompts": n, "templates": sorted(set(m.templates.tolist())),
           "clean_logit_diff": _iv(*ld), "clean_accuracy": round(float((m.clean_logit_diff > 0).mean()), 4),
           "clean_dla": {_label(x): _iv(dla_mean[x], dla_low[x], dla_high[x]) for x in shown_clean}}

    candidates = [x for x in heads if x not in movers and x not in negative]
    dists = list(m.delta_dla)
    resampled = {"own_scale": {d: bootstrap_means(m.delta_dla[d], w) for d in dists},
                 "frozen_scale": {d: bootstrap_means(m.delta_dla_frozen[d], w) for d in dists
                                  if d in m.delta_dla_frozen}}
    delta = {d: interval(m.delta_dla[d], resampled["own_scale"][d]) for d in dists}
    frozen = {d: interval(m.delta_dla_frozen[d], b) for d, b in resampled["frozen_scale"].items()}
    sides = {x: [_side(delta[d][1][x], delta[d][2][x], threshold) for d in dists] for x in heads}
    frozen_sides = {x: [_side(frozen[d][1][x], frozen[d][2][x], threshold) for d in frozen] for x in heads}
    # heads that matter: any that is not clearly below the threshold everywhere, the top risers, negative heads
    risers = {x for d in dists for x in sorted(candidates, key=lambda x: -delta[d][0][x])[:3]}
    shown = [x for x in candidates if x in risers or head_verdict(sides[x]) != "not a backup"]
    shown = sorted(shown, key=lambda x: -max(delta[d][0][x] for d in dists)) + [x for x in negative
                                                                                 if x not in movers]
    out["distributions"] = {
        d: {"logit_diff": _iv(*interval(m.ablated_logit_diff[d])),
            "delta_dla": {_label(x): _iv(delta[d][0][x], delta[d][1][x], delta[d][2][x]) for x in shown},
            **({"delta_dla_frozen_scale": {_label(x): _iv(frozen[d][0][x], frozen[d][1][x], frozen[d][2][x])
                                           for x in shown}} if d in frozen else {})}
        for d in dists}

    # Spearman correlation of the candidates' backup scores between distributions, resampled together
    idx = tuple(np.array(candidates).T) if candidates else None
    corr = {}
    if idx is not None and len(candidates) >= 2:
        point = {d: m.delta_dla[d].mean(0)[idx] for d in dists}
        boots = {d: resampled["own_scale"][d][(slice(None),) + idx] for d in dists}      # [B, K]
        for a, b in itertools.combinations(dists, 2):
            est = row_rank_correlation(point[a][None], point[b][None])[0]
            low, high = percentile_interval(row_rank_correlation(boots[a], boots[b]), level)
            corr[f"{a} vs {b}"] = _iv(est, low, high)
    out["rank_correlation"] = corr
    out["robust_backup"] = {}
    if candidates:
        # the strongest robust backup: max over candidate heads of the smallest ΔDLA across distributions
        for key, values in (("own_scale", m.delta_dla), ("frozen_scale", m.delta_dla_frozen)):
            if not values:
                continue
            point = np.min([values[d].mean(0)[idx] for d in dists], axis=0)                          # [K]
            per_boot = np.min([resampled[key][d][(slice(None),) + idx] for d in dists], axis=0)   # [B, K]
            low, high = percentile_interval(per_boot.max(axis=1), level)
            out["robust_backup"][key] = {"head": _label(candidates[int(point.argmax())]),
                                         **_iv(point.max(), low, high)}
    out["verdicts"] = {}
    for x in shown:
        verdict = {"verdict": head_verdict(sides[x]), "negative": x in negative, "sides": dict(zip(dists, sides[x]))}
        if frozen:
            verdict.update(frozen_scale_verdict=head_verdict(frozen_sides[x]),
                           frozen_scale_sides=dict(zip(frozen, frozen_sides[x])))
        out["verdicts"][_label(x)] = verdict
    return out


def backup_intervals(m: PromptMeasurements, movers: list[Head], negative: list[Head], threshold: float,
                     n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """``{"n_boot", "level", "splits": {split: split_intervals(...)}}`` for ``all`` and, when the prompts
    span several splits, each split with at least 2 prompts."""
    splits = {"all": np.ones(len(m.clean_logit_diff), dtype=bool)}
    names = sorted(set(m.splits.tolist()))
    if len(names) > 1:
        splits.update({s: m.splits == s for s in names if (m.splits == s).sum() >= 2})
    return {"n_boot": n_boot, "level": level, "stratified_by": "template",
            "splits": {s: split_intervals(m.subset(rows), movers, negative, threshold, n_boot, seed, level)
                       for s, rows in splits.items()}}
