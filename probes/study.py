"""What a network represents beyond its architecture and input: paired deltas against the strongest control.

A probe that decodes a concept from a trained network's layer proves little when the same
probe decodes it as well from a network with random weights, from the raw input, or from the
same network before training. This module turns a sweep folder (`probes.sweep.run_sweep`,
with its saved held-out predictions) into the statistics a finding stands on:

* **delta** for every (trained run, checkpoint, layer, concept) cell: the probe's held-out
  score (balanced accuracy for classes, R^2 for numbers) minus the **strongest control**,
  the largest score among the controls at that layer: every random-weight network, the same
  run's checkpoint at step 0, and the raw input (whose per-square probes see the whole board,
  `probes.activations.board_per_square`). The maximum is taken inside each bootstrap
  replicate, so the interval is that of ``agent - max(controls)`` itself;
* a **paired bootstrap over held-out games**: every cell is scored on the same test games,
  each replicate resamples games with replacement and rescores every cell on that resample
  (per-game sufficient statistics make this exact and cheap), so agent and controls move
  together; 95% percentile intervals, one-sided p-values for ``delta > 0`` and
  ``delta > margin`` from the replicates' standard error (normal approximation), and
  Benjamini-Hochberg q-values over the whole grid;
* **no selection on test data**: for each (run, checkpoint, concept) the layer is the one with
  the largest delta on the **validation** games (`choose_layers`); test scores of that layer
  are reported once;
* **emergence**: the first checkpoint whose chosen layer's delta exceeds `StudySettings.margin`,
  with BH over that run's (concept, checkpoint) tests of the chosen layers;
* **verdicts and findings** across runs (agent seeds): a concept is represented beyond the
  controls in a run when its last checkpoint's chosen-layer delta exceeds the margin with
  q < alpha in that same family (so a represented concept always has an emergence step), and
  "represented" overall only when that holds in every run (`findings`).

Game-agnostic: it reads labels, groups and predictions; concept families (for the sentences
of `finding_sentences`) come from the caller.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from probes.sweep_folder import (
    INPUT,
    LABELS_FILE,
    PREDICTIONS_DIR,
    RANDOM_WEIGHTS,
    SPLIT_FILE,
    TRAINED_ROLES,
    CellPredictions,
    read_labels,
    read_results,
    read_validation,
)
from probes.tcav import benjamini_hochberg

log = logging.getLogger(__name__)

STEP_ZERO = "step-0"
VERDICTS = ("yes", "not in every seed", "no")


@dataclass(frozen=True)
class StudySettings:
    """The thresholds and resampling of a study.

    :param margin: how far (balanced accuracy or R^2 points) a delta must clear to count as
        represented beyond the controls (and as emerged).
    :param alpha: false-discovery rate of every family of tests.
    :param n_boot: bootstrap replicates over held-out games.
    :param seed: seed of the replicates (the same replicates for every cell: paired).
    :param probe: which probe's predictions (``"linear"``: logistic or ridge by kind).
    """

    margin: float = 0.02
    alpha: float = 0.05
    n_boot: int = 1000
    seed: int = 0
    probe: str = "linear"

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha (--alpha) must be in (0, 1), got {self.alpha}")
        if self.n_boot < 10:
            raise ValueError(f"n_boot must be at least 10, got {self.n_boot}")
        if self.margin < 0:
            raise ValueError(f"margin (--margin) must be >= 0, got {self.margin}")


# ---------------------------------------------------------------------------- per-game statistics
def _game_statistics(regression: bool, y_true: np.ndarray, y_pred: np.ndarray, game: np.ndarray, n_games: int,
                     classes: np.ndarray) -> np.ndarray:
    """Sums per game that a metric is a function of: ``[games, k]``.

    Regression: count, sum y, sum y^2, sum of squared errors. Classes: per class, its rows and
    its correctly predicted rows (balanced accuracy is the mean recall of the classes present).
    """
    if regression:
        y, p = y_true.astype(np.float64), y_pred.astype(np.float64)
        columns = [np.ones_like(y), y, y * y, (y - p) ** 2]
    else:
        columns = []
        for c in classes:
            is_c = y_true == c
            columns += [is_c.astype(np.float64), (is_c & (y_pred == c)).astype(np.float64)]
    return np.stack([np.bincount(game, weights=col, minlength=n_games) for col in columns], axis=1)


def _metric(regression: bool, sums: np.ndarray) -> np.ndarray:
    """The metric from summed statistics ``[..., k]`` (any leading shape)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if regression:
            n, sy, syy, sse = (sums[..., i] for i in range(4))
            sst = syy - sy * sy / n
            return np.where(sst > 1e-12 * np.maximum(n, 1), 1.0 - sse / sst, np.nan)
        support, correct = sums[..., 0::2], sums[..., 1::2]
        recall = np.where(support > 0, correct / np.where(support > 0, support, 1), np.nan)
        present = (support > 0).sum(axis=-1)
        return np.where(present > 0, np.nansum(np.nan_to_num(recall, nan=0.0), axis=-1) / np.maximum(present, 1),
                        np.nan)


