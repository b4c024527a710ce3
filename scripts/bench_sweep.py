"""Probe-sweep cost: the default sweep of one training run, timed end to end, plus probe fidelity.

Runs the user command ``scripts/probe_sweep.py`` on defaults (every checkpoint, every named
layer, 3 random-weight networks and the input planes, every probe-able concept of the
dataset with control task, shuffled labels, majority baseline, TCAV with 50 concept and 50
random CAVs per test) on a 20,000-position dataset, and reports the wall time. The dataset
(static, short-search and Allis-rule concepts; solver labels of 20k early positions would
dominate the cost and are a labelling benchmark, `bench_labeling.py`) is built first if it
is missing, and not timed.

Fidelity: one trunk cell is fitted with all principal directions and with the sweep's
default of 256, and its per-square probes on 4,000 positions and on the default 2,000; the
report gives the times and the metric differences.

    python scripts/bench_sweep.py --run runs/connect4-seed0
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "bench_sweep.json"


def _fidelity(run: Path, dataset: Path, positions: int, layer: str, seed: int) -> dict:
    import numpy as np
    import torch

    from agents.checkpoints import list_checkpoints
    from agents.probing import run_entries
    from games.datasets import read_dataset
    from probes.activations import as_flat
    from probes.controls import control_task_labels
    from probes.linear import Target, fit_probes, grouped_split

    torch.set_num_threads(1)
    data = read_dataset(dataset)
    kinds = data.concept_kinds
    df = data.positions.iloc[:positions]
    game = data.game
    states = [game.parse(t) for t in df["moves"]]
    inputs = np.stack([game.observation(s) for s in states])
    keys = np.array([str(game.canonical_key(s)) for s in states])
    groups = df["game_id"].to_numpy()
    entry = run_entries(run, checkpoints=1, random_seeds=0, include_input=False)[0]
    acts = entry.activations(inputs)[layer]
    features = as_flat(acts)
    names = [n for n, k in kinds.items() if k in ("binary", "categorical", "count")]
    targets = []
    for name in names:
        y = df[name].to_numpy()
        task = len(targets)
        targets += [Target(y, kinds[name]), Target(control_task_labels(keys, y, seed), kinds[name], False, task)]
    split = grouped_split(groups, seed=seed)
    report = {"layer": layer, "checkpoint": int(list_checkpoints(run)[-1][0]), "positions": len(df),
              "features": int(features.shape[1]), "concepts": len(names)}
    scores = {}
    for components in (None, 256):
        start = time.perf_counter()
        scores[components] = fit_probes(features, targets, groups, split=split, seed=seed, n_boot=200,
                                        max_components=components)
        report[f"seconds_{components or 'all'}"] = round(time.perf_counter() - start, 1)
    diffs = {}
    for i, name in enumerate(names):
        full, reduced = scores[None][2 * i], scores[256][2 * i]
        metric = "r2" if "r2" in full.metrics else "balanced_accuracy"
        diffs[name] = {"metric": metric, "all": round(full[metric], 4), "pc256": round(reduced[metric], 4)}
    gaps = np.array([d["all"] - d["pc256"] for d in diffs.values()])
    report.update(per_concept=diffs, mean_drop=round(float(gaps.mean()), 4), max_drop=round(float(gaps.max()), 4))
    report["spatial"] = _spatial_fidelity(acts, df, kinds, keys, groups, split, layer, seed)
    return report


def _spatial_fidelity(acts, df, kinds: dict, keys, groups, split, layer: str, seed: int) -> dict:
    """Per-square probes on 4,000 positions vs the sweep default's 2,000: time and AUROC differences."""
    import numpy as np
    import pandas as pd

    from probes.sweep import ConceptLabels, cell_rows

    squares = [ConceptLabels(n, "spatial", np.stack(df[n].to_numpy())) for n, k in kinds.items() if k == "spatial"]
    out: dict = {"concepts": len(squares)}
    auroc = {}
    for positions in (4000, 2000):
        start = time.perf_counter()
        rows = pd.DataFrame(cell_rows("bench", 0, layer, True, acts, squares, groups, keys, split, ("linear",), seed,
                                      200, 256, positions))
        out[f"seconds_{positions}"] = round(time.perf_counter() - start, 1)
        rows = rows[(rows["probe"] == "linear") & (rows["metric"] == "auroc")].set_index("concept")
        auroc[positions] = rows["value"]
        out[f"mean_ci_width_{positions}"] = round(float((rows["ci_high"] - rows["ci_low"]).mean()), 4)
    gaps = (auroc[4000] - auroc[2000]).abs()
    out.update(mean_abs_auroc_difference=round(float(gaps.mean()), 4), max_abs_auroc_difference=round(float(gaps.max()), 4),
               per_concept={n: {"auroc_4000": round(float(auroc[4000][n]), 4), "auroc_2000": round(float(auroc[2000][n]), 4)}
                            for n in auroc[4000].index})
    return out


