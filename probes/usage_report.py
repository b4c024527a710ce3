"""Represented vs used: join the probe study's deltas with the usage suite's causal effects, and report.

Game-agnostic: it reads the usage suite's per-concept results (`agents.usage`) and the
study's ``deltas.csv`` (`probes.study`). For each network, concept and layer:

* **represented** - the study's delta at that layer (final checkpoint of that run) clears
  the margin after Benjamini-Hochberg (``q_margin < alpha``); unknown (None) when the study
  did not score that network;
* **used** - `probes.interventions.UsageThresholds`: erasing the concept at that layer lowers
  the policy's probability of the concept's moves, or the value head's sign accuracy,
  beyond the strongest control (linear use), or patching just the concept's squares
  restores the decision beyond random squares (patched use);
* the verdict, one of `probes.interventions.USAGE_VERDICTS`.

`write_usage_report` writes ``report.md``, ``usage.csv`` (the joined table),
``patching-maps.png`` (layer x square restored fractions per network and concept),
``usage-grid.png`` (the verdict grid per network), ``erasure.png`` (the erasure's excess
effect per layer, networks overlaid), ``steering.png`` (steering strength against the excess
change in P(concept move)), ``patching-regions.png`` (restored fraction by layer for the
concept's squares, the changed squares and random squares) and ``patching-aligned.png``
(the per-square map by offset from the concept's square).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from common.atomic import atomic_save_figure, atomic_target, atomic_write_text
from common.markdown import frame_to_markdown
from probes.interventions import (
    USAGE_VERDICTS,
    UsageThresholds,
    erasure_used,
    patching_used,
    usage_verdict,
)

log = logging.getLogger(__name__)

VERDICT_COLOURS = {USAGE_VERDICTS[0]: "#1b7837", USAGE_VERDICTS[1]: "#a6dba0", USAGE_VERDICTS[2]: "#fdb863",
                   USAGE_VERDICTS[3]: "#9970ab", USAGE_VERDICTS[4]: "#f0f0f0", "used": "#5aae61", "not used": "#d9d9d9"}


def represented_lookup(deltas: pd.DataFrame | None, run: str | None, alpha: float = 0.05) -> dict[tuple[str, str], dict]:
    """``(concept, layer) -> {represented, delta, ci_low, ci_high, q_margin, step}`` at `run`'s last checkpoint."""
    if deltas is None or run is None:
        return {}
    rows = deltas[deltas["run"] == run]
    if rows.empty:
        return {}
    last = rows[rows["step"] == rows["step"].max()]
    return {(r.concept, r.layer): {"represented": bool(r.q_margin < alpha), "delta": float(r.delta),
                                   "delta_ci_low": float(r.ci_low), "delta_ci_high": float(r.ci_high),
                                   "q_margin": float(r.q_margin), "step": int(r.step)}
            for r in last.itertuples()}


def _layers(result: dict) -> list[str]:
    return list(dict.fromkeys(r["layer"] for r in result["interventions"]))


