"""Probe every checkpoint of a run on a labelled dataset: layers x concepts x probes, with controls.

Reads a run folder (scripts/train_agent.py) and a dataset folder (scripts/make_dataset.py),
and writes SWEEP_DIR/results.parquet in long form (run, checkpoint_step, layer, concept,
probe, metric, value, ci_low, ci_high, control, control_value, selectivity, n_train,
n_test). Controls: control-task labels (selectivity), shuffled labels, majority baseline,
3 random-weight networks, the raw input planes. Interrupted sweeps resume.

    python scripts/make_dataset.py --n 5000 --out data/c4_5k --min-ply 8 --concepts win_in_1,n_threats_me,...
    python scripts/probe_sweep.py --run runs/connect4-seed0 --dataset data/c4_5k
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@app.command()
def main(
    run: Path = typer.Option(..., help="run folder with checkpoints/ and config.json"),
    dataset: Path = typer.Option(..., help="dataset folder with positions.parquet and manifest.json"),
    out: Optional[Path] = typer.Option(None, help="sweep folder [default: RUN/sweep-DATASETNAME]"),
    concepts: Optional[str] = typer.Option(None, help="comma-separated concepts (default: every probe-able one)"),
    max_positions: int = typer.Option(5000, help="use at most this many positions (whole games kept)"),
    probes: str = typer.Option("linear", help="comma-separated: linear (logistic/ridge by kind), l1, mlp"),
    checkpoints: int = typer.Option(0, help="only the latest N checkpoints (0: all)"),
    random_seeds: int = typer.Option(3, help="random-weight control networks"),
    jobs: int = typer.Option(2, help="parallel processes"),
    seed: int = typer.Option(0, help="seed of the split, control tasks and bootstraps"),
) -> None:
    import numpy as np
    import pandas as pd
    import torch
    from rich.console import Console
    from rich.table import Table

    import games
    from agents.probing import run_entries
    from agents.selfplay import game_of_run
    from probes.sweep import ConceptLabels, run_sweep

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    console = Console()
    for need in (run / "config.json", dataset / "positions.parquet", dataset / "manifest.json"):
        if not need.exists():
            raise typer.BadParameter(f"{need} does not exist")
    game = game_of_run(run)
    manifest = json.loads((dataset / "manifest.json").read_text())
    data_game = games.get(manifest["game"], **manifest.get("game_kwargs", {}))
    if repr(data_game) != repr(game):
        raise typer.BadParameter(f"the dataset is for {data_game!r}, the run for {game!r}")
    df = pd.read_parquet(dataset / "positions.parquet")
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
    chosen = []
    for name in wanted:
        if kinds[name] == "per_column":
            continue  # per-column labels need a per-column read-out; not swept yet
        values = np.stack(df[name].to_numpy()) if kinds[name] == "spatial" else df[name].to_numpy()
        if np.issubdtype(values.dtype, np.floating) and np.isnan(values).any():
            console.print(f"skipping {name}: it has missing labels")
            continue
        if kinds[name] in ("binary", "categorical") and len(np.unique(values)) < 2:
            console.print(f"skipping {name}: a single class in this dataset")
            continue
        chosen.append(ConceptLabels(name, kinds[name], values))
    states = [game.parse(t) for t in df["moves"]]
    inputs = np.stack([game.observation(s) for s in states])
    keys = np.array([str(game.canonical_key(s)) for s in states])
    entries = run_entries(run, checkpoints=checkpoints or None, random_seeds=random_seeds)
    out = out or run / f"sweep-{dataset.name}"
    console.print(f"{len(entries)} networks x layers x {len(chosen)} concepts on {len(df)} positions "
                  f"({df['game_id'].nunique()} games) -> {out}")
    path = run_sweep(entries, inputs, chosen, df["game_id"].to_numpy(), keys, out,
                     probes=[p.strip() for p in probes.split(",")], jobs=jobs, seed=seed)
    results = pd.read_parquet(path)
    last = results["checkpoint_step"][results["run"] == run.name].max()
    final = results[(results["run"] == run.name) & (results["checkpoint_step"] == last) & (results["probe"] == "linear")]
    final = final[final["metric"].isin(["balanced_accuracy", "r2"])]
    table = Table(title=f"best layer per concept at step {last:,} (linear probe, held-out games)")
    for column in ("concept", "metric", "best layer", "value", "selectivity", "random-weight best", "input"):
        table.add_column(column)
    for concept, rows in final.groupby("concept"):
        best = rows.loc[rows["value"].idxmax()]
        others = results[(results["concept"] == concept) & (results["metric"] == best["metric"])
                         & (results["probe"] == "linear")]
        random_best = others[others["run"].str.startswith("random-")]["value"].max()
        raw = others[others["run"] == "input"]["value"].max()
        table.add_row(concept, best["metric"], best["layer"], f"{best['value']:.3f}", f"{best['selectivity']:.3f}",
                      f"{random_best:.3f}", f"{raw:.3f}")
    console.print(table)
    console.print(f"results: {path}")


if __name__ == "__main__":
    app()
