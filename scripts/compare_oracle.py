"""Learned vs optimal: compare the study's agents with the oracle network, concept by layer.

For every seed of a recorded study folder, the agent's final checkpoint and two checkpoints
of the oracle network (its final one and the one closest to the agent in strength) are
probed in one sweep on that seed's dataset; agent minus oracle per concept and layer, with
paired bootstrap intervals over held-out games and verdicts that need every seed
(`agents.oracle_comparison`, docs/oracle.md). Writes OUT/report.md, by_concept.csv,
by_layer.csv, differences.csv.gz, beyond_controls.csv, strength.json and differences.png.
A rerun resumes the sweeps cell by cell.

    python scripts/compare_oracle.py --study results/study_connect4 --oracle results/oracle_connect4 \\
        --out results/oracle_vs_agents
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from common.cli import help_text

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@app.command(help=help_text(__doc__))
def main(
    study: Path = typer.Option(..., help="a recorded study folder (seedS/agent, seedS/dataset, seedS/sweep)"),
    oracle: Path = typer.Option(..., help="the oracle network's run folder (checkpoints/, evaluations.jsonl)"),
    out: Path = typer.Option(..., help="output folder"),
    jobs: int = typer.Option(2, min=1, help="parallel sweep workers"),
    max_positions: int = typer.Option(5000, min=1, help="positions per seed's sweep (whole games)"),
    random_seeds: int = typer.Option(3, min=1, help="random-weight control networks per sweep"),
    margin: float = typer.Option(0.02, min=0.0, help="how far a difference must clear zero to count"),
    alpha: float = typer.Option(0.05, min=0.0, max=1.0, help="false-discovery rate (BH) of the tests"),
    n_boot: int = typer.Option(1000, min=10, help="bootstrap replicates over held-out games"),
    progress: bool = typer.Option(True, "--progress/--quiet", help="progress bars"),
) -> None:
    from agents.checkpoints import list_checkpoints
    from agents.oracle_comparison import compare_with_study
    from agents.runs import read_evaluations
    from agents.usage import study_networks
    from common.outputs import check_writable
    from probes.study import StudySettings

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    study_networks(study)  # a clear error for a folder that is not a study
    if not list_checkpoints(oracle) or not read_evaluations(oracle):
        raise FileNotFoundError(f"{oracle} has no evaluated checkpoints (expected {oracle}/checkpoints/step_*.zip and "
                                "evaluations.jsonl; train it with scripts/train_reference.py)")
    check_writable(out / "report.md", "--out")
    report = compare_with_study(study, oracle, out, jobs=jobs, max_positions=max_positions, random_seeds=random_seeds,
                                settings=StudySettings(margin=margin, alpha=alpha, n_boot=n_boot), progress=progress)
    typer.echo(f"wrote {report}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