def usage_table(network: str, results: Mapping[str, dict], deltas: pd.DataFrame | None, run: str | None,
                thresholds: UsageThresholds | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """One row per (concept, layer) of one network: represented, the causal effects, used, verdict."""
    thresholds = thresholds or UsageThresholds()
    lookup = represented_lookup(deltas, run, alpha)
    rows = []
    for concept, result in results.items():
        for layer in _layers(result):
            used_policy, erase_p = erasure_used(result["interventions"], layer, thresholds, "p_concept_move")
            used_value, erase_v = erasure_used(result["interventions"], layer, thresholds, "value_sign")
            carried_policy, patch_p = patching_used(result["patching"], layer, thresholds, "p_target")
            carried_value, patch_v = patching_used(result["patching"], layer, thresholds, "value")
            solver = {m: next((r for r in result["interventions"] if r["layer"] == layer and r["edit"] == "erase"
                               and r["metric"] == m), None) for m in ("good", "perfect")}
            rep = lookup.get((concept, layer))
            used_by = [name for name, flag in (("policy", used_policy or carried_policy),
                                               ("value", used_value or carried_value)) if flag]
            row = {"network": network, "concept": concept, "layer": layer,
                   "scope": erase_p["scope"] if erase_p else "",
                   "represented": None if rep is None else rep["represented"],
                   **({k: v for k, v in rep.items() if k != "represented"} if rep else {}),
                   "p_move_clean": _get(erase_p, "clean"), "perfect_clean": _get(solver["perfect"], "clean"),
                   "erase_p_move_excess": _get(erase_p, "excess"),
                   "erase_p_move_ci_low": _get(erase_p, "excess_ci_low"),
                   "erase_p_move_ci_high": _get(erase_p, "excess_ci_high"),
                   "erase_value_sign_excess": _get(erase_v, "excess"),
                   "erase_value_sign_ci_low": _get(erase_v, "excess_ci_low"),
                   "erase_value_sign_ci_high": _get(erase_v, "excess_ci_high"),
                   "erase_good_effect": _get(solver["good"], "effect"),
                   "erase_good_ci_low": _get(solver["good"], "effect_ci_low"),
                   "erase_good_ci_high": _get(solver["good"], "effect_ci_high"),
                   "erase_perfect_effect": _get(solver["perfect"], "effect"),
                   "erase_perfect_ci_low": _get(solver["perfect"], "effect_ci_low"),
                   "erase_perfect_ci_high": _get(solver["perfect"], "effect_ci_high"),
                   "patch_p_move_excess": _get(patch_p, "mean"), "patch_p_move_ci_low": _get(patch_p, "ci_low"),
                   "patch_p_move_ci_high": _get(patch_p, "ci_high"),
                   "patch_value_excess": _get(patch_v, "mean"), "patch_value_ci_low": _get(patch_v, "ci_low"),
                   "n_positions": erase_p["n"] if erase_p else 0, "n_pairs": result.get("n_pairs", 0),
                   "used_by": "+".join(used_by), "used": bool(used_by),
                   "linear_use": bool(used_policy or used_value), "patched_use": bool(carried_policy or carried_value)}
            row["verdict"] = usage_verdict(row["represented"], row["linear_use"], row["patched_use"])
            rows.append(row)
    return pd.DataFrame(rows)


def _get(row: dict | None, key: str) -> float:
    return float(row[key]) if row is not None and key in row else float("nan")


# ---------------------------------------------------------------------------- figures
def plot_patching_maps(results: Mapping[str, Mapping[str, dict]], path: str | Path, readout: str = "p_target",
                       aligned: bool = False) -> Path | None:
    """Restored fraction per square (patching one square at a time): rows network x concept, columns layers.

    :param aligned: draw the maps by offset from each pair's concept square (``READOUT@concept``;
        the concept square is the centre, marked) instead of by absolute square.
    """
    key = f"{readout}@concept" if aligned else readout
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(net, concept, res) for net, by in results.items() for concept, res in by.items() if res.get("maps")]
    if not panels:
        return None
    layers = list(dict.fromkeys(layer for _, _, res in panels for layer in res["maps"]))
    fig, axes = plt.subplots(len(panels), len(layers), figsize=(1.9 * len(layers) + 1, 1.7 * len(panels) + 0.6),
                             squeeze=False)
    image = None
    for i, (net, concept, res) in enumerate(panels):
        for j, layer in enumerate(layers):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if layer in res["maps"] and key in res["maps"][layer]:
                grid = np.asarray(res["maps"][layer][key], dtype=float)
                image = ax.imshow(grid, cmap="magma", vmin=-0.1, vmax=0.6)
                if aligned:
                    ax.plot((grid.shape[1] - 1) / 2, (grid.shape[0] - 1) / 2, "c+", ms=5, mew=0.8)
            if i == 0:
                ax.set_title(layer.split(".", 1)[-1], fontsize=7)
            if j == 0:
                ax.set_ylabel(f"{net}\n{concept}\n(n={res.get('n_pairs', 0)})", fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label=f"restored fraction of the change in {readout}")
    where = ("by offset from the concept's square (+; pairs whose concept names one square, offsets reached by "
             ">= 10 pairs)" if aligned else "by square")
    fig.suptitle(f"Patching one square from the member with the concept into the one without, {where}", fontsize=9)
    return atomic_save_figure(fig, path, dpi=130)


