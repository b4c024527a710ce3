"""Backup-head emergence in the tiny model: train across head-dropout rates x seeds, measure backup strength.

For every (rate, seed), trains a tiny GPT-2 (`lm_interp.train`, IOI-heavy mix, short run),
ablates its top-DLA name movers (zero / mean-ABC / resample-ABC) and records how much the
other heads' DLA rises (own-run and frozen clean final-norm scale); see
`lm_interp.backup.emergence`. Writes emergence.json, summary.md and backup_strength.png. The
default grid is small (a few minutes on one thread):

    python scripts/lm_backup_emergence.py
    # a bigger grid (training is ~0.25 s/step on an idle core, 3-4x that on a contended one):
    python scripts/lm_backup_emergence.py --rates 0,0.1,0.2,0.3,0.5 --seeds 0,1,2 --steps 1200 --n-layer 6
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@app.command()
def main(
    rates: str = typer.Option("0,0.3", help="comma-separated head-dropout rates"),
    seeds: str = typer.Option("0", help="comma-separated training seeds"),
    steps: int = typer.Option(800, help="training steps per model (batch 64)"),
    n_layer: int = typer.Option(4, help="layers of the tiny model (movers in the last layer leave no room "
                                        "for downstream backups)"),
    n_movers: int = typer.Option(2, help="top-DLA heads ablated"),
    out: Optional[Path] = typer.Option(None, help="output folder [default: runs/lm_backup_emergence; the recorded "
                                                  "results are results/lm_backup_emergence_*]"),
    overwrite: bool = typer.Option(False, "--overwrite", help="write into --out even if it holds a finished result"),
) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from common.outputs import prepare_output
    from lm_interp.backup.emergence import check_emergence_options, emergence_markdown, run_emergence

    check_emergence_options(rates, seeds, steps, n_layer, n_movers)
    out = prepare_output(out, "lm_backup_emergence", overwrite=overwrite, finished=("emergence.json",))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    report = run_emergence(rates, seeds, steps, n_layer, n_movers, out,
                           command="python scripts/lm_backup_emergence.py " + " ".join(sys.argv[1:]))
    print(emergence_markdown(report))
    print(f"wrote {out}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
