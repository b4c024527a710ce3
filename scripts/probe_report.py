"""Write the report of a probe sweep: Markdown plus PNGs, next to the sweep's results.

What-when-where heatmaps (layer x training step per concept), selectivity against the
controls, each concept's emergence step (FDR-controlled) drawn over the run's strength
curve, TCAV tables with significance, the concept correlation matrix, and runs compared
(agent versus reference network, when the sweep holds both).

    python scripts/probe_report.py runs/connect4-seed0/sweep-c4_20k
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


def _strength_curves(run_dir: Path):
    import numpy as np

    from agents.selfplay import read_evaluations
    from probes.report import StrengthCurve

    records = read_evaluations(run_dir)
    curves = []
    names = sorted({name for r in records for name in r.get("move_quality", {})})
    for name in names:
        points = [(r["timestep"], r["move_quality"][name]["good_rate"]) for r in records
                  if name in r.get("move_quality", {})]
        steps, values = zip(*points)
        curves.append(StrengthCurve(f"good moves, {name}", np.array(steps), np.array(values)))
    return curves


@app.command()
def main(
    sweep: Path = typer.Argument(..., help="sweep folder written by scripts/probe_sweep.py"),
    margin: float = typer.Option(0.05, help="score above the control task that counts as emerged"),
    alpha: float = typer.Option(0.05, help="false-discovery rate of the emergence and TCAV tests"),
) -> None:
    from probes.report import write_report

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from common.outputs import check_writable

    if not (sweep / "results.parquet").exists():
        raise typer.BadParameter(f"{sweep}/results.parquet does not exist; run scripts/probe_sweep.py first")
    if not 0 < alpha < 1:
        raise typer.BadParameter(f"must be in (0, 1), got {alpha}", param_hint="--alpha")
    check_writable(sweep / "report.md", "report")
    strength = {}
    if (sweep / "sweep.json").exists():
        for run_dir in map(Path, json.loads((sweep / "sweep.json").read_text())["runs"]):
            if run_dir.exists():
                strength[run_dir.name] = _strength_curves(run_dir)
    path = write_report(sweep, strength, margin=margin, alpha=alpha)
    print(f"report: {path}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