# ---------------------------------------------------------------------------- loading a sweep
@dataclass
class _Fold:
    """One concept's rows in one fold: labels, game index per row, and where each cell's predictions are."""

    y_true: np.ndarray
    game: np.ndarray
    n_games: int
    where: slice  # the fold's slice of a cell's saved prediction vector


def _folds(labels: np.ndarray, spatial: bool, layout: CellPredictions, groups: np.ndarray) -> dict[str, _Fold]:
    if spatial:
        positions, n_val = layout.square_positions, layout.n_validation_square_positions
        y = labels[positions].reshape(-1)
        per_row = np.repeat(positions, layout.n_squares)
        bounds = n_val * layout.n_squares
    else:
        positions, n_val = layout.position_rows, layout.n_validation_positions
        y, per_row, bounds = labels[positions], positions, n_val
    out = {}
    for fold, where in (("validation", slice(0, bounds)), ("test", slice(bounds, len(y)))):
        games, game = np.unique(groups[per_row[where]], return_inverse=True)
        out[fold] = _Fold(y[where], game, len(games), where)
    return out


def load_cells(sweep_dir: str | Path) -> list[CellPredictions]:
    """Every cell's saved predictions in a sweep folder (`probes.sweep_folder.CellPredictions`)."""
    folder = Path(sweep_dir) / PREDICTIONS_DIR
    files = sorted(folder.glob("*.npz")) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(f"{folder} holds no saved predictions: the sweep was run before paired statistics "
                                "were recorded (rerun probe_sweep.py into a new folder)")
    cells = [CellPredictions.load(f) for f in files]
    return [c for c in cells if c.cell]


def _is_control(cell: dict, agent: dict) -> bool:
    if cell["role"] == INPUT:
        return True
    if cell["layer"] != agent["layer"]:
        return False
    return cell["role"] == RANDOM_WEIGHTS or (cell["run"] == agent["run"] and cell["step"] == 0)


def _control_name(cell: dict) -> str:
    if cell["role"] in TRAINED_ROLES:
        return STEP_ZERO
    return cell["run"]


# ---------------------------------------------------------------------------- scores on shared replicates
@dataclass
class ConceptScores:
    """Every probed cell's score on one concept, on the sweep's validation and test games.

    :param cells: each cell's ``run``, ``role``, ``step``, ``layer`` (and ``layer_index``).
    :param test: each cell's held-out test score (balanced accuracy, or R^2 when `regression`).
    :param replicates: each cell's score in every bootstrap replicate of the test games (the same
        replicates for every cell: differences between cells are paired).
    :param validation: each cell's score on the validation games (for choosing layers).
    """

    concept: str
    regression: bool
    cells: list[dict]
    test: list[float]
    replicates: list[np.ndarray]
    validation: list[float]
    n_test_games: int

    @property
    def metric(self) -> str:
        return "r2" if self.regression else "balanced_accuracy"


