"""Probe every checkpoint of a run on a labelled dataset: layers x concepts x probes, with controls.

Reads a run folder (scripts/train_agent.py) and a dataset folder (scripts/make_dataset.py),
and writes SWEEP_DIR/results.parquet in long form (run, checkpoint_step, layer, concept,
probe, metric, value, ci_low, ci_high, control, control_value, selectivity, n_train,
n_test, p_value, q_value, significant). Controls: control-task labels (selectivity), shuffled
labels, majority baseline, 3 random-weight networks, the raw input planes. TCAV for binary
concepts (value head; policy logit of the column the concept names), negatives matched on
the ply, Benjamini-Hochberg over the grid. Interrupted sweeps resume.

    python scripts/make_dataset.py --n 5000 --out data/c4_5k --min-ply 8 --concepts win_in_1,n_threats_me,...
    python scripts/probe_sweep.py --run runs/connect4-seed0 --dataset data/c4_5k
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer

from probes.sweep import SweepSettings

DEFAULTS = SweepSettings()
app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@app.command()
def main(
    run: list[Path] = typer.Option(..., help="run folder with checkpoints/ and config.json; repeat it to sweep "
                                        "several runs (e.g. the agent and the reference network) on one grid"),
    dataset: Path = typer.Option(..., help="dataset folder with positions.parquet and manifest.json"),
    out: Optional[Path] = typer.Option(None, help="sweep folder [default: FIRST_RUN/sweep-DATASETNAME]"),
    concepts: Optional[str] = typer.Option(None, help="comma-separated concepts (default: every probe-able one)"),
    max_positions: int = typer.Option(5000, help="use at most this many positions (whole games kept)"),
    probes: str = typer.Option("linear", help="comma-separated: linear (logistic/ridge by kind), l1, mlp"),
    checkpoints: int = typer.Option(0, help="only the latest N checkpoints (0: all)"),
    random_seeds: int = typer.Option(3, help="random-weight control networks"),
    jobs: int = typer.Option(2, help="parallel processes"),
    seed: int = typer.Option(0, help="seed of the split, control tasks and bootstraps"),
    max_components: int = typer.Option(DEFAULTS.max_components, help="principal directions a linear probe sees "
                                                                     "(0: all)"),
    spatial_positions: int = typer.Option(DEFAULTS.spatial_positions, help="positions used by per-square probes "
                                                                           "(0: all)"),
    tcav_runs: int = typer.Option(DEFAULTS.tcav_runs, help="concept and random CAVs per TCAV test (0: no TCAV)"),
    tcav_inputs: int = typer.Option(DEFAULTS.tcav_inputs, help="held-out positives explained per TCAV test"),
) -> None:
    import numpy as np
    import pandas as pd
    import torch
    from rich.console import Console
    from rich.table import Table

    import games
    from agents.checkpoints import game_of_run, list_checkpoints
    from common.outputs import check_writable
    from agents.probing import run_entries
    from agents.reference import read_manifest, read_positions
    from games.concepts import concepts as registered_concepts
    from games.concepts import label
    from probes.linear import PROBES
    from probes.sweep import ConceptLabels, run_sweep

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    console = Console()
    runs = run
    counts = {"--max-positions": (max_positions, 1), "--jobs": (jobs, 1), "--checkpoints": (checkpoints, 0),
              "--random-seeds": (random_seeds, 0), "--max-components": (max_components, 0),
              "--spatial-positions": (spatial_positions, 0), "--tcav-runs": (tcav_runs, 0),
              "--tcav-inputs": (tcav_inputs, 1)}
    for option, (value, least) in counts.items():
        if value < least:
            raise typer.BadParameter(f"must be >= {least}, got {value}", param_hint=option)
    probe_names = tuple(p.strip() for p in probes.split(",") if p.strip())
    known_probes = ("linear", *PROBES)
    if not probe_names or set(probe_names) - set(known_probes):
        raise typer.BadParameter(f"unknown probes {sorted(set(probe_names) - set(known_probes)) or probes!r}; "
                                 f"known: {', '.join(known_probes)}", param_hint="--probes")
    for need in [r / "config.json" for r in runs] + [dataset / "positions.parquet", dataset / "manifest.json"]:
        if not need.exists():
            raise typer.BadParameter(f"{need} does not exist")
    for r in runs:
        if not list_checkpoints(r):
            raise typer.BadParameter(f"{r} has no checkpoints (expected {r}/checkpoints/step_*.zip)")
    if len({r.name for r in runs}) != len(runs):
        raise typer.BadParameter(f"runs must have distinct folder names, got {[r.name for r in runs]}")
    game = game_of_run(runs[0])
    for other in runs[1:]:
        if repr(game_of_run(other)) != repr(game):
            raise typer.BadParameter(f"{other} is a run of {game_of_run(other)!r}, {runs[0]} of {game!r}")
    manifest = read_manifest(dataset)
    data_game = games.get(manifest["game"], **manifest.get("game_kwargs", {}))
    if repr(data_game) != repr(game):
        raise typer.BadParameter(f"the dataset is for {data_game!r}, the run for {game!r}")
    out = out or runs[0] / f"sweep-{dataset.name}"
    check_writable(out / "sweep.json", "--out")
    df = read_positions(dataset)
    if len(df) > max_positions:  # keep whole games, chosen at random
        rng = np.random.default_rng(seed)
        ids = rng.permutation(df["game_id"].unique())
        keep, total = [], 0
        sizes = df.groupby("game_id").size()
        for g in ids:
            if total >= max_positions:
                break
            keep.append(g)
            total += sizes[g]
        df = df[df["game_id"].isin(keep)].reset_index(drop=True)
    kinds = {c["name"]: c["kind"] for c in manifest["concept_metadata"]}
    wanted = concepts.split(",") if concepts else list(kinds)
    unknown = [c for c in wanted if c not in kinds]
    if unknown:
        raise typer.BadParameter(f"concepts {unknown} are not in {dataset}; it has {sorted(kinds)}")
    states = [game.parse(t) for t in df["moves"]]
    registry = registered_concepts(game.name)
    chosen = []
    skipped: dict[str, str] = {}  # concept -> why it is not swept (printed and kept in sweep.json)
    for name in wanted:
        per_square = kinds[name] in ("spatial", "per_column")
        values = np.stack(df[name].to_numpy()) if per_square else df[name].to_numpy()
        if kinds[name] != "per_column" and np.issubdtype(values.dtype, np.floating) and np.isnan(values).any():
            # (per-column concepts are split into one concept per action by probes.sweep, which skips NaN ones)
            skipped[name] = "it has missing labels"
            continue
        if kinds[name] in ("binary", "categorical") and len(np.unique(values)) < 2:
            skipped[name] = "a single class in this dataset"
            continue
        columns = None  # the output column a concept names (e.g. the winning move), for the policy-logit TCAV target
        column_concept = registry[name].params.get("columns") if name in registry else None
        if column_concept:
            per_column = label(game, states, [column_concept])[column_concept]
            columns = np.where(per_column.any(axis=1), per_column.argmax(axis=1), -1)
        chosen.append(ConceptLabels(name, kinds[name], values, columns))
    inputs = np.stack([game.observation(s) for s in states])
    keys = np.array([str(game.canonical_key(s)) for s in states])
    entries = []
    for i, r in enumerate(runs):  # model-shaped controls once, with the first run's architecture
        entries += run_entries(r, checkpoints=checkpoints or None, random_seeds=random_seeds if i == 0 else 0,
                               include_input=i == 0)
    for name, why in skipped.items():
        console.print(f"skipping {name}: {why}")
    if not chosen:
        reasons = "; ".join(f"{name}: {why}" for name, why in skipped.items())
        raise typer.BadParameter(f"no concept of {dataset} can be swept ({reasons})")
    console.print(f"{len(entries)} networks x layers x {len(chosen)} concepts on {len(df)} positions "
                  f"({df['game_id'].nunique()} games) -> {out}")
    settings = SweepSettings(probe_names, seed, DEFAULTS.n_boot,
                             max_components or None, spatial_positions or None, tcav_runs, tcav_inputs,
                             DEFAULTS.tcav_pool)
    from dataclasses import asdict

    from common.atomic import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json.dumps({"runs": [str(r.resolve()) for r in runs], "dataset": str(dataset.resolve()),
                                  "positions": len(df), "games": int(df["game_id"].nunique()),
                                  "settings": asdict(settings), "skipped_concepts": skipped}, indent=1),
                      out / "sweep.json")
    path = run_sweep(entries, inputs, chosen, df["game_id"].to_numpy(), keys, out, settings, jobs=jobs,
                     match=df["ply"].to_numpy() if "ply" in df else None)
    from probes.report import selectivity_table

    name = runs[0].name
    best = selectivity_table(pd.read_parquet(path), name)
    table = Table(title=f"{name}: best layer per concept at the last checkpoint (linear probe, held-out games)")
    for column in ("concept", "metric", "best layer", "value", "selectivity", "random-weight best", "input"):
        table.add_column(column)
    for row in best.itertuples(index=False):
        table.add_row(row.concept, row.metric, row.layer, f"{row.value:.3f}", f"{row.selectivity:.3f}",
                      f"{row.random_weights:.3f}", f"{row.input:.3f}")
    console.print(table)
    console.print(f"results: {path}\nreport:  python scripts/probe_report.py {out}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
