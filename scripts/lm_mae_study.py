"""Minimal activating examples at scale: N2G fidelity of many neurons, chosen by a stated rule, with paired tests.

Per layer in --layers, the MLP neurons that fire (>= half their max over the training text)
on at least --min-firing held-out and training tokens are testable, and --per-layer of them
are drawn at random (seeded). Each is explained (max-activating examples, minimal examples,
substitution variants, N2G graph) and four predictors of held-out firing are compared on the
same neurons: minimal examples + variants (N2G), minimal examples alone, raw examples, and
the pivot token alone. Writes selection.json, one report per neuron, study.json / study.md
and f1_by_predictor.png (`lm_interp.mae.study`). Resumable: re-running skips finished neurons.

    python scripts/lm_mae_study.py --model smollm2 --out results/lm_mae_study_smollm2
    python scripts/lm_mae_study.py --model tiny --layers 1,2,3 --per-layer 4 --out results/lm_mae_study_tiny
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
    model: str = typer.Option("smollm2", help="tiny | smollm2 | a checkpoint folder"),
    out: Optional[Path] = typer.Option(None, help="output folder [default: runs/lm_mae_study_<model>; the recorded "
                                                  "results are results/lm_mae_study_<model>]"),
    layers: str = typer.Option("2,7,12,17,22,27", help="comma-separated blocks whose MLP neurons are sampled"),
    per_layer: int = typer.Option(5, help="neurons drawn per layer"),
    min_firing: int = typer.Option(20, help="a neuron is testable when it fires on at least this many held-out and "
                                            "training tokens"),
    n_docs_train: int = typer.Option(1500, help="training documents (max-activating examples come from them)"),
    n_docs_heldout: int = typer.Option(3000, help="held-out documents (fidelity is measured on them)"),
    corpus: str = typer.Option("generated", help="generated | samples (the model's own text) | a text file"),
    top_k: int = typer.Option(20, help="max-activating examples per neuron"),
    backend: str = typer.Option("causal_lm", help="substitution backend: causal_lm | embedding | none"),
    seed: int = typer.Option(0, help="corpus and selection seed"),
    overwrite: bool = typer.Option(False, "--overwrite", help="write into --out even if it holds a finished study "
                                                              "(its finished neurons are kept)"),
) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from common.outputs import prepare_output
    from lm_interp.mae.pipeline import MAEConfig
    from lm_interp.mae.study import StudyConfig, check_study_config, run_mae_study

    try:
        layer_list = tuple(int(x) for x in layers.split(","))
    except ValueError:
        raise typer.BadParameter(f"--layers takes comma-separated integers, got {layers!r}") from None
    cfg = StudyConfig(layers=layer_list, per_layer=per_layer, min_firing=min_firing, seed=seed, corpus=corpus,
                      n_docs_train=n_docs_train, n_docs_heldout=n_docs_heldout,
                      backend=None if backend == "none" else backend, mae=MAEConfig(k=top_k))
    check_study_config(cfg)
    if top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {top_k}")
    # resumable: an unfinished folder is reused, its finished neurons skipped
    out = prepare_output(out, f"lm_mae_study_{Path(model).name}", overwrite=overwrite, finished=("study.json",))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    summary = run_mae_study(model, out, cfg, command="python scripts/lm_mae_study.py " + " ".join(sys.argv[1:]))
    print(f"{summary['n_explained']} neurons explained; wrote {out}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
