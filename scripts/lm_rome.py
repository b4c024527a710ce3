"""ROME edits and their hazards: efficacy, paraphrase, neighbourhood, Specificity+, loud facts, implications.

Single-edit setting: every edit is applied to the unedited model, evaluated and restored.
Tiny model: edits from the synthetic world; SmolLM2 (or a folder): real facts from
lm_interp/data/rome_real_facts.json, kept only if the unedited model predicts them.
Writes DIR/summary.json, DIR/table.md, DIR/edits/<editor>/<case>.json (resumable),
DIR/causal_trace.png and DIR/probabilities.png.

    python scripts/lm_rome.py --model tiny --editor rome,ft,ft-l --n-edits 24 --out results/lm_rome_tiny
    python scripts/lm_rome.py --model smollm2 --editor rome,ft,ft-l --n-edits 20 --out results/lm_rome_smollm2
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)

# per model: (ROME layer, ridge, FT lr, FT-L bound); tiny values chosen on a small sweep (see docs)
DEFAULTS = {"tiny": (1, 1e-1, 5e-3, 5e-3), "smollm2": (6, 1e-3, 5e-4, 5e-4)}
EDITORS = ("rome", "rome-legacy", "ft", "ft-l")


@app.command()
def main(
    model: str = typer.Option("tiny", help="tiny | smollm2 | a checkpoint folder"),
    editor: str = typer.Option("rome,ft,ft-l", help=f"comma-separated editors among {EDITORS}"),
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
    from common.atomic import atomic_write_json

    from common.atomic import atomic_write_text
    from lm_interp import load_model
    from lm_interp.edit_cases import (
        interleave_relations,
        keep_known,
        real_cases,
        tiny_cases,
    )
    from lm_interp.edit_eval import markdown_table, run_suite, summarise
    from lm_interp.ft_edit import FTConfig, finetune_edit
    from lm_interp.rome import ROMEConfig, ROMEEditor
    from lm_interp.world import make_world

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    chosen = [e.strip() for e in editor.split(",") if e.strip()]
    unknown = [e for e in chosen if e not in EDITORS]
    if unknown or not chosen:
        raise ValueError(f"unknown editors {unknown or chosen}; editors: {EDITORS}")
    if n_edits < 1:
        raise ValueError(f"--n-edits must be at least 1, got {n_edits}")
    if trace_cases < 0 or v_steps < 1:
        raise ValueError(f"--trace-cases must be 0 or more and --v-steps at least 1, got {trace_cases} and {v_steps}")
    from common.outputs import prepare_output

    # a killed run resumes from its edits/ folder; a finished one (summary.json) needs --overwrite
    out = prepare_output(out, f"lm_rome_{Path(model).name}", overwrite=overwrite, finished=("summary.json",))
    t0 = time.perf_counter()
    lm = load_model(model)
    d_layer, ridge, ft_lr, ftl_linf = DEFAULTS.get(lm.name, DEFAULTS["smollm2"])
    layer = d_layer if layer is None else layer
    tiny = lm.name == "tiny"
    if tiny:
        world_seed = lm.info.get("recipe", {}).get("config", {}).get("world_seed", 0)
        candidates = tiny_cases(make_world(world_seed), max(n_edits, 1), seed=seed)
    else:
        candidates = interleave_relations(real_cases(seed=seed))
    kept, known_record = keep_known(lm, candidates)
    cases = kept[:n_edits]
    if len(cases) < n_edits:
        logging.warning("only %d of %d candidate facts are known to the unedited model; running %d edits",
                        len(kept), len(candidates), len(cases))
    cfg = ROMEConfig(layer=layer, covariance=covariance, ridge=ridge, v_steps=v_steps, seed=seed,
                     cov_corpus=cov_corpus or ("generated" if tiny else "samples"),
                     cov_n_texts=cov_n_texts or (500 if tiny else 64))
    editors, rome_editors = {}, []
    if "rome" in chosen:
        rome = ROMEEditor(lm, cfg).prepare()
        editors["rome"] = lambda m, r: rome.edit(r)
        rome_editors.append(rome)
    if "rome-legacy" in chosen:
        from dataclasses import replace

        legacy = ROMEEditor(lm, replace(cfg, key_mode="legacy")).prepare()
        editors["rome-legacy"] = lambda m, r: legacy.edit(r)
        rome_editors.append(legacy)
    if "ft" in chosen:
        editors["ft"] = lambda m, r: finetune_edit(m, r, FTConfig(layer=layer, lr=ft_lr))
    if "ft-l" in chosen:
        editors["ft-l"] = lambda m, r: finetune_edit(m, r, FTConfig(layer=layer, lr=ft_lr, linf=ftl_linf))
    records = run_suite(lm, cases, editors, out)
    columns = summarise(records)
    labels = {"unedited": "unedited", "rome": "ROME", "rome-legacy": "ROME (legacy keys)", "ft": "FT", "ft-l": "FT-L"}
    table_cols = {labels[k]: v for k, v in columns.items()}
    extra = {"relative update norm ‖ΔW‖/‖W‖": {labels[k]: f"{v['edit']['relative_fro']['mean']:.3f}"
                                                for k, v in columns.items() if "edit" in v},
             "seconds per edit": {labels[k]: f"{v['edit']['seconds']['mean']:.1f}"
                                  for k, v in columns.items() if "edit" in v}}
    trace = None
    if trace_cases > 0:
        from lm_interp.tracing import causal_trace_cases, plot_trace

        trace = causal_trace_cases(lm, cases[:trace_cases], seed=seed)
        plot_trace(trace, out / "causal_trace.png", f"{lm.name}: causal tracing (mean over {trace_cases} facts)")
    _plot_probabilities(columns, labels, out / "probabilities.png", f"{lm.name}: single edits, mean over edits")
    report = {
        "model": lm.spec, "description": lm.description, "setting": "single edits, each restored before the next",
        "editors": chosen, "n_candidates": len(candidates), "n_known": len(kept), "n_edits": len(cases),
        "known_check": "top-1 next token of the unedited model = first token of the true object",
        "candidates": known_record, "rome_config": rome_editors[0].config_dict() if rome_editors else None,
        "ft": {"layer": layer, "lr": ft_lr, "steps": 25, "ftl_linf": ftl_linf},
        "summary": columns, "causal_trace": trace, "seconds": round(time.perf_counter() - t0, 1),
    }
    atomic_write_json(report, out / "summary.json")
    header = (f"# ROME hazards on {lm.name}\n\n{lm.description}\n\n{len(cases)} single edits "
              f"({len(kept)} of {len(candidates)} candidate facts known to the unedited model); ROME layer {layer}, "
              f"key mode {cfg.key_mode}, C: {cfg.covariance} ({cfg.cov_corpus}), ridge {cfg.ridge}.\n"
              "Scores are fractions of prompts where the first object beats the second (per-token "
              "probabilities, CounterFact style), averaged over edits; KL in nats.\n\n")
    atomic_write_text(header + markdown_table(table_cols, extra) + "\n", out / "table.md")
    print(header + markdown_table(table_cols, extra))
    print(f"wrote {out} ({report['seconds']} s)")


def _plot_probabilities(columns: dict, labels: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = [("efficacy", "p_good", "efficacy"), ("paraphrase", "p_good", "paraphrase"),
              ("neighbourhood", "p_bad", "neighbourhood"), ("nplus", "p_bad", "N+"),
              ("loud_fact", "p_bad", "loud fact")]
    names = list(columns)
    x = np.arange(len(groups))
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        vals = [columns[name].get(g, {}).get(f, {}).get("mean", np.nan) for g, f, _ in groups]
        ax.bar(x + i * width - 0.4 + width / 2, vals, width, label=labels[name])
    ax.set_xticks(x, [lab for _, _, lab in groups])
    ax.set_ylabel("mean P(new object)")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    from common.atomic import atomic_save_figure

    atomic_save_figure(fig, path, dpi=120)


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
