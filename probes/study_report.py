"""The study's report: findings first, two figures a reader takes in at a glance, the rest as an appendix.

`write_study_report` turns one or more sweep folders (one per agent seed) into::

    OUT/report.md          findings table, generated sentences, the delta map, the emergence chart
    OUT/findings.csv       the findings table, machine-readable (one row per concept)
    OUT/deltas.csv.gz      every (run, checkpoint, layer, concept) delta with its interval and q-values
    OUT/delta-map.png      concept x layer delta at the last checkpoint, all seeds
    OUT/emergence.png      when each concept clears the margin, per seed, over the strength curve
    OUT/appendix.html      per-concept panels (delta by layer and checkpoint, per seed)

Game-agnostic (`probes.study` does the statistics; families and strength curves come from the caller).
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from common.atomic import atomic_save_figure, atomic_target, atomic_write_text
from common.markdown import frame_to_markdown
from probes.study import (
    Study,
    StudySettings,
    analyse,
    finding_sentences,
    findings,
    tcav_summary,
)
from probes.sweep_folder import read_results

log = logging.getLogger(__name__)

FINDINGS_FILE = "findings.csv"
DELTAS_FILE = "deltas.csv.gz"
FINDINGS_COLUMNS = ["concept", "family", "verdict", "runs_represented", "layer", "emergence_step", "delta",
                    "delta_min_ci_low", "delta_max_ci_high", "metric", "value", "control_value", "deltas", "layers",
                    "emergence_steps", "strongest_control", "tcav"]


def _layers(study: Study) -> list[str]:
    return list(study.deltas.groupby("layer")["layer_index"].min().sort_values().index)


def _short(layer: str) -> str:
    return layer.replace("features_extractor.", "").replace("mlp_extractor.", "")


def plot_delta_map(study: Study, runs: Sequence[str], table: pd.DataFrame, path: Path) -> Path:
    """Concept (rows, in findings order) x layer (columns) map of delta at each run's last checkpoint,
    averaged over runs; ``*`` marks cells beyond the margin (grid q < alpha) in every run, ``+`` in some."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = study.deltas[study.deltas["run"].isin(runs)]
    last = d.groupby("run")["step"].transform("max")
    final = d[d["step"] == last].assign(hit=lambda f: f["q_margin"] < study.settings.alpha)
    layers, concepts = _layers(study), list(table["concept"])
    mean = final.pivot_table(index="concept", columns="layer", values="delta", aggfunc="mean")
    hits = final.pivot_table(index="concept", columns="layer", values="hit", aggfunc="sum")
    mean = mean.reindex(index=concepts, columns=layers)
    hits = hits.reindex(index=concepts, columns=layers)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(layers) + 2.5, 1.2 + 0.15 * len(concepts)))
    limit = max(0.05, float(np.nanpercentile(np.abs(mean.to_numpy()), 98)) if np.isfinite(mean.to_numpy()).any() else 0.05)
    image = ax.imshow(mean.to_numpy(dtype=float), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for i in range(len(concepts)):
        for j in range(len(layers)):
            k = hits.iat[i, j]
            if np.isfinite(k) and k > 0:
                ax.text(j, i, "*" if k >= len(runs) else "+", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(layers)), [_short(layer) for layer in layers], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(concepts)), [f"{c} ({v})" if v != "no" else c
                                         for c, v in zip(concepts, table["verdict"])], fontsize=6)
    ax.set_title(f"delta = probe score - strongest control, last checkpoint, mean of {len(runs)} run(s)\n"
                 f"* beyond margin {study.settings.margin} in every run, + in some", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.04, label="delta")
    atomic_save_figure(fig, path, dpi=110, tight=True)
    plt.close(fig)
    return path


