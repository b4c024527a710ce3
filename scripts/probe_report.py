"""Write the report of a probe sweep, or of the study across several seeds' sweeps.

One sweep folder: ``SWEEP/report.md`` opens with the findings (per concept: represented beyond
the strongest control or not, at which layer - chosen on validation games -, since which
checkpoint, by how much, with paired bootstrap intervals over held-out games; ``findings.csv``),
the concept x layer delta map and the emergence chart over the run's strength curve, then the
checks, TCAV tables (degenerate targets left out and counted), the raw scores, concept
correlations and runs compared (agent versus reference network). Several sweep folders (one
per agent seed) and ``--out``: the same study across the seeds, where a concept counts as
represented only when it is in every seed.

    python scripts/probe_report.py runs/connect4-seed0/sweep-probe-data-n4000
    python scripts/probe_report.py runs/connect4-seed{0,1,2}/sweep-probe-data-n4000 --out runs/study-connect4
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@app.command()
def main(
    sweeps: list[Path] = typer.Argument(..., help="sweep folder(s) written by scripts/probe_sweep.py (one per seed)"),
    out: Optional[Path] = typer.Option(None, help="folder of the study across several sweeps (required with more "
                                                  "than one)"),
    margin: float = typer.Option(0.02, help="how far above the strongest control a delta must be to count as "
                                            "represented (balanced-accuracy or R^2 points)"),
    alpha: float = typer.Option(0.05, help="false-discovery rate of the tests"),
) -> None:
    from agents.probing import report_study, report_sweep

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if len(sweeps) == 1 and out is None:
        print(f"report: {report_sweep(sweeps[0], margin=margin, alpha=alpha)}")
        return
    if out is None:
        raise typer.BadParameter("several sweep folders make one study: give --out for its folder")
    print(f"report: {report_study(sweeps, out, margin=margin, alpha=alpha)}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