@app.command()
def main(
    run: Path = typer.Option(ROOT / "runs" / "connect4-seed0", help="training run folder"),
    dataset: Path = typer.Option(ROOT / "runs" / "datasets" / "c4_20k", help="dataset folder (built if missing)"),
    positions: int = typer.Option(20000, help="dataset size"),
    jobs: int = typer.Option(2, help="sweep processes"),
    fidelity_layer: str = typer.Option("features_extractor.blocks.1", help="layer of the fidelity check"),
    skip_sweep: bool = typer.Option(False, help="only the fidelity check"),
    seed: int = typer.Option(0, help="seed"),
    out: Path = typer.Option(RESULTS, help="JSON output"),
) -> None:
    from common.atomic import atomic_write_json
    from common.provenance import machine_info
    from rich.console import Console

    console = Console()
    report: dict = {"machine": machine_info(), "run": str(run), "dataset": str(dataset)}
    if not (dataset / "manifest.json").exists():
        import games.connect4  # noqa: F401  (registers the concepts)
        from games.concepts import concepts

        names = ",".join(n for n, c in concepts("connect4").items() if c.tier != "solver")
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_dataset.py"), "--out", str(dataset), "--n",
                        str(positions), "--min-ply", "6", "--sources", "random:0.5,agent-0:0.5", "--agent", str(run),
                        "--concepts", names, "--seed", str(seed)], check=True)
    if not skip_sweep:
        sweep_dir = dataset.parent / f"bench-sweep-{run.name}"
        if sweep_dir.exists():
            import shutil

            shutil.rmtree(sweep_dir)
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "scripts" / "probe_sweep.py"), "--run", str(run), "--dataset",
                        str(dataset), "--out", str(sweep_dir), "--max-positions", str(positions), "--jobs", str(jobs),
                        "--seed", str(seed)], check=True)
        seconds = time.perf_counter() - start
        from probes.sweep_folder import BASELINE, SKIPPED, read_results

        results = read_results(sweep_dir)
        networks = results[~results["role"].isin([BASELINE, SKIPPED])]
        report["sweep"] = {
            "seconds": round(seconds, 1), "minutes": round(seconds / 60, 1), "jobs": jobs, "rows": len(results),
            "networks": int(networks[["run", "checkpoint_step"]].drop_duplicates().shape[0]),
            "cells": int(networks[["run", "checkpoint_step", "layer"]].drop_duplicates().shape[0]),
            "concepts": int(results["concept"].nunique()),
            "tcav_tests": int(results["p_value"].notna().sum()),
            "tcav_significant": int(results["significant"].fillna(False).astype(bool).sum()),
            "loadavg_end": os.getloadavg(),
        }
        console.print(report["sweep"])
        atomic_write_json(report, out)  # kept even if the fidelity check below fails
    report["fidelity"] = _fidelity(run, dataset, positions, fidelity_layer, seed)
    console.print({k: v for k, v in report["fidelity"].items() if k != "per_concept"})
    console.print(f"wrote {atomic_write_json(report, out)}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
