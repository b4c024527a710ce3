"""The dictionary study's report: tables, verdicts in words and figures from `agents.dictionaries` results.

Game-agnostic: results are JSON records per (network, layer); boards are drawn by a callable the
caller supplies (position text -> RGB image of a grid of ``grid`` squares).

Per concept the layer is chosen on **validation** rows (the layer whose best feature has the
highest validation AUROC, separately per network), and test scores at that layer are reported
once. A concept is "in the dictionary" of a network when its best feature beats the best
feature of the random-weight network's dictionary (paired bootstrap interval over test games
above zero) - for the agents, in **every** seed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from common.atomic import atomic_save_figure, atomic_write_text
from common.markdown import frame_to_markdown

log = logging.getLogger(__name__)

CANDIDATE_SEPARATION = 0.8  # |2 AUROC - 1| at which a quantity "tells where" an unmatched feature fires
DASHBOARD_FEATURES = 6
DASHBOARD_EXAMPLES = 4


def _short(layer: str) -> str:
    return layer.replace("features_extractor.", "").replace("mlp_extractor.", "")


def dictionary_frames(results: Mapping[str, Mapping[str, dict]], roles: Mapping[str, str]) -> dict[str, pd.DataFrame]:
    """Long tables from the results (network -> layer -> record): stats, fidelity, coverage, features, ablations."""
    stats, fidelity, coverage, features, ablations = [], [], [], [], []
    for network, layers in results.items():
        role = roles.get(network, "agent")
        for layer, r in layers.items():
            key = {"network": network, "role": role, "layer": layer}
            stats.append({**key, "spatial": r["spatial"], "width": r["width"], "n_features": r["n_features"],
                          "k": r["k"], "n_fit_rows": r["n_fit_rows"],
                          "variance_explained": r["variance_explained_test"], "l0": r["l0"],
                          "dead_fraction": r["dead_fraction"], "n_live": r["n_live_features"],
                          "n_unmatched": r["n_unmatched_features"], "train_seconds": r["train_seconds"],
                          "seconds": r["seconds"]})
            fidelity += [{**key, **f} for f in r["fidelity"]]
            coverage += [{**key, **{k: v for k, v in c.items() if k != "set_features"}} for c in r["coverage"]
                         if "skipped" not in c]
            features += [{**key, **{k: v for k, v in f.items() if k != "examples"}} for f in r["features"]]
            ablations += [{**key, **{k: v for k, v in a.items() if k != "features"}} for a in r["interventions"]]
    return {"stats": pd.DataFrame(stats), "fidelity": pd.DataFrame(fidelity), "coverage": pd.DataFrame(coverage),
            "features": pd.DataFrame(features), "ablations": pd.DataFrame(ablations)}


def chosen_layers(coverage: pd.DataFrame) -> pd.DataFrame:
    """Per (network, target): the row of the layer whose best feature has the highest validation AUROC."""
    if coverage.empty:
        return coverage
    ordered = coverage.sort_values(["network", "target", "best_feature_auroc_validation"], ascending=[True, True, False])
    return ordered.groupby(["network", "target"], sort=False).head(1).reset_index(drop=True)


def concept_verdicts(chosen: pd.DataFrame, agents: Sequence[str], others: Sequence[str] = ()) -> pd.DataFrame:
    """Per target over the agents: test scores at the validation-chosen layer, whether the best feature beats
    the random-weight dictionary's (interval above zero) in every agent, and whether it is as good as the
    linear probe (the interval of feature minus probe reaches zero) in every agent; the best-feature AUROC
    of each of `others` (e.g. the reference network) beside them."""
    rows = []
    part = chosen[chosen["network"].isin(agents)]
    other_scores = chosen[chosen["network"].isin(others)].pivot_table(index="target", columns="network",
                                                                      values="best_feature_auroc")
    for target, group in part.groupby("target", sort=True):
        beats = group["best_feature_minus_control_ci_low"] > 0 if "best_feature_minus_control_ci_low" in group else []
        rows.append({"target": target, "level": group["level"].iloc[0], "n_networks": len(group),
                     "layers": ", ".join(sorted(set(_short(v) for v in group["layer"]))),
                     "best_feature_auroc": group["best_feature_auroc"].mean(),
                     "best_feature_f1": group["best_feature_f1"].mean(),
                     "set_auroc": group["set_auroc"].mean(), "probe_auroc": group["probe_auroc"].mean(),
                     "control_best_feature_auroc": group.get("control_best_feature_auroc", pd.Series(np.nan)).mean(),
                     "minus_control_min_ci_low": group.get("best_feature_minus_control_ci_low", pd.Series(np.nan)).min(),
                     "feature_minus_probe": group["best_feature_minus_probe"].mean(),
                     "in_every_agent": bool(len(beats) and beats.all() and len(group) == len(agents)),
                     "as_good_as_probe_every_agent": bool((group["best_feature_minus_probe_ci_high"] >= 0).all()
                                                          and len(group) == len(agents)),
                     **{f"{o}_best_feature_auroc": (other_scores.at[target, o] if target in other_scores.index
                                                    and o in other_scores.columns else np.nan) for o in others}})
    return pd.DataFrame(rows)


def candidate_concepts(features: pd.DataFrame, agents: Sequence[str], controls: Sequence[str],
                       separation: float = CANDIDATE_SEPARATION) -> pd.DataFrame:
    """Solver quantities that tell where unmatched features fire, per quantity and direction (fires where the
    quantity is high: +, low: -), over the unmatched features whose best descriptor overall is that solver
    quantity (no board fact - row, column, discs, ... - separates them better).

    Per network the strongest such feature's |separation| (`descriptor_separations`); ``n_in_agents`` counts
    features at or above `separation`. A **candidate concept** reaches `separation` in every agent *and*
    beats the strongest feature of the random-weight dictionaries for the same quantity and direction (a
    random network's features track ply, score and move scores too, through the board facts they follow)."""
    key = "best_solver_descriptor"
    if features.empty or key not in features:
        return pd.DataFrame()
    part = features[~features["matched"] & features[key].notna() & (features["best_descriptor"] == features[key])].copy()
    if part.empty:
        return pd.DataFrame()
    part["strength"] = part[f"{key}_separation"].abs()
    rows = []
    for (descriptor, sign), group in part.groupby([part[key], np.sign(part[f"{key}_separation"])]):
        strongest = group.groupby("network")["strength"].max()
        in_agents = [float(strongest.get(a, 0.0)) for a in agents]
        control_best = max([float(strongest.get(c, 0.0)) for c in controls] or [0.0])
        best = group.loc[group["strength"].idxmax()]
        rows.append({"descriptor": descriptor, "direction": "+" if sign > 0 else "-",
                     "weakest_agent_best": min(in_agents) if in_agents else np.nan,
                     "strongest_agent_best": max(in_agents) if in_agents else np.nan,
                     "controls_best": control_best,
                     "n_in_agents": int((group[group["network"].isin(agents)]["strength"] >= separation).sum()),
                     "n_in_controls": int((group[group["network"].isin(controls)]["strength"] >= separation).sum()),
                     "strongest": f"{best['network']} / {_short(best['layer'])} #{int(best['feature'])} "
                                  f"({best[f'{key}_separation']:+.2f})",
                     "candidate": bool(in_agents and min(in_agents) >= separation and min(in_agents) > control_best)})
    return pd.DataFrame(rows).sort_values(["candidate", "weakest_agent_best"], ascending=False).reset_index(drop=True)


def ablations_beside_usage(ablations: pd.DataFrame, usage_csv: Path | None) -> pd.DataFrame:
    """P(concept move) after ablating the matched features, beside the usage suite's probe-direction erasure."""
    if ablations.empty:
        return ablations
    part = ablations[ablations["metric"] == "p_concept_move"][["network", "layer", "concept", "effect", "excess",
                                                                "excess_ci_low", "excess_ci_high", "n"]]
    part = part.rename(columns={"effect": "sae_effect", "excess": "sae_excess", "excess_ci_low": "sae_ci_low",
                                "excess_ci_high": "sae_ci_high"})
    if usage_csv is not None and usage_csv.exists():
        usage = pd.read_csv(usage_csv)[["network", "concept", "layer", "erase_p_move_excess", "erase_p_move_ci_low",
                                        "erase_p_move_ci_high"]]
        part = part.merge(usage.rename(columns={"erase_p_move_excess": "probe_erase_excess",
                                                "erase_p_move_ci_low": "probe_ci_low",
                                                "erase_p_move_ci_high": "probe_ci_high"}),
                          on=["network", "concept", "layer"], how="left")
    return part.reset_index(drop=True)


# ---------------------------------------------------------------------------- figures
def coverage_figure(chosen: pd.DataFrame, networks: Sequence[str], path: Path) -> Path:
    """Heatmap: best-feature test AUROC minus the random-weight dictionary's, per target and network."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = chosen.pivot_table(index="target", columns="network", values="best_feature_minus_control")
    table = table.reindex(columns=[n for n in networks if n in table.columns])
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * table.shape[1], 0.8 + 0.24 * table.shape[0]))
    im = ax.imshow(table.to_numpy(), cmap="RdBu_r", vmin=-0.4, vmax=0.4, aspect="auto")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(table.shape[0]), table.index, fontsize=7)
    for (i, j), v in np.ndenumerate(table.to_numpy()):
        if np.isfinite(v):
            ax.text(j, i, f"{v:+.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax, label="best feature AUROC - random-weight dictionary's")
    ax.set_title("Concept coverage beyond the random-weight dictionary (layer chosen on validation)", fontsize=9)
    out = atomic_save_figure(fig, path, tight=True)
    plt.close(fig)
    return out


def fidelity_figure(fidelity: pd.DataFrame, path: Path, metric: str = "good") -> Path:
    """Grouped bars: the solver-judged rate clean, with the reconstruction spliced in and mean-ablated, per layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    part = fidelity[fidelity["metric"] == metric]
    networks = list(dict.fromkeys(part["network"]))
    layers = list(dict.fromkeys(part["layer"]))
    fig, axes = plt.subplots(1, len(networks), figsize=(3.2 * len(networks), 3.2), sharey=True, squeeze=False)
    x = np.arange(len(layers))
    for ax, network in zip(axes[0], networks):
        rows = part[part["network"] == network].set_index("layer").reindex(layers)
        for offset, column, colour in ((-0.27, "clean", "0.3"), (0, "spliced", "tab:blue"),
                                       (0.27, "mean_ablated", "tab:red")):
            ax.bar(x + offset, rows[column], width=0.27, color=colour, label=column.replace("_", "-"))
        ax.set_xticks(x, [_short(v) for v in layers], rotation=45, ha="right", fontsize=7)
        ax.set_title(network, fontsize=8)
    axes[0][0].set_ylabel(f"{metric}-move rate (solver)" if metric != "value_sign" else "value-sign accuracy")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Fidelity: the dictionary's reconstruction spliced in place of the layer", fontsize=9)
    out = atomic_save_figure(fig, path, tight=True)
    plt.close(fig)
    return out


def dashboard_figure(features: Sequence[dict], picture: Callable[[str], np.ndarray], grid: tuple[int, int],
                     path: Path, title: str) -> Path:
    """One row per feature: its top-activating positions as boards, the square where it fires outlined, with the
    feature's description and the solver's answers (value, optimal moves) under each board."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n_cols = max(1, max(min(len(f.get("examples", [])), DASHBOARD_EXAMPLES) for f in features))
    fig, axes = plt.subplots(len(features), n_cols, figsize=(2.1 * n_cols, 2.3 * len(features)), squeeze=False)
    for row, feature in zip(axes, features):
        label = (f"{feature['network']} / {_short(feature['layer'])} #{feature['feature']}\n"
                 + (f"{feature['concept']} (precision {feature['precision']:.2f})" if feature.get("matched")
                    else f"{feature.get('best_descriptor')} separation {feature.get('best_descriptor_separation', np.nan):+.2f}"))
        for j, ax in enumerate(row):
            ax.axis("off")
            examples = feature.get("examples", [])
            if j >= len(examples):
                continue
            example = examples[j]
            image = picture(example["position"])
            ax.imshow(image)
            if example.get("square") is not None:
                r, c = divmod(int(example["square"]), grid[1])
                px_h, px_w = image.shape[0] / grid[0], image.shape[1] / grid[1]
                ax.add_patch(Rectangle((c * px_w, r * px_h), px_w, px_h, fill=False, edgecolor="yellow", linewidth=2.5))
            ax.set_title(f"act {example['activation']:.2f}  value {example['value']:+d}\noptimal {example['optimal']}",
                         fontsize=6.5)
            if j == 0:
                ax.text(-0.08, 0.5, label, transform=ax.transAxes, ha="right", va="center", fontsize=7)
    fig.suptitle(f"{title}\n(top-activating test positions; value and optimal moves (0-based columns) for the side "
                 "to move, from the solver; the square where the feature fires outlined)", fontsize=8.5)
    out = atomic_save_figure(fig, path, tight=True)
    plt.close(fig)
    return out


def _dashboard_picks(results: Mapping[str, Mapping[str, dict]], agents: Sequence[str], matched: bool) -> list[dict]:
    """Features to draw: matched ones by recall, one per concept; unmatched ones whose best descriptor is a solver
    quantity, by |separation|, one per (quantity, direction)."""
    picks = []
    for network in agents:
        for layer, record in results.get(network, {}).items():
            for f in record["features"]:
                if "examples" not in f or f["matched"] != matched:
                    continue
                if matched:
                    score = f["recall"]
                else:  # the features kept with examples are best described by a solver quantity
                    score = abs(f.get("best_solver_descriptor_separation", 0.0))
                picks.append((score, {**f, "network": network, "layer": layer}))
    picks.sort(key=lambda p: -p[0])
    seen, out = set(), []
    for _, f in picks:  # one feature per concept or (descriptor, direction), for variety
        key = f.get("concept") if matched else (f["best_descriptor"], np.sign(f["best_descriptor_separation"]))
        if key in seen:
            continue
        seen.add(key)
        out.append(f)
        if len(out) == DASHBOARD_FEATURES:
            break
    return out


# ---------------------------------------------------------------------------- the report
def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else f"{v:.3f}"
    return str(v)


def _ablation_summary(ablations: pd.DataFrame) -> list[str]:
    """Words: in how many (network, layer, concept) cells the feature ablation and the probe erasure move play
    beyond their controls (interval below zero)."""
    if ablations.empty:
        return []
    sae = int((ablations["sae_ci_high"] < 0).sum())
    text = (f"Ablating the matched features lowers P(concept move) beyond the controls in {sae} of {len(ablations)} "
            "(network, layer, concept) cells")
    if "probe_erase_excess" in ablations:
        both = ablations.dropna(subset=["probe_erase_excess"])
        probe = int((both["probe_ci_high"] < 0).sum())
        stronger = int((both["sae_excess"] < both["probe_erase_excess"]).sum())
        text += (f"; erasing the probe direction does in {probe} of the {len(both)} cells the usage suite measured, and "
                 f"the feature ablation's excess is the larger drop in {stronger} of them (point estimates; the two "
                 "are measured on the same positions but not paired)")
    return [text + ".", ""]


def write_dictionary_report(results: Mapping[str, Mapping[str, dict]], roles: Mapping[str, str], out: str | Path,
                            usage: str | Path | None = None, picture: Callable[[str], np.ndarray] | None = None,
                            grid: tuple[int, int] | None = None, notes: Sequence[str] = (),
                            transcoders: Mapping[str, Mapping[str, dict]] | None = None) -> Path:
    """report.md, stats.csv, fidelity.csv, coverage.csv, features.csv.gz, ablations.csv and figures under `out`.

    :param results: network -> layer -> `agents.dictionaries` record.
    :param roles: network -> ``agent`` / ``reference`` / ``random-weights``.
    :param usage: the usage suite's folder (its usage.csv holds the probe-direction erasures).
    :param picture: position text -> RGB board image, for the feature dashboards (none without it).
    :param grid: (rows, columns) of squares in the picture.
    :param transcoders: network -> layer -> `agents.dictionaries.layer_transcoder` record.
    """
    out = Path(out)
    frames = dictionary_frames(results, roles)
    agents = [n for n in results if roles.get(n) == "agent"]
    others = [n for n in results if roles.get(n) not in ("agent", "random-weights")]
    controls = [n for n in results if roles.get(n) == "random-weights"]
    chosen = chosen_layers(frames["coverage"])
    verdicts = concept_verdicts(chosen, agents, others)
    candidates = candidate_concepts(frames["features"], agents, controls)
    ablations = ablations_beside_usage(frames["ablations"], Path(usage) / "usage.csv" if usage else None)
    for name, frame in (("stats", frames["stats"]), ("fidelity", frames["fidelity"]), ("coverage", frames["coverage"]),
                        ("ablations", frames["ablations"])):
        atomic_write_text(frame.to_csv(index=False), out / f"{name}.csv")
    features_csv = out / "features.csv.gz"
    tmp = features_csv.with_name(features_csv.name + ".tmp")
    frames["features"].to_csv(tmp, index=False, compression={"method": "gzip", "mtime": 0})  # same bytes each time
    tmp.replace(features_csv)

    figures = []
    if not chosen.empty:
        figures.append(coverage_figure(chosen, agents + others + controls, out / "coverage.png"))
    if not frames["fidelity"].empty:
        figures.append(fidelity_figure(frames["fidelity"], out / "fidelity.png"))
    if picture is not None and grid is not None:
        for matched, name, title in ((False, "dashboard-unmatched.png",
                                      "Features that match no concept, described by a solver quantity"),
                                     (True, "dashboard-matched.png", "Features matched to a concept")):
            picks = _dashboard_picks(results, agents, matched)
            if picks:
                figures.append(dashboard_figure(picks, picture, grid, out / name, title))

    lines = ["# Sparse dictionaries, scored against exact concepts", ""]
    lines += [f"- {n}" for n in notes]
    lines += ["", f"Networks: agents {agents}; other {others}; random-weight controls {controls}.", "",
              "## Dictionaries", "",
              "Variance explained and L0 on test rows (one row per square on spatial layers, per position on flat "
              "ones); `n_unmatched`: live features whose firing detects no concept.", ""]
    stats = frames["stats"].copy()
    stats["layer"] = stats["layer"].map(_short)
    lines += [frame_to_markdown(stats.drop(columns=["width", "spatial"]), _fmt), "", "## Fidelity (judged by the solver)", "",
              "Good-move, perfect-move and value-sign rates on the test positions (the value head reads only the last; a policy layer moves only the first two): clean, with the reconstruction spliced in, with the layer "
              "replaced by its train mean; `recovered` = (spliced - ablated) / (clean - ablated).", ""]
    fid = frames["fidelity"]
    if not fid.empty:
        fid = fid.copy()
        fid["layer"] = fid["layer"].map(_short)
        lines += [frame_to_markdown(fid[["network", "layer", "metric", "clean", "spliced", "mean_ablated", "effect",
                                         "effect_ci_low", "effect_ci_high", "recovered"]], _fmt), ""]
    if transcoders:
        rows = [{"network": network, "layer": _short(layer), "d_in": r["d_in"], "d_out": r["d_out"],
                 "n_features": r["n_features"], "variance_explained": r["variance_explained_test"], "l0": r["l0"],
                 **{f"{f['metric']}_{part}": f[part] for f in r["fidelity"] for part in ("clean", "spliced")}}
                for network, layers in transcoders.items() for layer, r in layers.items()]
        lines += ["### Transcoders", "",
                  "Flat layers replaced by a transcoder from their input (the head's flattened 1x1-conv map) to their "
                  "output: variance of the output explained on test positions, and play with its prediction spliced in.",
                  "", frame_to_markdown(pd.DataFrame(rows), _fmt), ""]
    lines += ["## Coverage of the concepts", "",
              "Per concept, the layer whose best feature has the highest validation AUROC (per network); test AUROC "
              "of the best single feature, its F1 at the train threshold, the best small set, the linear probe on the "
              "same layer, and the random-weight dictionary's best feature; averaged over the agents. "
              "`in_every_agent`: the best feature beats the random-weight dictionary's (paired bootstrap interval "
              "over test games above zero) in every agent seed.", ""]
    if not verdicts.empty:
        lines += [frame_to_markdown(verdicts, _fmt), ""]
        found = verdicts[verdicts["in_every_agent"]]
        as_good = verdicts[verdicts["as_good_as_probe_every_agent"]]
        lines += [f"**{len(found)} of {len(verdicts)} concept targets** have a dictionary feature beyond the "
                  f"random-weight control in every agent seed; for {len(as_good)} the best single feature is as good "
                  "as the linear probe of its layer (the paired interval of feature minus probe reaches zero) in "
                  f"every seed. Mean best-feature F1 (coverage in the sense of Karvonen et al.): "
                  f"{verdicts['best_feature_f1'].mean():.3f}; the linear probe's AUROC exceeds the best feature's by "
                  f"{-verdicts['feature_minus_probe'].mean():.3f} on average.", ""]
        if len(found):
            lines += ["In the dictionaries of every agent: " + ", ".join(
                f"`{t}` ({a:.2f} vs control {c:.2f})" for t, a, c in
                found[["target", "best_feature_auroc", "control_best_feature_auroc"]].itertuples(index=False)) + ".", ""]
    if others:
        for other in others:
            part = chosen[chosen["network"] == other]
            if not part.empty:
                lines += [f"{other}: mean best-feature AUROC {part['best_feature_auroc'].mean():.3f} over "
                          f"{len(part)} targets (agents: {verdicts['best_feature_auroc'].mean():.3f}).", ""]
    feats = frames["features"]
    if not feats.empty and feats["matched"].any():
        matched = feats[feats["matched"]]
        table = matched.groupby(["concept", "role"]).size().unstack(fill_value=0)
        n_of = {role: max(1, sum(roles.get(n) == role for n in results)) for role in table.columns}
        table = (table / pd.Series(n_of)).round(1).sort_values(list(table.columns)[0], ascending=False)
        lines += ["### Features matched to a concept", "",
                  "Live features whose firing detects a concept (precision >= the match threshold, lift >= 1.5), per "
                  "concept, summed over layers and averaged over the networks of each role. A random-weight network's "
                  "dictionary matches concepts the input already spells out (whose turn it is, claimeven squares).", "",
                  frame_to_markdown(table.reset_index(), _fmt), ""]
    lines += ["## What is not on our list", "",
              "Unmatched features whose firing a solver quantity separates from the rest better than any board "
              "fact does (separation = 2 AUROC - 1 of the quantity between the rows where the feature fires and the "
              "others; + where the quantity is high), per quantity and direction: the strongest feature's |separation| "
              "in the weakest and the strongest agent and in the random-weight dictionaries. A **candidate concept** "
              f"reaches {CANDIDATE_SEPARATION} in every agent and beats the random-weight dictionaries.", ""]
    if not candidates.empty:
        lines += [frame_to_markdown(candidates, _fmt), ""]
    else:
        lines += ["None.", ""]
    lines += ["## Interventions", "",
              "P(concept move) on test positions where the concept holds, after ablating the features matched to the "
              "concept (its small set) at the concept's squares: the effect and the excess beyond the strongest "
              "control (random features, random squares), beside the usage suite's erasure of the probe direction.",
              ""]
    if not ablations.empty:
        shown = ablations[~ablations["network"].isin(controls)].copy()
        lines += _ablation_summary(shown)
        shown["layer"] = shown["layer"].map(_short)
        lines += [frame_to_markdown(shown, _fmt), "",
                  "The random-weight networks' rows are left out: their play barely depends on any feature (every "
                  "effect within 1e-4).", ""]
    lines += ["## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figures] + [""]
    return atomic_write_text("\n".join(lines), out / "report.md")


def read_results(out: str | Path) -> tuple[dict[str, dict[str, dict]], dict[str, str]]:
    """(network -> layer -> record, network -> role) from a dictionary study folder."""
    results: dict[str, dict[str, dict]] = {}
    roles: dict[str, str] = {}
    for path in sorted(Path(out).glob("*/*.json")):
        record = json.loads(path.read_text())
        if "layer" not in record or "network" not in record or record.get("kind") == "transcoder":
            continue
        results.setdefault(record["network"], {})[record["layer"]] = record
        roles[record["network"]] = record.get("role", "agent")
    return results, roles


def read_transcoders(out: str | Path) -> dict[str, dict[str, dict]]:
    """network -> layer -> transcoder record (``LAYER.transcoder.json``) from a dictionary study folder."""
    found: dict[str, dict[str, dict]] = {}
    for path in sorted(Path(out).glob("*/*.transcoder.json")):
        record = json.loads(path.read_text())
        found.setdefault(record["network"], {})[record["layer"]] = record
    return found

