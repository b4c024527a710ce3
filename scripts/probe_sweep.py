"""Probe every checkpoint of a run on a labelled dataset: layers x concepts x probes, with controls.

The sweep is `agents.probing.probe_runs`. Reads a run folder (scripts/train_agent.py) and a
dataset folder (scripts/make_dataset.py), and writes SWEEP_DIR/results.parquet in long form (run, role, checkpoint_step, layer, concept,
probe, metric, value, ci_low, ci_high, control, control_value, selectivity, n_train,
n_test, p_value, q_value, significant). Controls: control-task labels (selectivity), shuffled
labels, majority baseline, 3 random-weight networks, the raw input planes. TCAV for binary
concepts (value head; policy logit of the column the concept names), negatives matched on
the ply, Benjamini-Hochberg over the grid. Interrupted sweeps resume.

    python scripts/make_dataset.py --n 5000 --out data/c4_5k --min-ply 8 --concepts win_in_1,n_threats_me,...
    python scripts/probe_sweep.py --run runs/connect4-seed0 --dataset data/c4_5k
"""

from __future__ import annotations

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
    jobs: int = typer.Option(2, help="parallel workers (processes, or Ray actors)"),
    engine: str = typer.Option("local", help="where cells are fitted: local (processes) or ray (a private local "
                                             "Ray instance, or the cluster at --address)"),
    address: Optional[str] = typer.Option(None, help="Ray cluster address for --engine ray (default: $RAY_ADDRESS)"),
    seed: int = typer.Option(0, help="seed of the split, control tasks and bootstraps"),
    max_components: int = typer.Option(DEFAULTS.max_components, help="principal directions a linear probe sees "
                                                                     "(0: all)"),
    spatial_positions: int = typer.Option(DEFAULTS.spatial_positions, help="positions used by per-square probes "
                                                                           "(0: all)"),
    tcav_runs: int = typer.Option(DEFAULTS.tcav_runs, help="concept and random CAVs per TCAV test (0: no TCAV)"),
    tcav_inputs: int = typer.Option(DEFAULTS.tcav_inputs, help="held-out positives explained per TCAV test"),
) -> None:
    import torch
    from rich.console import Console
    from rich.table import Table

    from agents.probing import probe_runs

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    outcome = probe_runs(run, dataset, out, concepts.split(",") if concepts else None, max_positions,
                         probes.split(","), checkpoints, random_seeds, jobs, seed, max_components, spatial_positions,
                         tcav_runs, tcav_inputs, engine=engine, address=address)
    table = Table(title="per concept at the last checkpoint: delta = probe score minus the strongest control "
                        "(layer chosen on validation games; 95% paired bootstrap interval over held-out games)")
    for column in ("concept", "verdict", "layer", "metric", "score", "strongest control", "delta", "interval"):
        table.add_column(column)
    for row in outcome.findings.itertuples(index=False):
        table.add_row(row.concept, row.verdict, row.layer, row.metric, f"{row.value:.3f}", f"{row.control_value:.3f}",
                      f"{row.delta:+.3f}", f"[{row.delta_min_ci_low:+.3f}, {row.delta_max_ci_high:+.3f}]")
    console = Console()
    console.print(table)
    console.print(f"results: {outcome.results}\nreport:  python scripts/probe_report.py {outcome.results.parent}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