def concept_scores(sweep_dir: str | Path, settings: StudySettings = StudySettings(),
                   concepts: Sequence[str] | None = None) -> Iterator[ConceptScores]:
    """Score every cell of a sweep folder on each concept (in name order), with paired bootstrap replicates
    over test games drawn once per concept from `settings.seed` (`paired_deltas`, `probes.comparison`)."""
    sweep_dir = Path(sweep_dir)
    data = read_labels(sweep_dir / LABELS_FILE)
    groups = np.asarray(data["groups"])
    if read_validation(sweep_dir / SPLIT_FILE) is None:
        raise ValueError(f"{sweep_dir} has no validation folds: rerun the sweep to choose layers without test data")
    results = read_results(sweep_dir)
    numeric = set(results.loc[(results["probe"] == settings.probe) & (results["metric"] == "r2"), "concept"])
    cells = load_cells(sweep_dir)
    prefix = f"{settings.probe}:"
    names = sorted({k[len(prefix):] for c in cells for k in c.predictions if k.startswith(prefix)})
    if concepts is not None:
        names = [n for n in names if n in set(concepts)]
    rng = np.random.default_rng(settings.seed)
    for concept in names:
        labels = np.asarray(data[f"concept:{concept}"])
        regression = concept in numeric
        having = [c for c in cells if f"{prefix}{concept}" in c.predictions]
        folds = _folds(labels, labels.ndim == 2, having[0], groups)
        classes = np.unique(folds["test"].y_true) if not regression else np.array([])
        test = folds["test"]
        weights = rng.multinomial(test.n_games, np.full(test.n_games, 1.0 / test.n_games), size=settings.n_boot)
        point, boot, validation = [], [], []
        for c in having:
            pred = c.predictions[f"{prefix}{concept}"]
            sums = {fold: _game_statistics(regression, f.y_true, pred[f.where], f.game, f.n_games, classes)
                    for fold, f in folds.items()}
            point.append(_metric(regression, sums["test"].sum(axis=0)))
            boot.append(_metric(regression, weights @ sums["test"]))
            validation.append(_metric(regression, sums["validation"].sum(axis=0)))
        yield ConceptScores(concept, regression, [c.cell for c in having], point, boot, validation, test.n_games)


# ---------------------------------------------------------------------------- deltas
def paired_deltas(sweep_dir: str | Path, settings: StudySettings = StudySettings(),
                  concepts: Sequence[str] | None = None) -> pd.DataFrame:
    """Delta against the strongest control for every trained (run, checkpoint > 0, layer, concept) cell.

    Columns: run, role, step, layer, layer_index, concept, metric, value (test), control (the
    strongest control on the test games), control_value, delta, ci_low, ci_high (95% paired
    bootstrap), se, p_value (delta > 0), p_margin (delta > margin), q_value and q_margin
    (BH over the grid), validation_value, validation_control_value, validation_delta,
    n_test_games, controls (how many).
    """
    sweep_dir = Path(sweep_dir)
    rows = []
    for scores in concept_scores(sweep_dir, settings, concepts):
        having, point, boot, validation = scores.cells, scores.test, scores.replicates, scores.validation
        for i, agent in enumerate(having):
            if agent["role"] not in TRAINED_ROLES or agent["step"] == 0:
                continue
            controls = [j for j, c in enumerate(having) if j != i and _is_control(c, agent)]
            if not controls:
                log.warning("no control for %s at %s/%s step %d; skipped", scores.concept, agent["run"],
                            agent["layer"], agent["step"])
                continue
            control_points = np.array([point[j] for j in controls])
            strongest = controls[int(np.nanargmax(np.nan_to_num(control_points, nan=-np.inf)))]
            with warnings.catch_warnings():  # a replicate where no control has a score (e.g. one class drawn)
                warnings.simplefilter("ignore", RuntimeWarning)
                control_boot = np.nanmax(np.stack([boot[j] for j in controls]), axis=0)
            delta_boot = boot[i] - control_boot
            delta = float(point[i] - np.nanmax(control_points))
            finite = delta_boot[np.isfinite(delta_boot)]
            se = float(np.std(finite, ddof=1)) if len(finite) > 1 else np.nan
            lo, hi = (np.percentile(finite, [2.5, 97.5]) if len(finite) else (np.nan, np.nan))
            val_control = np.nanmax([validation[j] for j in controls])
            rows.append({"run": agent["run"], "role": agent["role"], "step": int(agent["step"]),
                         "layer": agent["layer"], "layer_index": int(agent.get("layer_index", 0)),
                         "concept": scores.concept, "metric": scores.metric, "value": float(point[i]),
                         "control": _control_name(having[strongest]),
                         "control_value": float(point[strongest]), "delta": delta, "ci_low": float(lo),
                         "ci_high": float(hi), "se": se, "p_value": _one_sided_p(delta, se, 0.0),
                         "p_margin": _one_sided_p(delta, se, settings.margin),
                         "validation_value": float(validation[i]), "validation_control_value": float(val_control),
                         "validation_delta": float(validation[i] - val_control),
                         "n_test_games": scores.n_test_games, "controls": len(controls)})
    table = pd.DataFrame(rows)
    if table.empty:
        raise ValueError(f"{sweep_dir} has no trained cell with controls to compare (needs trained checkpoints past "
                         "step 0 and random-weight, input or step-0 cells)")
    for p, q in (("p_value", "q_value"), ("p_margin", "q_margin")):
        table[q] = benjamini_hochberg(table[p].fillna(1.0).to_numpy(), settings.alpha)[0]
    return table.sort_values(["run", "concept", "step", "layer_index"]).reset_index(drop=True)


