"""`probes/` on LM activations: does the residual stream at the last subject token encode the subject's country?

For every (subject, context) prompt (landmarks and cities; the synthetic world for the tiny
model, real geography for SmolLM2), the residual stream is read at the last subject token
after the embedding and after every block, and a logistic probe (probes.linear.fit_probe,
grouped by subject: test subjects are unseen) predicts the country (`lm_interp.machinery.probing`). Writes
results/lm_probe_<model>/probe_by_layer.json and accuracy_by_layer.png.

    python scripts/lm_probe_demo.py --model tiny
    python scripts/lm_probe_demo.py --model smollm2
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@app.command()
def main(
    model: str = typer.Option("tiny", help="tiny | smollm2 | a checkpoint folder"),
    out: Optional[Path] = typer.Option(None, help="output folder [default: runs/lm_probe_<model>; the recorded results "
                                                  "are results/lm_probe_<model>]"),
    overwrite: bool = typer.Option(False, "--overwrite", help="write into --out even if it holds a finished result"),
    layers: Optional[str] = typer.Option(None, help="comma-separated block indices (default: all)"),
    seed: int = typer.Option(0, help="seed of the grouped split and bootstraps"),
    n_boot: int = typer.Option(200, help="bootstrap resamples for the 95% intervals"),
) -> None:
    import torch
    from rich.console import Console
    from rich.table import Table

    from common.outputs import prepare_output
    from lm_interp.machinery.probing import run_probe_demo

    if n_boot < 0:
        raise ValueError(f"--n-boot must be 0 or more, got {n_boot}")
    out = prepare_output(out, f"lm_probe_{Path(model).name}", overwrite=overwrite, finished=("probe_by_layer.json",))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    report = run_probe_demo(model, out, [int(x) for x in layers.split(",")] if layers else None, seed, n_boot)
    table = Table(title=f"{report.description}\n{report.n_prompts} prompts, {report.n_subjects} subjects, "
                        f"{report.n_countries} countries (held-out subjects)")
    for col in ("layer", "accuracy", "95% CI", "majority"):
        table.add_column(col)
    for r in report.rows:
        table.add_row(r.layer, f"{r.accuracy:.3f}", f"[{r.ci_low:.2f}, {r.ci_high:.2f}]", f"{r.majority:.3f}")
    Console().print(table)
    Console().print(f"wrote {out}/probe_by_layer.json and accuracy_by_layer.png ({report.seconds} s)")

if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
