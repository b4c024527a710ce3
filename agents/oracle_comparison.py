"""Learned vs optimal: the study's agents against the oracle network, concept by layer, with paired intervals.

For every seed of a recorded study folder (``seedS/{agent,dataset,sweep}``, `agents.usage.study_networks`)
this sweeps, on that seed's dataset and in one sweep folder, the agent (its final checkpoint,
with its step-0 network as a control) beside two checkpoints of the oracle network
(`agents.reference`, ``docs/oracle.md``): its final one and the one whose strength is closest
to the agent's (**strength-matched**: the mean good-move rate over the evaluation sets both
runs were measured on). Then `probes.comparison` gives, per concept and layer, agent minus
oracle with a paired bootstrap interval over the seed's held-out games, verdicts across seeds
(a difference counts only when it clears the margin with BH q < alpha in every seed), and
`probes.study` whether each network represents the concept beyond the random-weight networks
and the input at all.

Outputs (``OUT/``): ``strength.json`` (what was matched with what), ``differences.csv.gz``
(every seed, pairing, concept, layer), ``by_layer.csv`` (verdicts across seeds),
``by_concept.csv``, ``beyond_controls.csv``, ``report.md`` and ``differences.png``. The per-seed
sweep folders (``OUT/seedS/sweep``) and the run views they read (``OUT/runs``, links to the
checkpoints) are rebuilt by a rerun; a finished sweep is reused (sweeps resume cell by cell).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from agents.records import EvaluationRecord
from agents.runs import read_evaluations, read_run_config, write_evaluation, write_run_config
from common.atomic import atomic_save_figure, atomic_write_json, atomic_write_text
from probes.comparison import Pairing, across_seeds, network_differences, summarise_concepts
from probes.study import StudySettings, analyse

log = logging.getLogger(__name__)

FINAL = "final vs final"
MATCHED = "matched strength"


def strength(record: EvaluationRecord, sets: Sequence[str]) -> float:
    """Mean good-move rate of a checkpoint over the named evaluation sets."""
    quality = record.move_quality or {}
    missing = [s for s in sets if s not in quality]
    if missing:
        raise ValueError(f"the record at step {record.timestep} has no move quality on {missing}")
    return float(np.mean([quality[s].good_rate for s in sets]))


def shared_sets(a: EvaluationRecord, b: EvaluationRecord) -> list[str]:
    """Evaluation sets both records were measured on, on the same positions where both say which."""
    qa, qb = a.move_quality or {}, b.move_quality or {}
    da, db = a.sets or {}, b.sets or {}
    names = [s for s in qa if s in qb
             and (s not in da or s not in db or da[s].positions_sha256 == db[s].positions_sha256)]
    if not names:
        raise ValueError("the two runs share no evaluation set measured on the same positions")
    return names


def matched_record(target: EvaluationRecord, candidates: Sequence[EvaluationRecord],
                   sets: Sequence[str] | None = None) -> tuple[EvaluationRecord, list[str]]:
    """The candidate checkpoint whose strength is closest to `target`'s (ties: the earlier one), and the sets used.

    :param sets: the evaluation sets to average over (default: those `target` shares with the last candidate).
    """
    evaluated = [c for c in candidates if c.move_quality]
    if not evaluated:
        raise ValueError("the oracle run has no evaluated checkpoint to match")
    sets = list(sets) if sets is not None else shared_sets(target, evaluated[-1])
    goal = strength(target, sets)
    best = min(evaluated, key=lambda c: (abs(strength(c, sets) - goal), c.timestep))
    return best, sets


@dataclass
class SeedMatch:
    """What one seed's comparison put side by side."""

    seed_folder: str
    agent_run: str
    agent_step: int
    agent_strength: float
    oracle_final_step: int
    oracle_final_strength: float
    matched_step: int
    matched_strength: float
    sets: list[str]