def plot_emergence_chart(study: Study, runs: Sequence[str], path: Path,
                         strength: Mapping[str, Sequence] | None = None) -> Path:
    """Per concept that emerges in some run, its emergence step in each run (log steps), over the runs'
    strength curves (`probes.report.StrengthCurve` lists keyed by run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    em = study.emergence[study.emergence["run"].isin(runs)]
    emerged = em.dropna(subset=["emergence_step"])
    order = list(emerged.groupby("concept")["emergence_step"].median().sort_values().index)
    curves = {run: list((strength or {}).get(run, [])) for run in runs}
    has_curves = any(curves.values())
    fig, axes = plt.subplots(2 if has_curves else 1, 1, figsize=(8, 1.5 + 0.2 * max(len(order), 3) + (2.2 if has_curves else 0)),
                             sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [max(len(order), 3) * 0.2 + 1, 2.2] if has_curves else [1]})
    ax = axes[0, 0]
    markers = "osD^v<>"
    for k, run in enumerate(runs):
        r = emerged[emerged["run"] == run].set_index("concept")
        ys = [i for i, c in enumerate(order) if c in r.index]
        xs = [r.loc[c, "emergence_step"] for c in order if c in r.index]
        ax.scatter(xs, ys, marker=markers[k % len(markers)], s=18, label=run, alpha=0.8)
    ax.set_yticks(range(len(order)), order, fontsize=6)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_title(f"first checkpoint where delta > {study.settings.margin} (BH q < {study.settings.alpha}); "
                 f"{em['concept'].nunique() - len(order)} concepts never emerge", fontsize=8)
    ax.legend(fontsize=6, loc="lower right")
    ax.grid(alpha=0.3)
    if has_curves:
        bottom = axes[1, 0]
        colours = {}  # one colour per curve (e.g. evaluation set), one line style per run
        styles = ["-", "--", ":", "-."]
        for k, run in enumerate(runs):
            for curve in curves[run]:
                steps = np.asarray(curve.steps, dtype=float)
                keep = steps > 0
                colour = colours.setdefault(curve.label, f"C{len(colours) % 10}")
                bottom.plot(steps[keep], np.asarray(curve.values)[keep], lw=1, alpha=0.85, color=colour,
                            linestyle=styles[k % len(styles)],
                            label=curve.label if k == 0 else None)
        for k, run in enumerate(runs):
            bottom.plot([], [], color="grey", linestyle=styles[k % len(styles)], label=run)
        bottom.set_ylabel("strength", fontsize=8)
        bottom.set_xlabel("training step", fontsize=8)
        bottom.grid(alpha=0.3)
        if bottom.get_legend_handles_labels()[0]:
            bottom.legend(fontsize=5, ncol=2)
    else:
        ax.set_xlabel("training step", fontsize=8)
    atomic_save_figure(fig, path, dpi=110, tight=True)
    plt.close(fig)
    return path


def write_appendix(study: Study, runs: Sequence[str], table: pd.DataFrame, out: Path) -> Path:
    """``appendix.html`` with one small figure per concept: delta by layer (rows) and checkpoint (columns),
    one panel per run, beside the concept's findings row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = out / "appendix"
    folder.mkdir(parents=True, exist_ok=True)
    layers = _layers(study)
    d = study.deltas[study.deltas["run"].isin(runs)]
    blocks = []
    for row in table.itertuples(index=False):
        c = d[d["concept"] == row.concept]
        fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 2.6), squeeze=False)
        for ax, run in zip(axes[0], runs):
            grid = c[c["run"] == run].pivot_table(index="layer", columns="step", values="delta").reindex(
                index=[layer for layer in layers if layer in set(c["layer"])])
            if grid.empty:
                ax.axis("off")
                continue
            ax.imshow(grid.to_numpy(dtype=float), cmap="RdBu_r", vmin=-0.3, vmax=0.3, aspect="auto")
            ax.set_yticks(range(len(grid.index)), [_short(x) for x in grid.index], fontsize=5)
            ax.set_xticks(range(len(grid.columns)), [f"{int(s) // 1000}k" for s in grid.columns], fontsize=5,
                          rotation=90)
            ax.set_title(run, fontsize=7)
        fig.suptitle(f"{row.concept}: delta by layer and checkpoint", fontsize=8)
        name = f"{row.concept}.png".replace("/", "_").replace("[", "_").replace("]", "")
        atomic_save_figure(fig, folder / name, dpi=70, tight=True)
        plt.close(fig)
        blocks.append(f"<section id='{html.escape(row.concept)}'><h3>{html.escape(row.concept)} "
                      f"<small>({html.escape(row.verdict)}, {html.escape(row.runs_represented)})</small></h3>"
                      f"<p>{html.escape(str(row.deltas))}<br>layer: {html.escape(str(row.layers))}<br>"
                      f"emergence: {html.escape(str(row.emergence_steps))}</p>"
                      f"<img src='appendix/{html.escape(name)}' loading='lazy'></section>")
    index = " ".join(f"<a href='#{html.escape(c)}'>{html.escape(c)}</a>" for c in table["concept"])
    page = ("<!doctype html><meta charset='utf-8'><title>Per-concept panels</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto} img{max-width:100%}"
            " section{border-top:1px solid #ccc;margin-top:1em}</style>"
            f"<h1>Per-concept panels</h1><p>{index}</p>" + "".join(blocks))
    path = out / "appendix.html"
    atomic_write_text(page, path)
    return path


