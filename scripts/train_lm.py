"""Train the tiny GPT-2 on the generated corpus and write its checkpoint folder (atomically).

The committed model under data/lm/tiny was made by

    python scripts/train_lm.py --out data/lm/tiny

(defaults below; the folder's recipe.json records the config, seed, command and metrics).
Head dropout, an experimental knob for backup-head emergence: --head-dropout 0.3.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@app.command()
def main(
    out: Path = typer.Option(..., help="checkpoint folder to write (replaced as a whole with --overwrite)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it already holds a checkpoint"),
    steps: int = typer.Option(1800, help="optimiser steps"),
    seed: int = typer.Option(0, help="seed of the corpus stream, initialisation and batches"),
    world_seed: int = typer.Option(0, help="seed of the synthetic world (which fact is true)"),
    batch_size: int = typer.Option(64, help="sequences per step"),
    block_size: int = typer.Option(32, help="tokens per training sequence"),
    lr: float = typer.Option(2e-3, help="peak learning rate"),
    dropout: float = typer.Option(0.0, help="residual / attention / embedding dropout"),
    head_dropout: float = typer.Option(0.0, help="probability of zeroing a whole head per sequence in training"),
    d_model: int = typer.Option(128, help="model width"),
    n_layer: int = typer.Option(4, help="layers"),
    n_head: int = typer.Option(4, help="heads per layer"),
    n_examples: int = typer.Option(20000, help="training sequences generated (sampled with replacement)"),
    eval_every: int = typer.Option(300, help="quick held-out evaluation every so many steps (0: none)"),
    threads: int = typer.Option(1, help="torch CPU threads (1: no oversubscription on shared machines)"),
    progress: bool = typer.Option(True, help="progress bar"),
) -> None:
    from rich.console import Console
    from rich.table import Table

    from lm_interp.train import LMTrainConfig, train_tiny_lm

    from common.outputs import prepare_output

    for name, value in (("--steps", steps), ("--batch-size", batch_size), ("--block-size", block_size),
                        ("--n-examples", n_examples), ("--threads", threads)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    existed = out.exists()
    prepare_output(out, out.name, overwrite=overwrite)  # refuses a non-empty folder without --overwrite
    if not existed:
        out.rmdir()  # the trainer writes the folder atomically as a whole
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = LMTrainConfig(seed=seed, world_seed=world_seed, steps=steps, batch_size=batch_size, block_size=block_size,
                         lr=lr, dropout=dropout, head_dropout=head_dropout, d_model=d_model, n_layer=n_layer,
                         n_head=n_head, n_examples=n_examples, eval_every=eval_every, threads=threads)
    result = train_tiny_lm(config, out, progress=progress)
    table = Table(title=f"tiny LM ({result['n_params']:,} parameters, {steps} steps, "
                        f"{result['train_seconds']:.0f} s) -> {out}")
    for col in ("evaluation", "n", "accuracy / recall", "logit diff"):
        table.add_column(col)
    for name, m in result["metrics"].items():
        score = m.get("accuracy", m.get("recall"))
        table.add_row(name, str(m["n"]), f"{score:.3f}", f"{m['logit_diff']:.2f}" if "logit_diff" in m else "")
    Console().print(table)
    Console().print(f"final loss {result['final_loss']:.3f}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
