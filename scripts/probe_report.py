"""Write the report of a probe sweep: Markdown plus PNGs, next to the sweep's results.

What-when-where heatmaps (layer x training step per concept), selectivity against the
controls, each concept's emergence step (FDR-controlled) drawn over the run's strength
curve, TCAV tables with significance, the concept correlation matrix, and runs compared
(agent versus reference network, when the sweep holds both). The report is
`agents.probing.report_sweep`.

    python scripts/probe_report.py runs/connect4-seed0/sweep-c4_20k
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@app.command()
def main(
    sweep: Path = typer.Argument(..., help="sweep folder written by scripts/probe_sweep.py"),
    margin: float = typer.Option(0.05, help="score above the control task that counts as emerged"),
    alpha: float = typer.Option(0.05, help="false-discovery rate of the emergence and TCAV tests"),
) -> None:
    from agents.probing import report_sweep

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(f"report: {report_sweep(sweep, margin=margin, alpha=alpha)}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