def _markdown(frame: pd.DataFrame) -> str:

    def cell(v) -> str:
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else (f"{int(v):,}" if float(v).is_integer() and abs(v) >= 100 else f"{v:+.3f}"
                                           if abs(v) < 100 else f"{v:.0f}")
        return str(v)

    return frame_to_markdown(frame, cell)


def write_study_report(out: str | Path, sweep_dirs: Sequence[str | Path], families: Mapping[str, str] | None = None,
                       strength: Mapping[str, Sequence] | None = None, settings: StudySettings = StudySettings(),
                       title: str = "What the agent represents beyond its architecture and input",
                       extra_sections: Sequence[str] = (), study: Study | None = None) -> Path:
    """Analyse the sweeps (`probes.study.analyse`) and write the report files into `out`; returns ``report.md``.

    :param sweep_dirs: one sweep folder per agent seed (each with saved predictions).
    :param families: concept -> family, for the sentences.
    :param strength: run -> strength curves, drawn under the emergence chart.
    :param extra_sections: Markdown appended after the study (e.g. a sweep's TCAV tables).
    :param study: an analysis already made of these sweeps (else one is made).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    study = study or analyse(sweep_dirs, settings)
    settings = study.settings
    runs = list(dict.fromkeys(study.verdicts.loc[study.verdicts["role"] == "agent", "run"]))
    if not runs:
        runs = list(dict.fromkeys(study.verdicts["run"]))
    results = [read_results(d) for d in sweep_dirs]
    table = findings(study, runs, families, tcav_summary(results, runs))
    atomic_write_text(table.reindex(columns=FINDINGS_COLUMNS).to_csv(index=False), out / FINDINGS_FILE)
    with atomic_target(out / DELTAS_FILE, suffix=".csv.gz") as tmp:
        study.deltas.to_csv(tmp, index=False, float_format="%.5g", compression="gzip")
    plot_delta_map(study, runs, table, out / "delta-map.png")
    plot_emergence_chart(study, runs, out / "emergence.png", strength)
    write_appendix(study, runs, table, out)
    counts = table["verdict"].value_counts()
    steps = sorted(study.deltas["step"].unique())
    lines = [f"# {title}", "",
             f"Runs: {', '.join(runs)} ({len(runs)} seed{'s' if len(runs) > 1 else ''}); {len(steps)} checkpoints "
             f"after step 0 ({steps[0]:,} to {steps[-1]:,} steps); "
             f"{study.deltas['layer'].nunique()} layers; {len(table)} concepts. "
             f"{int(counts.get('yes', 0))} represented beyond the strongest control"
             f"{' in every seed' if len(runs) > 1 else ''}, {int(counts.get('not in every seed', 0))} in some seeds "
             f"only, {int(counts.get('no', 0))} not.", "",
             *[f"- {s}" for s in finding_sentences(table, settings, len(runs))], "",
             "## Findings", "",
             f"`delta` = held-out probe score (balanced accuracy for classes, R^2 for numbers) minus the strongest "
             f"control at the same layer (the best of the random-weight networks, the same network at step 0, and "
             f"the raw input, which sees the whole board for per-square concepts), with 95% paired bootstrap "
             f"intervals over held-out games. Layers are chosen on validation games; test scores are reported once. "
             f"`verdict`: `yes` when delta > {settings.margin} with BH q < {settings.alpha} at the last checkpoint "
             f"in every seed. `emergence_step`: the first checkpoint where that holds (latest over seeds). "
             f"Machine-readable: [{FINDINGS_FILE}]({FINDINGS_FILE}); every cell: [{DELTAS_FILE}]({DELTAS_FILE}).", "",
             _markdown(table[["concept", "family", "verdict", "runs_represented", "layer", "emergence_step", "delta",
                              "delta_min_ci_low", "delta_max_ci_high", "metric", "tcav"]]), "",
             "## Where: delta by concept and layer", "", "![delta map](delta-map.png)", "",
             "## When: emergence", "", "![emergence](emergence.png)", "",
             "Per-concept panels (delta by layer and checkpoint, each seed): [appendix.html](appendix.html).", "",
             *extra_sections]
    path = out / "report.md"
    atomic_write_text("\n".join(lines), path)
    log.info("study report written to %s", path)
    return path
