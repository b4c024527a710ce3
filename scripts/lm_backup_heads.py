"""Backup name-mover heads under different ablation distributions (and backup-backup heads), issue 9.

Finds the IOI name movers by direct logit attribution (confirmed by patching their outputs
from ABC prompts), ablates them under zero / mean-ABC / mean-clean / resample-ABC /
other-template-mean ablation, scores every head by its DLA change (backup score), iterates
with the top backups ablated too (backup-backup), and compares the rankings across
distributions (`lm_interp.backup`). Every logit difference, DLA, backup score and rank
correlation gets a 95% bootstrap interval over prompts (train and held-out templates also
reported apart), and each head's verdict states it. Writes results.json, summary.md and
heatmap PNGs; an interrupted run resumes from its finished distributions (``--out``/cache).

    python scripts/lm_backup_heads.py --model tiny
    python scripts/lm_backup_heads.py --model smollm2 --out results/lm_backup_smollm2
    python scripts/lm_backup_heads.py --model gpt2 --movers 9.9,9.6,10.0   # with GPT-2 weights cached
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
    model: str = typer.Option("tiny", help="tiny | smollm2 | a checkpoint folder | a cached Hub name"),
    out: Optional[Path] = typer.Option(None, help="output folder [default: runs/lm_backup_<model>; the recorded "
                                                  "results are results/lm_backup_<model>]"),
    overwrite: bool = typer.Option(False, "--overwrite", help="write into --out even if it holds a finished result"),
    n_per_template: int = typer.Option(24, help="IOI prompts per template (24 x 13 templates: 312 prompts)"),
    split: str = typer.Option("all", help="IOI template split: train | heldout | all (results are reported for "
                                          "train and held-out templates apart as well)"),
    templates: Optional[str] = typer.Option(None, help="comma-separated template ids (default: all of the split)"),
    movers: Optional[str] = typer.Option(None, help="comma-separated L.H heads to ablate (default: top DLA)"),
    n_movers: int = typer.Option(3, help="name movers taken from the DLA ranking when --movers is not given"),
    distributions: Optional[str] = typer.Option(None, help="comma-separated ablation distributions (default: all)"),
    depth: int = typer.Option(2, help="backup-backup levels after ablating the movers"),
    backups_per_level: int = typer.Option(1, help="top backups added to the ablated set per level"),
    n_patch: int = typer.Option(8, help="heads (top |DLA|) confirmed by patching clean <- ABC; 0: skip"),
    backup_fraction: float = typer.Option(0.05, help="backup if ΔDLA > this x the movers' summed DLA"),
    negative_fraction: float = typer.Option(0.1, help="negative head if clean DLA < -this x the top DLA"),
    seed: int = typer.Option(0, help="prompt and resample seed"),
    backup_pool: str = typer.Option("positive", help="backups ablated at the next level: positive (not negative "
                                                     "heads) | all (negative heads whose ΔDLA rises count too)"),
    n_boot: int = typer.Option(1000, help="bootstrap resamples over prompts (stratified by template) for the "
                                          "intervals; 0: none"),
) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from common.outputs import prepare_output
    from lm_interp.backup.report import summary_markdown
    from lm_interp.backup.run import check_backup_options, run_backup_heads

    check_backup_options(n_per_template, n_movers, depth, backups_per_level, n_patch, n_boot)
    out = prepare_output(out, f"lm_backup_{Path(model).name}", overwrite=overwrite, finished=("results.json",))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    result = run_backup_heads(
        model, out, n_per_template, split, templates.split(",") if templates else None, movers, n_movers,
        [d.strip() for d in distributions.split(",")] if distributions else None, depth, backups_per_level,
        n_patch, backup_fraction, negative_fraction, seed, backup_pool, n_boot=n_boot,
        command="python scripts/lm_backup_heads.py " + " ".join(sys.argv[1:]))
    print(summary_markdown(result))
    print(f"wrote {out}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
