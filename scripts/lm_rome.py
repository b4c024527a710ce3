"""ROME edits and their hazards: efficacy, paraphrase, neighbourhood, Specificity+, loud facts, implications.

Single-edit setting: every edit is applied to the unedited model, evaluated and restored.
Tiny model: edits from the synthetic world; SmolLM2 (or a folder): real facts from
lm_interp/editing/data/rome_real_facts.json (landmark -> city, couples, antonyms), kept only if
the unedited model predicts them, relations interleaved (`lm_interp.editing.run`). Every metric
gets a 95 % bootstrap interval over edits; ROME is tested against FT and FT-L (paired) and the
research notes' claims are judged. Writes DIR/summary.json, DIR/table.md,
DIR/edits/<editor>/<case>.json, DIR/causal_trace.png and DIR/probabilities.png. Resumable:
rerunning the same command after an interruption reuses every finished edit (records whose case
and settings match); a progress bar counts the edits.

    python scripts/lm_rome.py --model tiny --editor rome,rome-legacy,ft,ft-l --n-edits 24 \
        --out results/lm_rome_tiny --overwrite
    python scripts/lm_rome.py --model smollm2 --editor rome,ft,ft-l --n-edits 72 --v-steps 10 \
        --cov-corpus generated --out results/lm_rome_smollm2 --overwrite
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@app.command()
def main(
    model: str = typer.Option("tiny", help="tiny | smollm2 | a checkpoint folder"),
    editor: str = typer.Option("rome,ft,ft-l", help="comma-separated editors among rome, rome-legacy, ft, ft-l"),
    n_edits: int = typer.Option(24, help="edits (cases) to run"),
    out: Optional[Path] = typer.Option(None, help="output folder [default: runs/lm_rome_<model>; the recorded results "
                                                  "are results/lm_rome_<model>]"),
    overwrite: bool = typer.Option(False, "--overwrite", help="write into --out even if it holds a finished result"),
    layer: Optional[int] = typer.Option(None, help="edited block [default: tiny 1, smollm2 6]"),
    covariance: str = typer.Option("corpus", help="corpus | identity (C = I)"),
    cov_corpus: Optional[str] = typer.Option(None, help="samples | generated [default: tiny generated, else samples]"),
    cov_n_texts: Optional[int] = typer.Option(None, help="texts for C [default: tiny 500, else 64 x 48 tokens]"),
    v_steps: int = typer.Option(20, help="Adam steps for v*"),
    trace_cases: int = typer.Option(3, help="cases averaged in the causal-tracing heatmap (0: skip)"),
    seed: int = typer.Option(0, help="seed of cases, prefixes, covariance text and noise"),
) -> None:
    import torch

    from common.outputs import prepare_output
    from lm_interp.editing.run import check_rome_options, run_rome

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    check_rome_options(editor, n_edits, trace_cases, v_steps)
    # a killed run resumes from its edits/ folder; a finished one (summary.json) needs --overwrite
    out = prepare_output(out, f"lm_rome_{Path(model).name}", overwrite=overwrite, finished=("summary.json",))
    command = "python scripts/lm_rome.py " + shlex.join(sys.argv[1:])
    report = run_rome(model, out, editor, n_edits, layer, covariance, cov_corpus, cov_n_texts, v_steps, trace_cases,
                      seed, command)
    print((out / "table.md").read_text())
    print(f"wrote {out} ({report.seconds} s)")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
