"""A sweep's report: what is represented, where (layer), and since when (training step).

Reads a sweep folder of `probes.sweep.run_sweep` through `probes.sweep_folder` (results with
their ``role`` column, ``labels.npz``) and writes ``report.md`` with PNGs next to it:

* **what-when-where**: per concept, a layer x training-step heatmap of the linear probe's
  held-out score (balanced accuracy for classes, R^2 for numbers), one panel per concept;
* **selectivity with controls**: per concept at the last checkpoint, the best layer's score
  beside its control task, the best random-weight network, the raw input and the majority
  baseline;
* **emergence**: a concept has emerged at the first checkpoint where, at some layer, the
  probe beats its control task by more than `margin`, tested one-sidedly (normal
  approximation from the bootstrap interval) with Benjamini-Hochberg over every
  (concept, checkpoint, layer) of the run; drawn against the run's strength curve when one
  is given;
* **TCAV** tables with p-values, BH q-values and CAV accuracies;
* the **concept correlation** matrix (Spearman, over the sweep's positions);
* **runs compared** (e.g. agent vs reference network): best-layer scores at each run's last
  checkpoint, and layer by layer the difference of the first two runs' scores.

Game-agnostic: strength curves come in as plain numbers from the caller.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from common.atomic import atomic_save_figure, atomic_write_text
from probes.sweep_folder import (
    BASELINE,
    INPUT,
    LABELS_FILE,
    RANDOM_WEIGHTS,
    RESULTS_FILE,
    TRAINED_ROLES,
    read_labels,
    read_results,
    with_roles,
)
from probes.tcav import benjamini_hochberg

log = logging.getLogger(__name__)

@dataclass
class StrengthCurve:
    """A run's strength over training: steps and values (e.g. good-move rate on a test set)."""

    label: str
    steps: np.ndarray
    values: np.ndarray


def probe_scores(results: pd.DataFrame) -> pd.DataFrame:
    """The linear probe's main metric per row: balanced accuracy for classes, R^2 for numbers."""
    linear = results[results["probe"] == "linear"]
    main = linear[linear["metric"].isin(["balanced_accuracy", "r2"])]
    return main.copy()


def model_runs(results: pd.DataFrame) -> list[str]:
    """Runs that are trained networks (role agent or reference; not baselines, inputs or random-weight
    controls), in order of appearance."""
    results = with_roles(results)
    return list(dict.fromkeys(results.loc[results["role"].isin(TRAINED_ROLES), "run"]))


def emergence(results: pd.DataFrame, run: str, margin: float = 0.05, alpha: float = 0.05) -> pd.DataFrame:
    """Per concept, the first checkpoint where some layer's probe beats its control task by > `margin`.

    Every (concept, checkpoint, layer) cell is a one-sided test of ``value - control > margin``
    with a normal approximation (standard error from the 95% bootstrap interval); BH over all
    cells of the run controls the false-discovery rate. Returns one row per concept: the
    emergence step (NaN if never), the layer, the score and control there, and the q-value.
    """
    scores = probe_scores(results)
    cells = scores[scores["run"] == run].copy()
    if cells.empty:
        raise ValueError(f"run {run!r} has no linear-probe rows; runs: {sorted(results['run'].unique())}")
    se = (cells["ci_high"] - cells["ci_low"]) / (2 * 1.96)
    z = (cells["value"] - cells["control_value"] - margin) / se.clip(lower=1e-6)
    cells["p"] = stats.norm.sf(z.to_numpy())
    cells["q"], cells["significant"] = benjamini_hochberg(cells["p"].fillna(1.0).to_numpy(), alpha)
    rows = []
    for concept, group in cells.groupby("concept"):
        hits = group[group["significant"]].sort_values(["checkpoint_step", "q"])
        if len(hits):
            first = hits.iloc[0]
            rows.append({"concept": concept, "metric": first["metric"], "emergence_step": int(first["checkpoint_step"]),
                         "layer": first["layer"], "value": first["value"], "control_value": first["control_value"],
                         "q_value": first["q"]})
        else:
            rows.append({"concept": concept, "metric": group["metric"].iloc[0], "emergence_step": np.nan,
                         "layer": "", "value": np.nan, "control_value": np.nan, "q_value": np.nan})
    return pd.DataFrame(rows)


def _save(fig, path: Path) -> Path:

    atomic_save_figure(fig, path, dpi=110, tight=True)
    return path


def _layer_order(scores: pd.DataFrame) -> list[str]:
    """The layers of `scores` in forward order (by ``layer_index``; else as they appear)."""
    if "layer_index" in scores:
        return list(scores.groupby("layer")["layer_index"].min().sort_values().index)
    return list(dict.fromkeys(scores["layer"]))


