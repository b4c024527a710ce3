"""Minimal activating examples of LM neurons (causal-aware MAE, substitutions, N2G fidelity).

For neuron N at blocks.L.mlp.hook_post: the top-k max-activating windows of a local corpus,
each pruned to its minimal activating example (left-only), token saliency, substitution
variants (Positive / Negative) from a pluggable backend, and the held-out fidelity of an
N2G-style predictor vs the raw examples. Writes L{L}_N{N}.json/.md/.html and summary.md.

    python scripts/lm_mae.py --model tiny --layer 1 --neuron 7
    python scripts/lm_mae.py --model tiny --layer 2 --scan --scan-top 3
    python scripts/lm_mae.py --model smollm2 --layer 5 --neuron 100 --corpus samples
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@app.command()
def main(
    model: str = typer.Option("tiny", help="tiny | smollm2 | a checkpoint folder"),
    layer: int = typer.Option(..., help="block index"),
    neuron: Optional[int] = typer.Option(None, help="MLP neuron (omit with --scan)"),
    top_k: int = typer.Option(20, help="max-activating examples"),
    out: Optional[Path] = typer.Option(None, help="output folder [default: runs/lm_mae_<model>; the recorded results "
                                                  "are results/lm_mae_<model>]"),
    overwrite: bool = typer.Option(False, "--overwrite", help="write into --out even if it holds a finished result"),
    corpus: str = typer.Option("generated", help="generated | samples (the model's own text) | a text file"),
    n_docs: int = typer.Option(400, help="documents (sentences, samples or lines) per split"),
    window: int = typer.Option(24, help="tokens per window"),
    backend: str = typer.Option("causal_lm", help="causal_lm | embedding | minilm | masked_lm | none"),
    backend_path: Optional[str] = typer.Option(None, help="MiniLM folder or masked-LM folder / cached Hub name"),
    fraction: float = typer.Option(0.5, help="pruning keeps at least this fraction of the pivot activation"),
    threshold: float = typer.Option(0.5, help="a variant is Positive at >= threshold x the original activation"),
    step: int = typer.Option(1, help="pruning step in tokens (N2G: 5)"),
    drop_single: bool = typer.Option(False, help="also remove single tokens before the pivot"),
    n_substitutes: int = typer.Option(5, help="substitutes per important token"),
    pool: int = typer.Option(30, help="causal_lm backend: next-token candidates re-ranked by sentence likelihood"),
    scan: bool = typer.Option(False, help="rank the layer's neurons and explain the best --scan-top"),
    scan_top: int = typer.Option(3, help="neurons explained after --scan"),
    scan_candidates: int = typer.Option(24, help="sparse neurons scored by --scan"),
    seed: int = typer.Option(0, help="corpus seed"),
) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from rich.console import Console

    from common.outputs import prepare_output
    from lm_interp.mae.pipeline import MAEConfig
    from lm_interp.mae.run import check_mae_options, run_mae

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    if neuron is None and not scan:
        raise typer.BadParameter("give --neuron N or --scan")
    check_mae_options(neuron, scan, top_k=top_k, n_docs=n_docs, window=window, step=step, scan_top=scan_top,
                      scan_candidates=scan_candidates)
    out = prepare_output(out, f"lm_mae_{Path(model).name}", overwrite=overwrite)
    cfg = MAEConfig(k=top_k, fraction=fraction, step=step, drop_single=drop_single, n_substitutes=n_substitutes,
                    threshold=threshold)
    run = run_mae(model, layer, out, neuron, cfg, corpus, n_docs, window, None if backend == "none" else backend,
                  backend_path, pool, scan, scan_top, scan_candidates, seed)
    console = Console()
    for r in run.scan[:10]:
        console.print(f"L{layer} N{r['neuron']}: quick N2G F1 {r['f1']:.3f} (raw examples {r['baseline_f1']:.3f}, "
                      f"firing rate {r['firing_rate']:.4f})")
    for report in run.reports:
        s, f = report["summary"], report["fidelity"]
        console.print(f"L{layer} N{report['neuron']}: max {s['neuron_max']:.3f}, length {s['mean_original_length']:.1f}"
                      f" -> MAE {s['mean_mae_length']:.1f}, {s['n_positive']} positive / {s['n_negative']} negative; "
                      f"F1 N2G {f['n2g']['f1']:.3f} vs raw {f['raw_examples']['f1']:.3f} "
                      f"(pivot token {f['pivot_token']['f1']:.3f}) [{report['seconds']} s]")
    console.print(f"wrote {out}")

if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
