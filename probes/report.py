"""A sweep's report: what its networks represent beyond the controls, where (layer) and since when (step).

Reads a sweep folder of `probes.sweep.run_sweep` through `probes.sweep_folder` and writes
``report.md`` with its files next to it (`write_report`):

* the **study** first (`probes.study`, `probes.study_report`): per concept, the delta of the
  validation-chosen layer against the strongest control (random-weight networks, the same
  network at step 0, the raw input), with paired bootstrap intervals over held-out games, the
  verdict, the emergence step; ``findings.csv``, the concept x layer delta map, the emergence
  chart over the run's strength curve, and a per-concept appendix page;
* **checks**: the shuffled-label bug check, and the Hewitt-Liang control task as a check only
  (with de-duplicated positions it is shuffled labels under another name);
* **TCAV** tables with p-values, BH q-values and CAV accuracies, the (target, layer) pairs whose
  gradient does not depend on the input left out and counted;
* the raw **what-when-where** scores (layer x training step per concept) as an appendix figure;
* the **concept correlation** matrix (Spearman, over the sweep's positions);
* **runs compared** (e.g. agent vs reference network): each run's chosen-layer score at its last
  checkpoint, and layer by layer the difference of the first two runs' scores.

Game-agnostic: strength curves and concept families come in as plain data from the caller.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.atomic import atomic_save_figure
from common.markdown import frame_to_markdown
from probes.study import Study, StudySettings, analyse
from probes.study_report import write_study_report
from probes.sweep_folder import (
    LABELS_FILE,
    RESULTS_FILE,
    TRAINED_ROLES,
    read_labels,
    read_results,
    with_roles,
)

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
    """A plain Markdown table, numbers to `digits` places."""

    def cell(v) -> str:
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else f"{v:.{digits}g}" if abs(v) >= 1000 else f"{v:.{digits}f}"
        return str(v)

    return frame_to_markdown(frame, cell)


def final_scores(study: Study, run: str) -> pd.DataFrame:
    """Per concept at a run's last checkpoint: the validation-chosen layer, its test score, the strongest
    control and the delta with its interval (`probes.study.final_verdicts`)."""
    v = study.verdicts[study.verdicts["run"] == run]
    return v[["concept", "metric", "layer", "value", "control", "control_value", "delta", "ci_low", "ci_high", "q",
              "represented"]].reset_index(drop=True)


def _checks(results: pd.DataFrame) -> list[str]:
    lines = ["## Checks", ""]
    shuffled = results[(results["probe"] == "linear/shuffled") & (results["metric"] == "balanced_accuracy")]
    if len(shuffled):
        lines += [f"- Shuffled-label bug check: balanced accuracy {shuffled['value'].mean():.3f} on average, at most "
                  f"{shuffled['value'].max():.3f} (chance is 0.5): the split leaks nothing."]
    task = results[(results["probe"] == "linear") & (results["metric"] == "balanced_accuracy")]
    if len(task) and task["control_value"].notna().any():
        lines += [f"- Hewitt-Liang control task (one random label per distinct position): balanced accuracy "
                  f"{task['control_value'].mean():.3f} on average. With de-duplicated positions it is shuffled labels "
                  f"under another name (nothing recurs for a probe to memorise), so it stays a check here and is not a "
                  f"baseline for any finding; the findings use the strongest of the model-shaped controls."]
    return lines + [""]


def _tcav_section(results: pd.DataFrame, run: str) -> list[str]:
    tcav = results[(results["run"] == run) & (results["probe"] == "tcav")]
    if not len(tcav):
        return []
    last = tcav["checkpoint_step"].max()
    at_last = tcav[tcav["checkpoint_step"] == last]
    scores = at_last[at_last["metric"].str.startswith("tcav_")]
    accuracy = at_last[at_last["metric"] == "cav_accuracy"]
    merged = scores.merge(accuracy[["layer", "concept", "value"]].rename(columns={"value": "cav_accuracy"}),
                          on=["layer", "concept"], how="left")
    merged = merged.assign(target=merged["metric"].str.removeprefix("tcav_"))
    valid = merged[merged["p_value"].notna()]
    table = valid[["concept", "layer", "target", "value", "control_value", "p_value", "q_value", "significant",
                   "cav_accuracy"]].rename(columns={"value": "tcav", "control_value": "random"})
    degenerate = merged[merged["p_value"].isna()]
    all_tests = tcav[tcav["metric"].str.startswith("tcav_")]
    n_valid = int(all_tests["p_value"].notna().sum())
    n_sig = int(all_tests["significant"].fillna(False).astype(bool).sum())
    lines = [f"### TCAV of {run} at step {last:,}", "",
             f"{n_sig} of {n_valid} valid TCAV tests of this run are significant after Benjamini-Hochberg over the "
             f"grid; {int(all_tests['p_value'].isna().sum())} more (concept, target, layer, checkpoint) tests were left "
             f"out of the counts because the target's gradient there points the same way for every input (per named "
             f"column for the policy logit): a layer feeding a linear head, where a CAV's score only counts inputs or "
             f"columns. CAV accuracy is the held-out accuracy of the concept's CAVs (random CAVs score about 0.5).", ""]
    if len(degenerate):
        pairs = sorted({f"{t} at {layer}" for t, layer in zip(degenerate["target"], degenerate["layer"])})
        lines += [f"Left out at this step: {', '.join(pairs)}.", ""]
    return lines + [_markdown(table.sort_values(["concept", "layer", "target"])), ""]


def _runs_compared(sweep_dir: Path, study: Study, results: pd.DataFrame, runs: list[str]) -> list[str]:
    tables = {run: final_scores(study, run) for run in runs}
    plot_runs_compared(tables, sweep_dir / "runs-compared.png")
    merged = pd.concat([t[["concept", "metric", "value"]].assign(run=run) for run, t in tables.items()])
    wide = merged.pivot_table(index=["concept", "metric"], columns="run", values="value").reset_index()
    lines = ["## Runs compared (last checkpoint, layer chosen on validation games)", "", "![runs](runs-compared.png)",
             "", _markdown(wide), ""]
    first, second = runs[:2]
    diff = layer_differences(results, first, second)
    if len(diff):
        plot_layer_differences(diff, first, second, sweep_dir / "runs-layer-differences.png")
        lines += [f"### Layer by layer: {first} minus {second}", "",
                  "![layer differences](runs-layer-differences.png)", "",
                  _markdown(diff.reset_index().rename_axis(columns=None)), ""]
    return lines


def write_report(sweep_dir: str | Path, strength: dict[str, list[StrengthCurve]] | None = None,
                 margin: float = StudySettings.margin, alpha: float = StudySettings.alpha,
                 families: dict[str, str] | None = None, n_boot: int = StudySettings.n_boot) -> Path:
    """Write ``report.md`` and its files into `sweep_dir`; returns the Markdown file's path.

    The report opens with the study of the sweep's agent runs (`probes.study_report.write_study_report`:
    findings against the strongest control, ``findings.csv``, the delta map, the emergence
    chart, the per-concept appendix), then the checks, TCAV tables, raw probe scores, concept
    correlations and, when the sweep holds several trained runs, the runs compared.

    :param strength: per run, strength curves to draw under the emergence chart.
    :param margin: how far above the strongest control a delta must be to count as represented.
    :param alpha: false-discovery rate of the tests.
    :param families: concept -> family (e.g. cost tier), for the generated sentences.
    :param n_boot: paired bootstrap replicates over held-out games.
    """
    sweep_dir = Path(sweep_dir)
    results = read_results(sweep_dir)
    runs = model_runs(results)
    if not runs:
        raise ValueError(f"{sweep_dir / RESULTS_FILE} has no trained-network rows")
    settings = StudySettings(margin=margin, alpha=alpha, n_boot=n_boot)
    study = analyse([sweep_dir], settings)
    extra = _checks(results)
    for run in runs:
        extra += _tcav_section(results, run)
    extra += ["## Appendix: raw probe scores", "",
              "Held-out linear-probe scores before any control is subtracted (what a probe reads, not what was "
              "learned), one panel per concept, layer x training step:", ""]
    for run in runs:
        figure = plot_what_when_where(results, run, sweep_dir / f"{run}-what-when-where.png")
        extra += [f"- {run}: [{figure.name}]({figure.name})"]
    extra += [""]
    labels_file = sweep_dir / LABELS_FILE
    if labels_file.exists():
        corr = concept_correlations(labels_file, sorted(probe_scores(results)["concept"].unique()))
        if len(corr) > 1:
            plot_correlations(corr, sweep_dir / "concept-correlations.png")
            extra += ["## Concept correlations", "", "![correlations](concept-correlations.png)", ""]
    if len(runs) > 1:
        extra += _runs_compared(sweep_dir, study, results, runs)
    return write_study_report(sweep_dir, [sweep_dir], families, strength, settings,
                              title=f"Probe report: {sweep_dir.name}", extra_sections=extra, study=study)