def _view_run(config_from: Path, records: Sequence[EvaluationRecord], checkpoints: dict[int, Path], out: Path) -> Path:
    """A run folder holding only the given checkpoints (links) and their records, for a sweep to read."""
    info = read_run_config(config_from)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    write_run_config(out, info.config, **info.extra)
    for stale in (out / "checkpoints").glob("step_*.zip"):
        stale.unlink()
    (out / "evaluations.jsonl").unlink(missing_ok=True)
    for step, path in checkpoints.items():
        link = out / "checkpoints" / f"step_{step:09d}.zip"
        os.symlink(Path(path).resolve(), link)
    for record in records:
        if record.timestep in checkpoints:
            write_evaluation(out, record)
    return out


def _agent_zip(folder: Path, step: int) -> Path:
    path = folder / f"step_{step:09d}.zip"
    if not path.exists():
        path = folder / "checkpoints" / f"step_{step:09d}.zip"
    if not path.exists():
        raise FileNotFoundError(f"{folder} has no checkpoint of step {step}")
    return path


def compare_with_study(study: str | Path, oracle: str | Path, out: str | Path, *, jobs: int = 2,
                       max_positions: int = 5000, random_seeds: int = 3, spatial_positions: int = 2000,
                       max_components: int = 256, settings: StudySettings = StudySettings(),
                       progress: bool = True) -> Path:
    """Sweep and compare every seed's agent with the oracle network; write the outputs listed above.

    :param study: a study folder (``seedS/{agent,dataset,sweep}``).
    :param oracle: the oracle network's run folder (``checkpoints/``, ``evaluations.jsonl``).
    :returns: the report's path.
    """
    from agents.checkpoints import list_checkpoints
    from agents.probing import probe_runs
    from agents.usage import study_networks

    study, oracle, out = Path(study), Path(oracle), Path(out)
    networks = study_networks(study)
    oracle_records = read_evaluations(oracle)
    oracle_zips = dict(list_checkpoints(oracle))
    if not oracle_zips or not oracle_records:
        raise FileNotFoundError(f"{oracle} has no evaluated checkpoints (expected checkpoints/step_*.zip and "
                                "evaluations.jsonl; train it with scripts/train_reference.py)")
    final = oracle_records[-1]
    candidates = [r for r in oracle_records if r.timestep in oracle_zips]
    finals = {n.name: read_evaluations(n.checkpoint.parent)[-1] for n in networks}
    # one strength measure for every seed: the sets each seed's agent shares with the oracle (a sampled set
    # seeded by the run's seed is shared by one seed only)
    sets = [s for s in shared_sets(finals[networks[0].name], final)
            if all(s in shared_sets(f, final) for f in finals.values())]
    if not sets:
        raise ValueError("the agents and the oracle share no evaluation set measured on the same positions")
    matches, tables, beyond = [], [], []
    for network in networks:
        seed_folder = network.dataset.parent
        agent_dir = network.checkpoint.parent
        agent_records = read_evaluations(agent_dir)
        agent_final = agent_records[-1]
        matched, sets = matched_record(agent_final, candidates, sets)
        match = SeedMatch(seed_folder.name, network.run or network.name, agent_final.timestep,
                          strength(agent_final, sets), final.timestep, strength(final, sets), matched.timestep,
                          strength(matched, sets), sets)
        matches.append(match)
        log.info("%s: agent %.3f at %d; oracle matched %.3f at %d, final %.3f", seed_folder.name,
                 match.agent_strength, match.agent_step, match.matched_strength, match.matched_step,
                 match.oracle_final_strength)
        views = out / "runs" / seed_folder.name
        agent_checkpoints = {0: _agent_zip(agent_dir, 0), agent_final.timestep: network.checkpoint}
        agent_view = _view_run(agent_dir, agent_records, agent_checkpoints, views / match.agent_run)
        oracle_view = _view_run(oracle, oracle_records, {s: oracle_zips[s] for s in {matched.timestep, final.timestep}},
                                views / "oracle")
        sweep = out / seed_folder.name / "sweep"
        probe_runs([agent_view, oracle_view], network.dataset, out=sweep, max_positions=max_positions,
                   random_seeds=random_seeds, jobs=jobs, tcav_runs=0, spatial_positions=spatial_positions,
                   max_components=max_components, progress=progress)
        pairings = [Pairing(FINAL, match.agent_run, match.agent_step, "oracle", final.timestep),
                    Pairing(MATCHED, match.agent_run, match.agent_step, "oracle", matched.timestep)]
        table = network_differences(sweep, pairings, settings)
        table.insert(0, "seed", seed_folder.name)
        tables.append(table)
        # the study's test at every probed checkpoint (not only each run's last): the matched one too
        verdicts = analyse([sweep], settings).chosen.rename(columns={"significant": "represented"})
        verdicts.insert(0, "seed", seed_folder.name)
        beyond.append(verdicts)
    combined = across_seeds([t.drop(columns="seed") for t in tables], settings)
    summary = summarise_concepts(combined)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json({"study": str(study), "oracle": str(oracle), "settings": asdict(settings),
                       "seeds": [asdict(m) for m in matches]}, out / "strength.json")
    _write_csv(pd.concat(tables, ignore_index=True), out / "differences.csv.gz")
    _write_csv(combined, out / "by_layer.csv")
    _write_csv(summary, out / "by_concept.csv")
    beyond_table = _beyond_controls(pd.concat(beyond, ignore_index=True), matches)
    _write_csv(beyond_table, out / "beyond_controls.csv")
    plot_differences(combined, out / "differences.png")
    report = out / "report.md"
    atomic_write_text(report_text(matches, combined, summary, beyond_table, settings), report)
    return report


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    from common.atomic import atomic_target

    with atomic_target(path, suffix=".csv.gz" if path.name.endswith(".gz") else ".csv") as tmp:
        frame.to_csv(tmp, index=False, float_format="%.5g", compression="gzip" if path.name.endswith(".gz") else None)