def plot_what_when_where(results: pd.DataFrame, run: str, path: Path, concepts: list[str] | None = None) -> Path:
    """One layer x step heatmap per concept of the run's linear-probe score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = probe_scores(results)
    cells = scores[scores["run"] == run]
    concepts = concepts or sorted(cells["concept"].unique())
    layers = _layer_order(cells)
    steps = sorted(cells["checkpoint_step"].unique())
    cols = 4
    rows = int(np.ceil(len(concepts) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 0.28 * len(layers) * rows + 1.2 * rows), squeeze=False)
    for ax, concept in zip(axes.flat, concepts):
        grid = (cells[cells["concept"] == concept].pivot_table(index="layer", columns="checkpoint_step", values="value")
                .reindex(index=layers, columns=steps))
        metric = cells[cells["concept"] == concept]["metric"].iloc[0]
        low = 0.5 if metric == "balanced_accuracy" else 0.0
        image = ax.imshow(grid.to_numpy(), aspect="auto", vmin=low, vmax=1.0, cmap="viridis")
        ax.set_title(f"{concept} ({'bal. acc.' if low else 'R²'})", fontsize=8)
        ax.set_yticks(range(len(layers)), [name.split(".", 1)[-1] for name in layers], fontsize=5)
        ax.set_xticks(range(len(steps)), [f"{s / 1e3:.0f}k" for s in steps], fontsize=5, rotation=90)
        fig.colorbar(image, ax=ax, fraction=0.04)
    for ax in list(axes.flat)[len(concepts):]:
        ax.axis("off")
    fig.suptitle(f"{run}: linear-probe score by layer (rows) and training step (columns)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def selectivity_table(results: pd.DataFrame, run: str) -> pd.DataFrame:
    """Per concept at the run's last checkpoint: best layer, score, control task, controls' best scores."""
    results = with_roles(results)
    scores = probe_scores(results)
    last = scores[scores["run"] == run]["checkpoint_step"].max()
    final = scores[(scores["run"] == run) & (scores["checkpoint_step"] == last)]
    majority = results[(results["role"] == BASELINE) & results["metric"].isin(["balanced_accuracy", "r2"])]
    rows = []
    for concept, group in final.groupby("concept"):
        best = group.loc[group["value"].idxmax()]
        metric = best["metric"]
        others = scores[(scores["concept"] == concept) & (scores["metric"] == metric)]
        random_best = others[others["role"] == RANDOM_WEIGHTS]["value"].max()
        raw = others[others["role"] == INPUT]["value"].max()
        base = majority[(majority["concept"] == concept) & (majority["metric"] == metric)]["value"]
        rows.append({"concept": concept, "metric": metric, "layer": best["layer"], "value": best["value"],
                     "ci_low": best["ci_low"], "ci_high": best["ci_high"], "control_task": best["control_value"],
                     "selectivity": best["selectivity"], "random_weights": random_best, "input": raw,
                     "majority": base.iloc[0] if len(base) else np.nan})
    return pd.DataFrame(rows)


def plot_selectivity(table: pd.DataFrame, run: str, path: Path) -> Path:
    """Grouped bars per concept: probe score with its interval, control task, random weights, input, majority."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(max(8, 0.45 * len(table)), 7), squeeze=False)
    for ax, metric in zip(axes[:, 0], ("balanced_accuracy", "r2")):
        part = table[table["metric"] == metric].sort_values("value", ascending=False)
        if part.empty:
            ax.axis("off")
            continue
        x = np.arange(len(part))
        width = 0.17
        ax.bar(x - 2 * width, part["value"], width, label=run,
               yerr=[part["value"] - part["ci_low"], part["ci_high"] - part["value"]], capsize=1.5)
        for offset, column, label in ((-1, "control_task", "control task"), (0, "random_weights", "random weights"),
                                      (1, "input", "raw input"), (2, "majority", "majority")):
            ax.bar(x + offset * width, part[column], width, label=label)
        ax.set_xticks(x, part["concept"], rotation=75, fontsize=7)
        ax.set_ylabel("balanced accuracy" if metric == "balanced_accuracy" else "R²")
        ax.set_ylim(0.4 if metric == "balanced_accuracy" else min(0.0, float(part[["value", "control_task"]].min().min())), 1.0)
        ax.legend(fontsize=7, ncol=5)
    fig.suptitle(f"{run}, last checkpoint, best layer per concept, against controls", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_emergence(table: pd.DataFrame, path: Path, strength: list[StrengthCurve] | None = None) -> Path:
    """Emergence steps of the concepts (points) over the run's strength curves (lines), log-scaled steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, max(3.5, 0.22 * len(table))))
    emerged = table.dropna(subset=["emergence_step"]).sort_values("emergence_step")
    never = table[table["emergence_step"].isna()]
    if strength:
        twin = ax.twinx()
        for curve in strength:
            twin.plot(curve.steps, curve.values, marker=".", alpha=0.6, label=curve.label)
        twin.set_ylabel("strength")
        twin.set_ylim(0, 1)
        twin.legend(fontsize=7, loc="lower right")
    ax.scatter(emerged["emergence_step"], np.arange(len(emerged)), color="black", zorder=3)
    ax.set_yticks(np.arange(len(emerged)), emerged["concept"], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("training step (first checkpoint where selectivity beats the control by the margin, BH-controlled)")
    if len(never):
        ax.set_title(f"never emerged: {', '.join(never['concept'])}", fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def concept_correlations(labels_file: Path, concepts: list[str]) -> pd.DataFrame:
    """Spearman correlations between position concepts over the sweep's positions."""
    data = read_labels(labels_file)
    columns = {}
    for name in concepts:
        values = data[f"concept:{name}"]
        if values.ndim == 1 and np.ptp(values.astype(np.float64)) > 0:
            columns[name] = values.astype(np.float64)
    frame = pd.DataFrame(columns)
    return frame.corr(method="spearman")


def plot_correlations(corr: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(6, 0.28 * len(corr))
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(corr.to_numpy(), vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(corr)), corr.columns, rotation=90, fontsize=6)
    ax.set_yticks(range(len(corr)), corr.index, fontsize=6)
    fig.colorbar(image, ax=ax, fraction=0.04, label="Spearman correlation")
    ax.set_title("concept correlations over the sweep's positions", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_runs_compared(tables: dict[str, pd.DataFrame], path: Path) -> Path:
    """Best-layer score per concept at each run's last checkpoint, runs side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    merged = pd.concat([t.assign(run=run) for run, t in tables.items()])
    pivot = merged.pivot_table(index="concept", columns="run", values="value").sort_values(list(tables)[0])
    fig, ax = plt.subplots(figsize=(max(8, 0.4 * len(pivot)), 4.5))
    x = np.arange(len(pivot))
    width = 0.8 / len(tables)
    for i, run in enumerate(tables):
        ax.bar(x + (i - (len(tables) - 1) / 2) * width, pivot[run], width, label=run)
    ax.set_xticks(x, pivot.index, rotation=75, fontsize=7)
    ax.set_ylabel("best-layer score (balanced accuracy or R²)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def layer_differences(results: pd.DataFrame, first: str, second: str) -> pd.DataFrame:
    """Concept x layer: the first run's linear-probe score minus the second's, each at its last checkpoint.

    Layers in forward order; only layers both runs have (same architecture: all of them).
    """
    scores = probe_scores(results)
    grids = []
    for run in (first, second):
        cells = scores[scores["run"] == run]
        cells = cells[cells["checkpoint_step"] == cells["checkpoint_step"].max()]
        grids.append(cells.pivot_table(index="concept", columns="layer", values="value"))
    diff = grids[0] - grids[1]
    return diff[[layer for layer in _layer_order(scores) if layer in diff.columns]].dropna(how="all")


def plot_layer_differences(diff: pd.DataFrame, first: str, second: str, path: Path) -> Path:
    """Heatmap of `layer_differences` (red: the first run encodes the concept better at that layer)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bound = max(0.05, float(np.nanmax(np.abs(diff.to_numpy()))))
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * diff.shape[1], 1.0 + 0.22 * len(diff)))
    image = ax.imshow(diff.to_numpy(), aspect="auto", cmap="RdBu_r", vmin=-bound, vmax=bound)
    ax.set_xticks(range(diff.shape[1]), [name.split(".", 1)[-1] for name in diff.columns], rotation=60, fontsize=7,
                  ha="right")
    ax.set_yticks(range(len(diff)), diff.index, fontsize=7)
    fig.colorbar(image, ax=ax, fraction=0.04, label=f"{first} minus {second}")
    ax.set_title(f"linear-probe score, {first} minus {second} (last checkpoints)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def _markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    """A plain Markdown table (no optional dependency)."""
    if frame.empty:
        return "_(none)_\n"

    def cell(v) -> str:
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else f"{v:.{digits}g}" if abs(v) >= 1000 else f"{v:.{digits}f}"
        return str(v)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_report(sweep_dir: str | Path, strength: dict[str, list[StrengthCurve]] | None = None,
                 margin: float = 0.05, alpha: float = 0.05) -> Path:
    """Write ``report.md`` and its PNGs into `sweep_dir`; returns the Markdown file's path.

    :param strength: per run, strength curves to draw under the emergence plot.
    :param margin: how far above its control task a probe must score to count as emerged.
    :param alpha: false-discovery rate of the emergence tests.
    """
    sweep_dir = Path(sweep_dir)
    results = read_results(sweep_dir)
    runs = model_runs(results)
    if not runs:
        raise ValueError(f"{sweep_dir / RESULTS_FILE} has no trained-network rows")
    strength = strength or {}
    lines = [f"# Probe report: {sweep_dir.name}", "",
             f"Runs: {', '.join(runs)}. Controls: control task (selectivity), shuffled labels, "
             f"{results.loc[results['role'] == RANDOM_WEIGHTS, 'run'].nunique()} random-weight networks, "
             "raw input, majority baseline. Scores are on held-out games (95% bootstrap intervals over games).", ""]
    shuffled = results[(results["probe"] == "linear/shuffled") & (results["metric"] == "balanced_accuracy")]
    if len(shuffled):
        lines += [f"Shuffled-label bug check: balanced accuracy {shuffled['value'].mean():.3f} on average, at most "
                  f"{shuffled['value'].max():.3f} (chance is 0.5).", ""]
    tables = {}
    for run in runs:
        figure = plot_what_when_where(results, run, sweep_dir / f"{run}-what-when-where.png")
        table = selectivity_table(results, run)
        tables[run] = table
        plot_selectivity(table, run, sweep_dir / f"{run}-selectivity.png")
        emerged = emergence(results, run, margin, alpha)
        plot_emergence(emerged, sweep_dir / f"{run}-emergence.png", strength.get(run))
        lines += [f"## {run}", "", f"![what-when-where]({figure.name})", "",
                  "### Selectivity with controls (last checkpoint, best layer)", "",
                  f"![selectivity]({run}-selectivity.png)", "", _markdown(table), "",
                  f"### Emergence (margin {margin}, FDR {alpha})", "", f"![emergence]({run}-emergence.png)", "",
                  _markdown(emerged), ""]
        tcav = results[(results["run"] == run) & (results["probe"] == "tcav")]
        if len(tcav):
            last = tcav["checkpoint_step"].max()
            scores = tcav[(tcav["checkpoint_step"] == last) & tcav["metric"].str.startswith("tcav_")]
            accuracy = tcav[(tcav["checkpoint_step"] == last) & (tcav["metric"] == "cav_accuracy")]
            merged = scores.merge(accuracy[["layer", "concept", "value"]].rename(columns={"value": "cav_accuracy"}),
                                  on=["layer", "concept"], how="left")
            merged = merged.assign(target=merged["metric"].str.removeprefix("tcav_"))
            table_t = merged[["concept", "layer", "target", "value", "control_value", "p_value", "q_value",
                              "significant", "cav_accuracy"]].rename(columns={"value": "tcav", "control_value": "random"})
            n_sig = int(tcav["significant"].fillna(False).astype(bool).sum())
            lines += [f"### TCAV at step {last:,}", "",
                      f"{n_sig} of {int(tcav['p_value'].notna().sum())} TCAV tests of this run are significant after "
                      "Benjamini-Hochberg over the whole grid.", "",
                      _markdown(table_t.sort_values(["concept", "layer", "target"])), ""]
    labels_file = sweep_dir / LABELS_FILE
    if labels_file.exists():
        corr = concept_correlations(labels_file, sorted(probe_scores(results)["concept"].unique()))
        if len(corr) > 1:
            plot_correlations(corr, sweep_dir / "concept-correlations.png")
            lines += ["## Concept correlations", "", "![correlations](concept-correlations.png)", ""]
    if len(tables) > 1:
        plot_runs_compared(tables, sweep_dir / "runs-compared.png")
        merged = pd.concat([t[["concept", "metric", "value"]].assign(run=run) for run, t in tables.items()])
        wide = merged.pivot_table(index=["concept", "metric"], columns="run", values="value").reset_index()
        lines += ["## Runs compared (last checkpoint, best layer)", "", "![runs](runs-compared.png)", "",
                  _markdown(wide), ""]
        first, second = list(tables)[:2]
        diff = layer_differences(results, first, second)
        if len(diff):
            plot_layer_differences(diff, first, second, sweep_dir / "runs-layer-differences.png")
            lines += [f"### Layer by layer: {first} minus {second}", "",
                      "![layer differences](runs-layer-differences.png)", "",
                      _markdown(diff.reset_index().rename_axis(columns=None)), ""]
    path = sweep_dir / "report.md"
    atomic_write_text("\n".join(lines), path)
    log.info("report written to %s", path)
    return path
