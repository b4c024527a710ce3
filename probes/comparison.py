"""Two trained networks side by side: paired differences of their probe scores, concept by layer.

`probes.study` asks whether one network represents a concept beyond its controls. This module
asks how two trained networks of one architecture differ (e.g. a self-play agent and a
network distilled from an exact oracle): for every concept and every layer both have, the
held-out probe score of network *a* minus that of network *b*, both probed in the same sweep
folder, so on the same test games. The interval comes from the same paired bootstrap over
held-out games as the study's deltas (each replicate reweights the games once and rescores
both cells), two-sided p-values from the replicates' standard error (normal approximation),
Benjamini-Hochberg q-values over every (comparison, concept, layer) test of a sweep.

Across sweeps (one per agent seed, each with its own dataset), `across_seeds` gives a
verdict per (comparison, concept, layer): ``a higher`` when *a* exceeds *b* by more than the
margin with q < alpha in every seed, ``b higher`` for the reverse, ``mixed`` when both kinds
of seed occur, ``no difference shown`` otherwise. `summarise_concepts` keeps, per concept,
the layer with the largest mean difference in each direction, which is what the findings
in words are made of.

Game-agnostic: it reads a sweep folder's labels and saved predictions only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from probes.study import StudySettings, _one_sided_p, concept_scores, load_cells
from probes.tcav import benjamini_hochberg


@dataclass(frozen=True)
class Pairing:
    """One comparison inside a sweep: network `a` (run, step) against network `b` (run, step).

    :param name: what the comparison is called in tables (e.g. ``final vs final``).
    """

    name: str
    a_run: str
    a_step: int
    b_run: str
    b_step: int


def _two_sided_p(delta: float, se: float) -> float:
    """Two-sided p-value of ``delta != 0`` from the bootstrap standard error."""
    one = _one_sided_p(abs(delta), se, 0.0)
    return float(min(1.0, 2 * one)) if np.isfinite(one) else float("nan")


def network_differences(sweep_dir: str | Path, pairings: Sequence[Pairing], settings: StudySettings = StudySettings(),
                        concepts: Sequence[str] | None = None) -> pd.DataFrame:
    """Paired probe-score differences ``a - b`` for every pairing, concept and layer both networks have.

    Columns: comparison, a_run, a_step, b_run, b_step, concept, layer, layer_index, metric, a_value,
    b_value, delta (test), ci_low, ci_high (95% paired bootstrap over test games), se, p_value
    (two-sided), p_margin (``|delta| > margin`` in the observed direction), q_value, q_margin (BH over
    the sweep's tests), validation_delta, n_test_games.

    :raises ValueError: naming a (run, step) the sweep did not probe.
    """
    sweep_dir = Path(sweep_dir)
    probed = {(c.cell["run"], int(c.cell["step"])) for c in load_cells(sweep_dir)}
    for pairing in pairings:
        for run, step in ((pairing.a_run, pairing.a_step), (pairing.b_run, pairing.b_step)):
            if (run, step) not in probed:
                raise ValueError(f"{sweep_dir} has no cells of {run} at step {step}; it probed "
                                 f"{sorted(probed)}")
    rows = []
    for scores in concept_scores(sweep_dir, settings, concepts):
        scored = {(c["run"], int(c["step"]), c["layer"]): (float(t), r, float(v), int(c.get("layer_index", 0)))
                  for c, t, r, v in zip(scores.cells, scores.test, scores.replicates, scores.validation)}
        for pairing in pairings:
            layers = sorted({layer for run, step, layer in scored if (run, step) == (pairing.a_run, pairing.a_step)}
                            & {layer for run, step, layer in scored if (run, step) == (pairing.b_run, pairing.b_step)})
            for layer in layers:
                a = scored[(pairing.a_run, pairing.a_step, layer)]
                b = scored[(pairing.b_run, pairing.b_step, layer)]
                boot = a[1] - b[1]
                finite = boot[np.isfinite(boot)]
                se = float(np.std(finite, ddof=1)) if len(finite) > 1 else float("nan")
                lo, hi = np.percentile(finite, [2.5, 97.5]) if len(finite) else (np.nan, np.nan)
                delta = a[0] - b[0]
                p_margin = _one_sided_p(abs(delta), se, settings.margin) if np.isfinite(delta) else float("nan")
                rows.append({"comparison": pairing.name, "a_run": pairing.a_run, "a_step": pairing.a_step,
                             "b_run": pairing.b_run, "b_step": pairing.b_step, "concept": scores.concept,
                             "layer": layer, "layer_index": a[3], "metric": scores.metric,
                             "a_value": a[0], "b_value": b[0], "delta": delta, "ci_low": float(lo),
                             "ci_high": float(hi), "se": se, "p_value": _two_sided_p(delta, se),
                             "p_margin": p_margin, "validation_delta": a[2] - b[2],
                             "n_test_games": scores.n_test_games})
    table = pd.DataFrame(rows)
    if table.empty:
        raise ValueError(f"{sweep_dir}: the pairings share no probed concept and layer")
    for p, q in (("p_value", "q_value"), ("p_margin", "q_margin")):
        table[q] = benjamini_hochberg(table[p].fillna(1.0).to_numpy(), settings.alpha)[0]
    return table.sort_values(["comparison", "concept", "layer_index"]).reset_index(drop=True)


def _direction(row: pd.Series, settings: StudySettings) -> int:
    """+1 when a exceeds b beyond the margin (BH), -1 for the reverse, 0 otherwise."""
    if row["q_margin"] < settings.alpha and abs(row["delta"]) > settings.margin:
        return int(np.sign(row["delta"]))
    return 0


def across_seeds(tables: Sequence[pd.DataFrame], settings: StudySettings = StudySettings()) -> pd.DataFrame:
    """One row per (comparison, concept, layer) over the seeds' tables: the verdict and its spread.

    Columns: comparison, concept, layer, layer_index, metric, seeds, mean_delta, min_delta, max_delta,
    ci_low_min, ci_high_max (the widest of the seeds' intervals), a_higher_seeds, b_higher_seeds, verdict.
    """
    if not tables:
        raise ValueError("no comparison tables to combine")
    frames = []
    for seed, table in enumerate(tables):
        frame = table.copy()
        frame["seed"] = seed
        frame["direction"] = frame.apply(_direction, axis=1, settings=settings)
        frames.append(frame)
    every = pd.concat(frames, ignore_index=True)
    n = len(tables)
    rows = []
    for (comparison, concept, layer), part in every.groupby(["comparison", "concept", "layer"], sort=False):
        up, down = int((part["direction"] > 0).sum()), int((part["direction"] < 0).sum())
        complete = len(part) == n
        verdict = ("a higher" if complete and up == n else "b higher" if complete and down == n
                   else "mixed" if up and down else "no difference shown")
        rows.append({"comparison": comparison, "concept": concept, "layer": layer,
                     "layer_index": int(part["layer_index"].iloc[0]), "metric": part["metric"].iloc[0],
                     "seeds": len(part), "mean_delta": float(part["delta"].mean()),
                     "min_delta": float(part["delta"].min()), "max_delta": float(part["delta"].max()),
                     "ci_low_min": float(part["ci_low"].min()), "ci_high_max": float(part["ci_high"].max()),
                     "a_higher_seeds": up, "b_higher_seeds": down, "verdict": verdict})
    return pd.DataFrame(rows).sort_values(["comparison", "concept", "layer_index"]).reset_index(drop=True)


def summarise_concepts(combined: pd.DataFrame) -> pd.DataFrame:
    """Per (comparison, concept): how many layers go each way in every seed, and the strongest such layer.

    Columns: comparison, concept, metric, layers, a_higher_layers, b_higher_layers, verdict (``a higher``
    / ``b higher`` / ``both, at different layers`` / ``no difference shown``), layer, mean_delta,
    ci_low_min, ci_high_max (of the layer with the largest |mean difference| among the decided ones, or
    among all when none is decided).
    """
    rows = []
    for (comparison, concept), part in combined.groupby(["comparison", "concept"], sort=False):
        up = part[part["verdict"] == "a higher"]
        down = part[part["verdict"] == "b higher"]
        decided = pd.concat([up, down]) if len(up) or len(down) else part
        best = decided.loc[decided["mean_delta"].abs().idxmax()]
        verdict = ("both, at different layers" if len(up) and len(down) else "a higher" if len(up)
                   else "b higher" if len(down) else "no difference shown")
        rows.append({"comparison": comparison, "concept": concept, "metric": part["metric"].iloc[0],
                     "layers": len(part), "a_higher_layers": len(up), "b_higher_layers": len(down),
                     "verdict": verdict, "layer": best["layer"], "mean_delta": float(best["mean_delta"]),
                     "ci_low_min": float(best["ci_low_min"]), "ci_high_max": float(best["ci_high_max"])})
    return pd.DataFrame(rows).sort_values(["comparison", "verdict", "mean_delta"]).reset_index(drop=True)