def _one_sided_p(delta: float, se: float, threshold: float) -> float:
    """P-value of ``delta > threshold`` under a normal approximation with the bootstrap standard error."""
    if not np.isfinite(delta):
        return np.nan
    if not np.isfinite(se) or se <= 0:
        return 0.0 if delta > threshold else 1.0
    return float(stats.norm.sf((delta - threshold) / se))


def choose_layers(deltas: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, step, concept): the layer with the largest **validation** delta (ties: the earliest)."""
    ranked = deltas.assign(_key=deltas["validation_delta"].fillna(-np.inf))
    ranked = ranked.sort_values(["run", "step", "concept", "_key", "layer_index"], ascending=[True, True, True, False, True])
    return ranked.groupby(["run", "step", "concept"], sort=False).head(1).drop(columns="_key").reset_index(drop=True)


def chosen_tests(chosen: pd.DataFrame, settings: StudySettings = StudySettings()) -> pd.DataFrame:
    """`chosen` with ``q`` and ``significant`` for ``delta > margin``: Benjamini-Hochberg over each run's
    (concept, checkpoint) tests of its chosen layers - one family for both emergence and the final verdict."""
    out = []
    for _, group in chosen.groupby("run", sort=False):
        q, significant = benjamini_hochberg(group["p_margin"].fillna(1.0).to_numpy(), settings.alpha)
        out.append(group.assign(q=q, significant=significant))
    return pd.concat(out, ignore_index=True)


def emergence(tested: pd.DataFrame) -> pd.DataFrame:
    """Per (run, concept): the first checkpoint whose chosen layer's delta exceeds the margin
    (`chosen_tests`), NaN if none. Columns: run, concept, emergence_step, layer, delta, ci_low, ci_high, q."""
    rows = []
    for (run, concept), g in tested.groupby(["run", "concept"], sort=False):
        hits = g[g["significant"]].sort_values("step")
        first = hits.iloc[0] if len(hits) else None
        rows.append({"run": run, "concept": concept,
                     "emergence_step": float(first["step"]) if first is not None else np.nan,
                     "layer": first["layer"] if first is not None else "",
                     "delta": first["delta"] if first is not None else np.nan,
                     "ci_low": first["ci_low"] if first is not None else np.nan,
                     "ci_high": first["ci_high"] if first is not None else np.nan,
                     "q": first["q"] if first is not None else np.nan})
    return pd.DataFrame(rows)


def final_verdicts(tested: pd.DataFrame) -> pd.DataFrame:
    """Per (run, concept) at the run's last checkpoint: the chosen layer, its test delta with interval,
    ``q`` and ``represented`` (delta > margin, significant in `chosen_tests`' family)."""
    last = tested.groupby("run")["step"].transform("max")
    return tested[tested["step"] == last].rename(columns={"significant": "represented"}).reset_index(drop=True)


@dataclass
class Study:
    """Everything the findings rest on, for one or more sweeps (agent seeds): every delta, the
    validation-chosen layer per (run, checkpoint, concept) with its test (`chosen_tests`), emergence and
    final verdicts."""

    deltas: pd.DataFrame
    chosen: pd.DataFrame
    emergence: pd.DataFrame
    verdicts: pd.DataFrame
    settings: StudySettings


def analyse(sweep_dirs: Sequence[str | Path], settings: StudySettings = StudySettings(),
            concepts: Sequence[str] | None = None) -> Study:
    """Deltas, validation-chosen layers, emergence and final verdicts of every trained run of the sweeps.

    Run names must be distinct across sweeps (one run per seed, e.g. ``connect4-seed0``).
    """
    frames = [paired_deltas(d, settings, concepts) for d in sweep_dirs]
    runs = [set(f["run"]) for f in frames]
    if sum(len(r) for r in runs) != len(set().union(*runs)):
        raise ValueError(f"the sweeps share run names {sorted(runs)}: give each seed's run its own name")
    deltas = pd.concat(frames, ignore_index=True)
    tested = chosen_tests(choose_layers(deltas), settings)
    return Study(deltas, tested, emergence(tested), final_verdicts(tested), settings)


# ---------------------------------------------------------------------------- findings
def findings(study: Study, runs: Sequence[str] | None = None, families: Mapping[str, str] | None = None,
             tcav: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per concept over `runs` (default: every agent run, else every trained run): the verdict and
    where, since when, how strongly.

    Columns: concept, family, metric, verdict (``yes``: represented beyond the strongest control in
    every run; ``not in every seed``; ``no``), runs_represented ("k/n"), layer (the chosen layer
    most runs agree on), layers (per run), emergence_step (the latest run's emergence, i.e. when
    every run has it; NaN unless the verdict is yes), emergence_steps (per run), delta (mean over runs),
    delta_min_ci_low / delta_max_ci_high (the widest of the runs' intervals), deltas (per run,
    with intervals), strongest_control (per run), tcav (see `tcav_summary`).

    :param families: concept -> family (e.g. the concept's cost tier) for grouping sentences.
    :param tcav: `tcav_summary` rows, joined on concept.
    """
    verdicts = study.verdicts
    if runs is None:
        runs = list(dict.fromkeys(verdicts.loc[verdicts["role"] == "agent", "run"]))
        if not runs:  # a sweep of reference networks only: their findings
            runs = list(dict.fromkeys(verdicts["run"]))
    runs = list(runs)
    if not runs:
        raise ValueError("no agent runs in the study")
    v = verdicts[verdicts["run"].isin(runs)]
    em = study.emergence.set_index(["run", "concept"])
    rows = []
    for concept, g in v.groupby("concept", sort=True):
        g = g.set_index("run").reindex(runs)
        present = g["delta"].notna()
        k = int(g["represented"].fillna(False).astype(bool).sum())
        n = int(present.sum())
        verdict = "yes" if n == len(runs) and k == n else ("no" if k == 0 else "not in every seed")
        steps = [em.loc[(r, concept), "emergence_step"] if (r, concept) in em.index else np.nan for r in runs]
        layers = g["layer"].fillna("")
        mode = layers[layers != ""].mode()
        rows.append({
            "concept": concept, "family": (families or {}).get(concept, ""), "metric": g["metric"].dropna().iloc[0],
            "verdict": verdict, "runs_represented": f"{k}/{len(runs)}",
            "layer": mode.iloc[0] if len(mode) else "", "layers": "; ".join(f"{r}: {layers[r]}" for r in runs),
            "emergence_step": float(max(steps)) if verdict == "yes" and not np.isnan(steps).any() else np.nan,
            "emergence_steps": "; ".join(f"{r}: {'-' if np.isnan(s) else f'{int(s):,}'}" for r, s in zip(runs, steps)),
            "delta": float(g["delta"].mean()), "delta_min_ci_low": float(g["ci_low"].min()),
            "delta_max_ci_high": float(g["ci_high"].max()),
            "deltas": "; ".join(f"{r}: {g.loc[r, 'delta']:+.3f} [{g.loc[r, 'ci_low']:+.3f}, {g.loc[r, 'ci_high']:+.3f}]"
                                for r in runs if present[r]),
            "value": float(g["value"].mean()), "control_value": float(g["control_value"].mean()),
            "strongest_control": "; ".join(f"{r}: {g.loc[r, 'control']}" for r in runs if present[r]),
        })
    table = pd.DataFrame(rows)
    if tcav is not None and len(tcav):
        table = table.merge(tcav, on="concept", how="left")
        table["tcav"] = table["tcav"].fillna("-")
    else:
        table["tcav"] = "-"
    order = {name: i for i, name in enumerate(VERDICTS)}
    return table.sort_values(["verdict", "delta"], key=lambda s: s.map(order) if s.name == "verdict" else -s)\
        .reset_index(drop=True)


def tcav_summary(results: Sequence[pd.DataFrame], runs: Sequence[str]) -> pd.DataFrame:
    """Per concept, the valid TCAV tests at each run's last checkpoint: ``significant/valid`` per target,
    the mean CAV accuracy, and how many tests were left out as degenerate (a gradient that does not depend
    on the input at that layer).

    :param results: sweep results tables (``results.parquet``), one per sweep.
    """
    frames = []
    for r in results:
        t = r[(r["probe"] == "tcav") & r["run"].isin(runs)]
        if len(t):
            last = t.groupby("run")["checkpoint_step"].transform("max")
            frames.append(t[t["checkpoint_step"] == last])
    if not frames:
        return pd.DataFrame(columns=["concept", "tcav"])
    t = pd.concat(frames, ignore_index=True)
    rows = []
    for concept, g in t.groupby("concept"):
        tests = g[g["metric"].str.startswith("tcav_")]
        valid = tests[tests["p_value"].notna()]
        degenerate = int(tests["p_value"].isna().sum())
        parts = []
        for metric, m in valid.groupby("metric"):
            sig = int(m["significant"].fillna(False).astype(bool).sum())
            parts.append(f"{metric.removeprefix('tcav_')} {sig}/{len(m)} significant, score {m['value'].mean():.2f}")
        accuracy = g.loc[g["metric"] == "cav_accuracy", "value"]
        text = "; ".join(parts) if parts else "no valid test"
        if len(accuracy):
            text += f"; CAV accuracy {accuracy.mean():.2f}"
        if degenerate:
            text += f"; {degenerate} degenerate left out"
        rows.append({"concept": concept, "tcav": text})
    return pd.DataFrame(rows)


def finding_sentences(table: pd.DataFrame, settings: StudySettings = StudySettings(), n_runs: int = 1) -> list[str]:
    """Plain sentences a reader can check against the findings table, one per concept family, then caveats."""
    sentences = []
    for family, g in table.groupby(table["family"].replace("", "concepts"), sort=True):
        yes = g.loc[g["verdict"] == "yes", "concept"].tolist()
        some = g.loc[g["verdict"] == "not in every seed", "concept"].tolist()
        no = g.loc[g["verdict"] == "no", "concept"].tolist()
        label = f"{family} concepts" if family != "concepts" else "concepts"
        text = f"Of {len(g)} {label}, {len(yes)} are represented beyond the strongest control"
        text += " in every seed" if n_runs > 1 else ""
        text += f" ({_listing(yes)})" if yes else ""
        if some:
            text += f"; {len(some)} only in some seeds ({_listing(some)})"
        text += f"; {len(no)} are not" + (f" ({_listing(no)})." if no else ".")
        sentences.append(text)
    if len(table):
        best = table.iloc[int(np.nanargmax(table["delta"].to_numpy()))]
        sentences.append(f"The largest delta is {best['concept']} ({best['delta']:+.3f} {best['metric']}, at "
                         f"{best['layer']}).")
    sentences.append(
        f"Caveats: 'represented' means a linear probe on the layer chosen on validation games beats the best of the "
        f"random-weight networks, the raw input (whole board for per-square concepts) and the same network before "
        f"training by more than {settings.margin} on held-out test games, with BH-controlled q < {settings.alpha}"
        + (" in every seed" if n_runs > 1 else " (one seed: run the three-seed study before calling it a finding)")
        + ". It says nothing about whether the network uses the concept (causal tests), and a concept a linear probe "
          "cannot read may still be present non-linearly.")
    return sentences


def _listing(names: Sequence[str], limit: int = 12) -> str:
    names = list(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