def _beyond_controls(verdicts: pd.DataFrame, matches: Sequence[SeedMatch]) -> pd.DataFrame:
    """Per concept: in how many seeds the agent, the matched oracle and the final oracle are represented beyond
    the controls (the study's test), with the mean delta of each."""
    picked = []
    for match in matches:
        seed = verdicts[verdicts["seed"] == match.seed_folder]
        for network, run, step in (("agent", match.agent_run, match.agent_step),
                                   ("oracle matched", "oracle", match.matched_step),
                                   ("oracle final", "oracle", match.oracle_final_step)):
            picked.append(seed[(seed["run"] == run) & (seed["step"] == step)].assign(network=network))
    frame = pd.concat(picked, ignore_index=True)
    rows = []
    for concept, part in frame.groupby("concept"):
        row = {"concept": concept}
        for network in ("agent", "oracle matched", "oracle final"):
            mine = part[part["network"] == network]
            row[f"{network} seeds"] = int(mine["represented"].astype(bool).sum())
            row[f"{network} delta"] = float(mine["delta"].mean()) if len(mine) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows).sort_values("concept").reset_index(drop=True)


def plot_differences(combined: pd.DataFrame, path: Path) -> Path:
    """Heatmaps (one per comparison): concept x layer, mean agent-minus-oracle difference; decided cells ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comparisons = list(dict.fromkeys(combined["comparison"]))
    concepts = sorted(combined["concept"].unique())
    layers = combined.drop_duplicates("layer").sort_values("layer_index")["layer"].tolist()
    fig, axes = plt.subplots(1, len(comparisons), figsize=(2.2 + 0.55 * len(layers) * len(comparisons),
                                                           1.5 + 0.17 * len(concepts)), squeeze=False,
                             layout="constrained")
    limit = max(0.05, float(np.nanpercentile(np.abs(combined["mean_delta"]), 98)))
    image = None
    for ax, comparison in zip(axes[0], comparisons):
        part = combined[combined["comparison"] == comparison]
        grid = np.full((len(concepts), len(layers)), np.nan)
        for _, row in part.iterrows():
            grid[concepts.index(row["concept"]), layers.index(row["layer"])] = row["mean_delta"]
            if row["verdict"] in ("a higher", "b higher"):
                ax.add_patch(plt.Rectangle((layers.index(row["layer"]) - 0.5, concepts.index(row["concept"]) - 0.5),
                                           1, 1, fill=False, lw=1.2, ec="black"))
        image = ax.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_title(f"agent - oracle, {comparison}", fontsize=9)
        ax.set_xticks(range(len(layers)), [layer.replace("features_extractor.", "").replace("mlp_extractor.", "")
                                           for layer in layers], rotation=70, fontsize=6)
        ax.set_yticks(range(len(concepts)), concepts if ax is axes[0][0] else [], fontsize=5)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.6, label="probe score difference (red: agent higher)")
    fig.suptitle("Boxed: the same direction beyond the margin (BH) in every seed", fontsize=8)
    return atomic_save_figure(fig, path, dpi=130)


def _listing(summary: pd.DataFrame, comparison: str, verdict: str, limit: int = 15) -> str:
    part = summary[(summary["comparison"] == comparison) & (summary["verdict"] == verdict)]
    part = part.reindex(part["mean_delta"].abs().sort_values(ascending=False).index)
    items = [f"{r.concept} ({r.layer.split('.')[-2] + '.' + r.layer.split('.')[-1] if '.' in r.layer else r.layer}: "
             f"{r.mean_delta:+.3f}, intervals {r.ci_low_min:+.3f}..{r.ci_high_max:+.3f})" for r in part.itertuples()]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more if items else "none"


def report_text(matches: Sequence[SeedMatch], combined: pd.DataFrame, summary: pd.DataFrame,
                beyond: pd.DataFrame, settings: StudySettings) -> str:
    """The comparison's report: who was matched with whom, then the findings in words, then the tables."""
    lines = ["# Learned vs optimal: the agents against the oracle network", "",
             f"Per seed, the agent's final checkpoint, the oracle network's final checkpoint and its checkpoint of "
             f"the closest strength (mean good-move rate over {', '.join(matches[0].sets)}) were probed in one sweep "
             f"on that seed's dataset. A difference is agent minus oracle (balanced accuracy for classes, R^2 for "
             f"numbers) at the same layer on the same held-out games, with a 95% paired bootstrap interval over "
             f"games; it counts only when it exceeds {settings.margin} with BH q < {settings.alpha} in every seed.", "",
             "| seed | agent step | agent strength | oracle matched step | matched strength | oracle final step | "
             "final strength |", "|---|---|---|---|---|---|---|"]
    for m in matches:
        lines.append(f"| {m.seed_folder} | {m.agent_step:,} | {m.agent_strength:.3f} | {m.matched_step:,} | "
                     f"{m.matched_strength:.3f} | {m.oracle_final_step:,} | {m.oracle_final_strength:.3f} |")
    lines += ["", "## Findings", ""]
    for comparison in (FINAL, MATCHED):
        part = summary[summary["comparison"] == comparison]
        if part.empty:
            continue
        counts = part["verdict"].value_counts()
        lines.append(f"**{comparison}** ({len(part)} concepts): the oracle is higher for "
                     f"{int(counts.get('b higher', 0))}, the agent for {int(counts.get('a higher', 0))}, "
                     f"each at different layers for {int(counts.get('both, at different layers', 0))}, "
                     f"no difference shown for {int(counts.get('no difference shown', 0))}.")
        lines.append(f"- The oracle network carries more of (in every seed; layer, mean difference, widest "
                     f"interval): {_listing(part, comparison, 'b higher')}.")
        lines.append(f"- The agent carries more of: {_listing(part, comparison, 'a higher')}.")
        lines.append(f"- At different layers: {_listing(part, comparison, 'both, at different layers')}.")
        lines.append("")
    seeds = len(matches)
    lines += ["## Beyond the controls", "",
              "How many seeds' sweeps find each network representing the concept beyond the random-weight networks "
              "and the input (the study's test); the mean delta against the strongest control.", "",
              "| concept | agent | oracle matched | oracle final |", "|---|---|---|---|"]
    for _, row in beyond.iterrows():
        cells = [f"{int(row[f'{n} seeds'])}/{seeds} ({row[f'{n} delta']:+.3f})" for n in
                 ("agent", "oracle matched", "oracle final")]
        lines.append(f"| {row['concept']} | " + " | ".join(cells) + " |")
    lines += ["", f"Counts are out of {seeds} seeds. Machine-readable: `by_concept.csv`, `by_layer.csv`, "
              "`differences.csv.gz`, `beyond_controls.csv`; `differences.png` draws `by_layer.csv`."]
    return "\n".join(lines) + "\n"