def plot_patching_regions(results: Mapping[str, Mapping[str, dict]], path: str | Path) -> Path | None:
    """Restored fraction by layer when patching the concept's squares, the changed squares or random squares.

    One column per concept, one row per readout (P(concept move), the value); networks overlaid.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    concepts = list(dict.fromkeys(c for by in results.values() for c, res in by.items() if res.get("patching")))
    if not concepts:
        return None
    readouts = (("p_target", "P(concept move)"), ("value", "value"))
    styles = {"concept_squares": "-", "changed_squares": "--", "random_squares": ":"}
    fig, axes = plt.subplots(len(readouts), len(concepts), figsize=(4.6 * len(concepts), 5.4), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, concept in enumerate(concepts):
        for i, (readout, label) in enumerate(readouts):
            ax = axes[i, j]
            layers: list[str] = []
            for k, (net, by) in enumerate(results.items()):
                rows = [r for r in by.get(concept, {}).get("patching", []) if r["readout"] == readout]
                for region, style in styles.items():
                    part = [r for r in rows if r["region"] == region]
                    if not part:
                        continue
                    for r in part:
                        if r["layer"] not in layers:
                            layers.append(r["layer"])
                    x = [layers.index(r["layer"]) for r in part]
                    ax.plot(x, [r["mean"] for r in part], style, color=colours[k % len(colours)], lw=1.2,
                            label=f"{net}: {region.replace('_', ' ')}" if i == 0 and j == 0 else None)
            ax.axhline(0, color="grey", lw=0.6)
            ax.set_xticks(range(len(layers)), [layer.split(".", 1)[-1] for layer in layers], rotation=60, fontsize=6,
                          ha="right")
            ax.set_ylabel(f"restored fraction: {label}", fontsize=7)
            if i == 0:
                n = max((by.get(concept, {}).get("n_pairs", 0) for by in results.values()), default=0)
                ax.set_title(f"{concept} ({n} pairs)", fontsize=9)
    fig.legend(loc="lower center", ncol=3, fontsize=6, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return atomic_save_figure(fig, path, dpi=130)


def plot_steering(results: Mapping[str, Mapping[str, dict]], path: str | Path) -> Path | None:
    """Steering along the concept's direction: the excess change in P(concept move) by strength, per layer.

    One panel per (network, concept); a line per layer, with its 95% interval as a band.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(net, concept, res) for net, by in results.items() for concept, res in by.items()
              if any(r["edit"] == "steer" for r in res.get("interventions", []))]
    if not panels:
        return None
    cols = max(len(by) for by in results.values())
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 2.8 * rows), squeeze=False, sharey=True)
    for ax, (net, concept, res) in zip(axes.flat, panels):
        steer = [r for r in res["interventions"] if r["edit"] == "steer" and r["metric"] == "p_concept_move"]
        for layer in dict.fromkeys(r["layer"] for r in steer):
            part = sorted((r for r in steer if r["layer"] == layer), key=lambda r: r["alpha"])
            x = [r["alpha"] for r in part]
            line, = ax.plot(x, [r["excess"] for r in part], "o-", ms=2.5, lw=1, label=layer.split(".", 1)[-1])
            ax.fill_between(x, [r["excess_ci_low"] for r in part], [r["excess_ci_high"] for r in part],
                            color=line.get_color(), alpha=0.15, lw=0)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_title(f"{net}: {concept}", fontsize=8)
        ax.set_xlabel("alpha (sd along the direction; < 0 away from the concept)", fontsize=7)
        ax.set_ylabel("change in P(concept move) beyond control", fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    return atomic_save_figure(fig, path, dpi=130)


def plot_usage_grid(tables: Mapping[str, pd.DataFrame], path: str | Path) -> Path | None:
    """The verdict per (concept, layer), one panel per network; cells carry the erasure's excess drop in P(move)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    tables = {k: v for k, v in tables.items() if not v.empty}
    if not tables:
        return None
    fig, axes = plt.subplots(1, len(tables), figsize=(4.2 * len(tables), 3.2), squeeze=False)
    for ax, (net, table) in zip(axes[0], tables.items()):
        concepts = list(dict.fromkeys(table["concept"]))
        layers = list(dict.fromkeys(table["layer"]))
        rgb = np.ones((len(concepts), len(layers), 3))
        for r in table.itertuples():
            colour = VERDICT_COLOURS.get(r.verdict, "#ffffff").lstrip("#")
            rgb[concepts.index(r.concept), layers.index(r.layer)] = [int(colour[k:k + 2], 16) / 255 for k in (0, 2, 4)]
            ax.text(layers.index(r.layer), concepts.index(r.concept), f"{-r.erase_p_move_excess:+.2f}",
                    ha="center", va="center", fontsize=6)
        ax.imshow(rgb, aspect="auto")
        ax.set_xticks(range(len(layers)), [layer.split(".", 1)[-1] for layer in layers], rotation=60, fontsize=6, ha="right")
        ax.set_yticks(range(len(concepts)), concepts, fontsize=7)
        ax.set_title(net, fontsize=8)
    shown = sorted({v for t in tables.values() for v in t["verdict"]}, key=list(VERDICT_COLOURS).index)
    fig.legend(handles=[Patch(color=VERDICT_COLOURS[v], label=v) for v in shown], loc="lower center",
               ncol=len(shown), fontsize=7, frameon=False)
    fig.suptitle("Represented vs used (numbers: drop in P(concept move) from erasing it, beyond the strongest control)",
                 fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    return atomic_save_figure(fig, path, dpi=130)


def plot_erasure(tables: Mapping[str, pd.DataFrame], path: str | Path) -> Path | None:
    """Per concept: the erasure's excess drop in P(concept move) by layer with 95% intervals, networks overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = pd.concat([t for t in tables.values() if not t.empty], ignore_index=True) if tables else pd.DataFrame()
    if table.empty:
        return None
    concepts = list(dict.fromkeys(table["concept"]))
    layers = list(dict.fromkeys(table["layer"]))
    fig, axes = plt.subplots(1, len(concepts), figsize=(4.5 * len(concepts), 3.2), squeeze=False)
    for ax, concept in zip(axes[0], concepts):
        part = table[table["concept"] == concept]
        for k, (net, rows) in enumerate(part.groupby("network", sort=False)):
            x = np.array([layers.index(layer) for layer in rows["layer"]]) + (k - 1) * 0.08
            y = -rows["erase_p_move_excess"].to_numpy()
            err = np.vstack([y - (-rows["erase_p_move_ci_high"].to_numpy()), (-rows["erase_p_move_ci_low"].to_numpy()) - y])
            ax.errorbar(x, y, yerr=err, fmt="o-", ms=3, lw=1, capsize=2, label=net)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xticks(range(len(layers)), [layer.split(".", 1)[-1] for layer in layers], rotation=60, fontsize=6, ha="right")
        ax.set_title(concept, fontsize=9)
        ax.set_ylabel("drop in P(concept move) beyond controls", fontsize=7)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return atomic_save_figure(fig, path, dpi=130)


# ---------------------------------------------------------------------------- report
def _intervals(table: pd.DataFrame, value: str, low: str, high: str) -> list[str]:
    """``value [low, high]`` per row of `table` (``-`` where the value is missing or the column absent)."""
    if value not in table:
        return ["-"] * len(table)
    return ["-" if pd.isna(x) else f"{x:+.3f} [{a:+.3f}, {b:+.3f}]" for x, a, b in zip(table[value], table[low], table[high])]


def consistent_verdicts(tables: Mapping[str, pd.DataFrame], networks: Sequence[str]) -> pd.DataFrame:
    """Per (concept, layer): each listed network's verdict, and the verdict when they all agree (else ``mixed``)."""
    rows = []
    joined = pd.concat([tables[n] for n in networks if n in tables and not tables[n].empty], ignore_index=True)
    if joined.empty:
        return pd.DataFrame()
    for (concept, layer), part in joined.groupby(["concept", "layer"], sort=False):
        verdicts = dict(zip(part["network"], part["verdict"]))
        values = set(verdicts.values())
        rows.append({"concept": concept, "layer": layer, **verdicts,
                     "across": values.pop() if len(values) == 1 and len(verdicts) == len(networks) else "mixed"})
    return pd.DataFrame(rows)


def write_usage_report(results: Mapping[str, Mapping[str, dict]], out: str | Path, deltas: pd.DataFrame | None = None,
                       runs: Mapping[str, str | None] | None = None, seeds: Sequence[str] = (),
                       thresholds: UsageThresholds | None = None, alpha: float = 0.05,
                       notes: Sequence[str] = ()) -> Path:
    """Write the usage report for `results` (network -> concept -> result) into `out`; returns report.md's path.

    :param runs: network -> the study's run name for it (None: not in the study).
    :param seeds: the networks that are seeds of one agent (the across-seeds table).
    :param notes: extra lines for the report's head (e.g. how the networks were chosen).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = runs or {}
    thresholds = thresholds or UsageThresholds()
    tables = {net: usage_table(net, by, deltas, runs.get(net), thresholds, alpha) for net, by in results.items()}
    joined = pd.concat(list(tables.values()), ignore_index=True) if tables else pd.DataFrame()
    with atomic_target(out / "usage.csv", suffix=".csv") as tmp:
        joined.to_csv(tmp, index=False)
    figures = {"usage-grid.png": plot_usage_grid(tables, out / "usage-grid.png"),
               "erasure.png": plot_erasure(tables, out / "erasure.png"),
               "patching-regions.png": plot_patching_regions(results, out / "patching-regions.png"),
               "patching-aligned.png": plot_patching_maps(results, out / "patching-aligned.png", aligned=True),
               "patching-maps.png": plot_patching_maps(results, out / "patching-maps.png"),
               "steering.png": plot_steering(results, out / "steering.png")}
    lines = ["# Does the agent use what it represents?", "",
             *notes, "",
             "## Thresholds", "",
             f"* **represented**: the study's delta against the strongest control at that layer (last checkpoint) "
             f"clears the margin after BH, q < {alpha}.",
             f"* **used**: erasing the concept at that layer (rank-1 LEACE per square on spatial layers, along a "
             f"whole-board direction on flat ones) lowers P(concept move) or the value head's sign accuracy by more "
             f"than the strongest equal-size control (random direction, random squares) by at least "
             f"{thresholds.effect} (whole 95% interval beyond it); or patching only the concept's squares from the "
             f"member of a minimal pair with the concept into the one without restores at least "
             f"{thresholds.restored:.0%} of the change beyond as many random squares (lower 95% bound).",
             "* **verdicts**: represented and used; represented, not used; *used, decodable but not beyond the "
             "controls* (not represented by the study's test, yet erasing the concept's linear direction fitted at "
             "that layer changes play: the layer holds it linearly, but no better than a control such as the raw "
             "input does); *used without a linear representation* (not represented, linear erasure has no effect, "
             "patching the concept's squares does); neither.",
             "* Every effect is paired per position (held-out test games) or per pair, with 95% bootstrap intervals.",
             ""]
    if seeds:
        across = consistent_verdicts(tables, seeds)
        if not across.empty:
            lines += ["## Across seeds", "", f"Verdicts of {', '.join(seeds)}; `across` is the verdict when all agree.",
                      "", frame_to_markdown(across), ""]
            for concept, part in across.groupby("concept", sort=False):
                agreed = part[part["across"] != "mixed"]
                text = "; ".join(f"{v} at {', '.join(p['layer'].str.split('.', n=1).str[-1])}"
                                 for v, p in agreed.groupby("across", sort=False))
                lines.append(f"* **{concept}**: {text or 'no verdict shared by every seed'}"
                             f"{'' if len(agreed) == len(part) else f' (mixed at {len(part) - len(agreed)} layers)'}.")
            lines.append("")
    for figure, path in figures.items():
        if path is not None:
            lines += [f"![{figure}]({figure})", ""]
    for net, table in tables.items():
        if table.empty:
            continue
        lines += [f"## {net}", ""]
        show = pd.DataFrame({
            "concept": table["concept"], "layer": table["layer"], "scope": table["scope"],
            "delta (study)": _intervals(table, "delta", "delta_ci_low", "delta_ci_high"),
            "clean P(move) / perfect": [f"{a:.3f} / {b:.3f}" for a, b in zip(table["p_move_clean"],
                                                                          table["perfect_clean"])],
            "erase: P(move) beyond control": _intervals(table, "erase_p_move_excess", "erase_p_move_ci_low",
                                                        "erase_p_move_ci_high"),
            "erase: perfect-move rate": _intervals(table, "erase_perfect_effect", "erase_perfect_ci_low",
                                                   "erase_perfect_ci_high"),
            "erase: value sign beyond control": _intervals(table, "erase_value_sign_excess", "erase_value_sign_ci_low",
                                                           "erase_value_sign_ci_high"),
            "patch squares: restored beyond random": _intervals(table, "patch_p_move_excess", "patch_p_move_ci_low",
                                                                "patch_p_move_ci_high"),
            "n (positions / pairs)": [f"{a} / {b}" for a, b in zip(table["n_positions"], table["n_pairs"])],
            "used by": table["used_by"], "verdict": table["verdict"]})
        lines += [frame_to_markdown(show), ""]
    atomic_write_text("\n".join(lines) + "\n", out / "report.md")
    return out / "report.md"
