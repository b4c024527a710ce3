"""The backup-head result folder: the one module that writes and reads it.

``results.json`` (the data, `BackupResult.to_json`; read back by `read_backup_result`), ``summary.md`` (generated from it), ``dla_clean.png`` (every
head's clean DLA) and ``delta_dla.png`` / ``delta_dla_frozen_scale.png`` (layer x head ΔDLA
heatmaps, one panel per ablation distribution, name movers ablated).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from common.atomic import atomic_save_figure, atomic_write_text
from lm_interp.backup.results import BackupResult


def _fmt(x: float, digits: int = 2) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.{digits}f}"


def summary_markdown(result: BackupResult) -> str:
    """A Markdown summary generated from the result."""
    c = result.clean
    lines = [f"# Backup name-mover heads: {result.model or '?'}", ""]
    if result.description:
        lines += [f"Model: {result.description}.", ""]
    lines += [f"{result.n_prompts} IOI prompts ({', '.join(result.templates)}), "
              f"{result.n_layers} layers x {result.n_heads} heads, final norm {result.norm}; "
              f"{result.seconds if result.seconds is not None else '?'} s"
              + (f" (+ {result.cached_seconds} s for distributions read from the run's cache)"
                 if result.cached_seconds else "") + ".", "",
              "## Clean run", "",
              f"* logit difference (IO - S) {c.logit_diff:.3f} (std {c.logit_diff_std:.3f}), accuracy "
              f"{c.accuracy:.3f}; ABC prompts: {c.abc_logit_diff:.3f}",
              f"* DLA check: embeddings + heads + biases + MLPs reproduce the logit difference to "
              f"{c.dla_sum_max_abs_error:.2e} (max abs error)",
              "* top heads by DLA: " + ", ".join(f"{t.head} ({_fmt(t.dla)})" for t in result.top_heads[:6]),
              "* name movers (ablated): " + ", ".join(f"{h} ({_fmt(v)})" for h, v in result.movers_dla.items()),
              f"* negative heads (clean DLA below -{result.settings.negative_fraction} x top): "
              + (", ".join(f"{h} ({_fmt(v)})" for h, v in result.negative_heads.items()) or "none"), ""]
    if result.patching is not None:
        lines += ["## Patching confirmation (clean run, one head's output from the ABC run)", "",
                  "| head | clean DLA | LD drop | mover | confirmed (drop > 0.2 x DLA > 0) |", "|---|---|---|---|---|"]
        lines += [f"| {p.head} | {_fmt(p.dla)} | {_fmt(p.ld_drop)} | {'yes' if p.mover else ''} | "
                  f"{'yes' if p.confirmed else 'no'} |" for p in result.patching]
        lines.append("")
    lines += ["## Ablating the name movers, per distribution", "",
              f"Backup threshold: ΔDLA > {result.backup_threshold:.3f} "
              f"({result.settings.backup_fraction} x the movers' summed DLA).", "",
              "| distribution | level | ablated | LD | acc | LD without compensation | top risers (ΔDLA; frozen-scale ΔDLA) "
              "| negative heads ΔDLA | MLP ΔDLA |", "|---|---|---|---|---|---|---|---|---|"]
    for dist, levels in result.sweeps.items():
        for lv in levels:
            risers = ", ".join(f"{b.head} {_fmt(b.delta_dla)} ({_fmt(b.delta_dla_frozen_scale)})"
                               for b in lv.top_backups[:3])
            neg = ", ".join(f"{b.head} {_fmt(b.delta_dla)}" for b in lv.negative_heads[:3]) or "-"
            mlp = ", ".join(f"{k.split()[-1]}: {_fmt(v)}" for k, v in lv.component_delta_dla.items()
                            if k.startswith("mlp") and abs(v) >= 0.05) or "-"
            lines.append(f"| {dist} | {lv.level} | {' '.join(lv.ablated)} | {lv.logit_diff:.3f} | "
                         f"{lv.accuracy:.2f} | {lv.logit_diff_without_compensation:.3f} | {risers} | {neg} | "
                         f"{mlp} |")
    rob = result.robustness
    lines += ["", "## Robustness across distributions (movers ablated)", "",
              "Spearman rank correlation of backup scores (ΔDLA of all non-ablated, non-negative heads):", ""]
    lines += [f"* {k}: {_fmt(v)}" for k, v in rob.rank_correlation.items()]
    lines += ["", "| head | backup under | " + " | ".join(result.sweeps) + " |",
              "|---|---|" + "---|" * len(result.sweeps)]
    for h, v in sorted(rob.verdicts.items(), key=lambda kv: -max(kv[1].delta_dla.values())):
        lines.append(f"| {h} | {v.verdict} | " + " | ".join(_fmt(v.delta_dla[d]) for d in result.sweeps)
                     + " |")
    if not rob.verdicts:
        lines.append("| (none) | | " + " | ".join("" for _ in result.sweeps) + " |")
    first = min(int(h.split(".")[0]) for h in result.movers)
    downstream = (result.n_layers - first - 1) * result.n_heads
    lines += ["", f"Heads downstream of the earliest name mover (layers > {first}): {downstream}. Heads in earlier "
              f"layers or the movers' own layer cannot react to the ablation; their ΔDLA is final-norm rescaling "
              f"(zero at frozen scale)."]
    lines += ["", f"{rob.n_heads_backup_under_none} other heads are backups under no distribution.", ""]
    if rob.negative_verdicts:
        lines += ["Negative heads (clean DLA < 0), reported apart: a rise is less suppression "
                  "(e.g. copy suppression), not a head doing the movers' job.", "",
                  "| head | clean DLA | ΔDLA above threshold under | " + " | ".join(result.sweeps) + " |",
                  "|---|---|---|" + "---|" * len(result.sweeps)]
        for h, v in rob.negative_verdicts.items():
            lines.append(f"| {h} | {_fmt(v.clean_dla)} | {v.verdict} | "
                         + " | ".join(_fmt(v.delta_dla[d]) for d in result.sweeps) + " |")
        lines.append("")
    lines += ["",
              "ΔDLA uses the ablated run's own final-norm scale; the frozen-scale value uses the clean run's "
              "scale, so the difference between them is final-norm rescaling, not head-level compensation.", ""]
    if result.intervals:
        lines += intervals_markdown(result.intervals, list(result.sweeps), result.backup_threshold)
    return "\n".join(lines)


def _ci(iv: dict, digits: int = 2) -> str:
    return f"{_fmt(iv['mean'], digits)} [{_fmt(iv['low'], digits)}, {_fmt(iv['high'], digits)}]"


def intervals_markdown(intervals: dict, dists: list[str], threshold: float) -> list[str]:
    """The intervals section of the summary: per prompt split, logit differences, verdicts and correlations."""
    pct = round(100 * intervals["level"])
    lines = [f"## Intervals ({pct}% percentile bootstrap over prompts, {intervals['n_boot']} resamples stratified "
             f"by {intervals['stratified_by']})", "",
             f"Verdict per distribution: *above* when the interval's lower bound exceeds the backup threshold "
             f"({threshold:.3f}), *below* when its upper bound is under it, else *undecided*. *backup*: above under "
             f"every distribution; *not a backup*: below under every one. The frozen-scale verdict uses the clean "
             f"run's final-norm scale (no rescaling).", ""]
    short = {d: d.replace("mean_other_template", "other").replace("resample_abc", "resample") for d in dists}
    for split, s in intervals["splits"].items():
        lines += [f"### {split} templates: {s['n_prompts']} prompts ({', '.join(s['templates'])})", "",
                  f"* clean logit difference {_ci(s['clean_logit_diff'])}, accuracy {s['clean_accuracy']:.3f}",
                  "* clean DLA: " + ", ".join(f"{h} {_ci(v)}" for h, v in s["clean_dla"].items()),
                  "* logit difference with the movers ablated: "
                  + ", ".join(f"{short[d]} {_ci(s['distributions'][d]['logit_diff'])}" for d in dists), ""]
        lines += ["| head | verdict (own scale) | frozen scale | " + " | ".join(f"ΔDLA {short[d]}" for d in dists)
                  + " |", "|---|---|---|" + "---|" * len(dists)]
        for h, v in s["verdicts"].items():
            cells = [_ci(s["distributions"][d]["delta_dla"][h]) for d in dists]
            name = f"{h} (negative)" if v["negative"] else h
            lines.append(f"| {name} | {v['verdict']} | {v.get('frozen_scale_verdict', '-')} | " + " | ".join(cells)
                         + " |")
        if s["rank_correlation"]:
            lines += ["", "Spearman correlation of backup scores: "
                      + "; ".join(f"{short[a]}/{short[b]} {_ci(v)}" for (a, b), v in
                                  ((k.split(" vs "), v) for k, v in s["rank_correlation"].items()))]
        lines.append("")
    return lines


def _heatmaps(result: BackupResult, key: str, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dists = list(result.sweeps)
    ablated = set(result.sweeps[dists[0]][0].ablated)
    mats = []
    for d in dists:
        m = np.array(getattr(result.sweeps[d][0], key), dtype=float)
        for label in ablated:  # grey: the ablated heads' own (large, negative) change would swamp the scale
            layer, h = map(int, label.split("."))
            m[layer, h] = np.nan
        mats.append(m)
    lim = max(float(np.nanmax(np.abs(m))) for m in mats) or 1.0
    L, H = mats[0].shape
    fig, axes = plt.subplots(1, len(dists), figsize=(2.2 + 0.28 * H * len(dists), 1.2 + 0.22 * L), squeeze=False)
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.7")
    for ax, d, m in zip(axes[0], dists, mats):
        im = ax.imshow(m, cmap=cmap, vmin=-lim, vmax=lim, aspect="auto", origin="lower")
        for label in ablated:
            layer, h = map(int, label.split("."))
            ax.text(h, layer, "x", ha="center", va="center", fontsize=7)
        ax.set_title(d, fontsize=8)
        ax.set_xlabel("head")
    axes[0][0].set_ylabel("layer")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="ΔDLA")
    fig.suptitle(title, fontsize=9)
    atomic_save_figure(fig, path, dpi=110)


def _clean_heatmap(result: BackupResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.array(result.clean_dla)
    lim = float(np.abs(m).max()) or 1.0
    fig, ax = plt.subplots(figsize=(2 + 0.3 * m.shape[1], 1.2 + 0.22 * m.shape[0]))
    im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", origin="lower")
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(f"clean DLA on logit(IO) - logit(S): {result.model or ''}", fontsize=9)
    fig.colorbar(im, ax=ax, label="DLA")
    atomic_save_figure(fig, path, dpi=110, tight=True)


def write_backup_report(result: BackupResult, out_dir: str | Path) -> list[Path]:
    """Write results.json, summary.md and the heatmap PNGs into `out_dir`; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [atomic_write_text(json.dumps(result.to_json(), indent=1), out / "results.json"),
             atomic_write_text(summary_markdown(result), out / "summary.md")]
    _clean_heatmap(result, out / "dla_clean.png")
    _heatmaps(result, "delta_dla", out / "delta_dla.png",
              f"ΔDLA after ablating the name movers (x, grey), own-run norm scale: {result.model or ''}")
    _heatmaps(result, "delta_dla_frozen_scale", out / "delta_dla_frozen_scale.png",
              f"ΔDLA after ablating the name movers (x, grey), clean norm scale: {result.model or ''}")
    return paths + [out / "dla_clean.png", out / "delta_dla.png", out / "delta_dla_frozen_scale.png"]


def read_backup_result(out_dir: str | Path) -> BackupResult:
    """The `BackupResult` recorded in `out_dir`/results.json (ValueError naming the file if it is not one)."""
    path = Path(out_dir) / "results.json"
    if not path.is_file():
        raise ValueError(f"{path} does not exist; run scripts/lm_backup_heads.py --out {out_dir} first")
    try:
        return BackupResult.from_json(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a backup-head result ({exc})") from None
