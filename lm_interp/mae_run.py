"""MAE runs on a loaded LM: corpus windows, one neuron's report, a layer scan, and the folder summary.

Thin glue between `lm_interp.mae_model` (activations, corpora), `lm_interp.mae_pipeline`
(the algorithms) and `lm_interp.mae_report` (files); `scripts/lm_mae.py` calls these.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

from common.atomic import atomic_write_text
from lm_interp.mae import windows_from_token_lists
from lm_interp.mae_model import (
    LayerActivations,
    check_neuron,
    corpus_token_lists,
    default_mask_id,
)
from lm_interp.mae_pipeline import MAEConfig, explain_neuron, scan_layer
from lm_interp.mae_report import Decoder, explanation_to_dict, write_report
from lm_interp.substitutes import make_backend

log = logging.getLogger(__name__)


def corpus_windows(lm, source: str = "generated", n_docs: int = 400, window: int = 24,
                   seed: int = 0) -> tuple[list[list[int]], list[list[int]]]:
    """(train, heldout) windows of `window` content tokens from `source` (disjoint splits)."""
    window = min(window, LayerActivations(lm, 0).max_tokens)
    train = windows_from_token_lists(corpus_token_lists(lm, source, "train", n_docs, seed, window), window)
    held = windows_from_token_lists(corpus_token_lists(lm, source, "heldout", n_docs, seed, window), window)
    if not train or not held:
        raise ValueError(f"corpus {source!r} gave {len(train)} training and {len(held)} held-out windows; "
                         f"use more documents (n_docs={n_docs})")
    return train, held


def explain_lm_neuron(lm, layer: int, neuron: int, train, held, config: MAEConfig | None = None,
                      backend: str | None = "causal_lm", backend_path: str | None = None, corpus: str = "generated",
                      progress: bool = True, pool: int = 30) -> dict:
    """The report dictionary (see `mae_report.explanation_to_dict`) of neuron `neuron` at ``blocks.L.mlp.hook_post``."""
    check_neuron(lm, layer, neuron)
    cfg = config or MAEConfig()
    t0 = time.perf_counter()
    acts = LayerActivations(lm, layer)
    sub = make_backend(backend, lm, backend_path, pool) if backend else None
    exp = explain_neuron(acts.neuron(neuron), train, held, default_mask_id(lm.tokenizer), sub, cfg, progress=progress)
    meta = {"model": lm.spec, "description": lm.description, "hook": acts.hook, "layer": layer, "neuron": neuron,
            "corpus": corpus, "n_train_windows": len(train), "n_heldout_windows": len(held),
            "backend": backend, "backend_pool": pool if backend == "causal_lm" else None, "mask_token": lm.tokenizer.decode([default_mask_id(lm.tokenizer)]),
            "prepend_bos": lm.prepend_bos, "config": asdict(cfg),
            "tokens": "word-level (tiny)" if lm.name == "tiny" else "whole tokens (byte-level BPE pieces)"}
    report = explanation_to_dict(exp, Decoder.from_tokenizer(lm.tokenizer, word_level=lm.name == "tiny"), meta)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def scan(lm, layer: int, train, held, config: MAEConfig | None = None, n_candidates: int = 24,
         progress: bool = True) -> list[dict]:
    """`mae_pipeline.scan_layer` on the MLP neurons of `layer`."""
    acts = LayerActivations(lm, layer)
    return scan_layer(acts, acts.d_mlp, train, held, default_mask_id(lm.tokenizer), acts.neuron,
                      config or MAEConfig(), n_candidates, progress=progress)


def neuron_stem(layer: int, neuron: int) -> str:
    return f"L{layer}_N{neuron}"


def write_neuron(report: dict, out_dir: str | Path) -> list[Path]:
    """Write the neuron's JSON / Markdown / HTML and refresh the folder summary."""
    paths = write_report(report, out_dir, neuron_stem(report["layer"], report["neuron"]))
    write_summary(out_dir)
    return paths


def summary_rows(out_dir: str | Path) -> list[dict]:
    """One row per neuron report in `out_dir` (read back from the JSON files)."""
    rows = []
    for p in sorted(Path(out_dir).glob("L*_N*.json")):
        r = json.loads(p.read_text())
        s, f = r["summary"], r["fidelity"]
        rows.append({"layer": r["layer"], "neuron": r["neuron"], "max_activation": s["neuron_max"],
                     "mean_original_length": s["mean_original_length"], "mean_mae_length": s["mean_mae_length"],
                     "n_positive": s["n_positive"], "n_negative": s["n_negative"],
                     **{f"{k}_{m}": round(v[m], 3) for k, v in f.items() for m in ("precision", "recall", "f1")},
                     "seconds": r.get("seconds")})
    return rows


def write_summary(out_dir: str | Path) -> None:
    """``summary.json`` and ``summary.md`` of every neuron report in `out_dir` (generated from the JSON)."""
    rows = summary_rows(out_dir)
    atomic_write_text(json.dumps(rows, indent=1), Path(out_dir) / "summary.json")
    lines = ["# Minimal activating examples: summary", "",
             "Fidelity: precision / recall / F1 of predicting firing (>= 0.5 x max) on held-out text.", "",
             "| neuron | max act | length -> MAE | +/- variants | N2G P/R/F1 | MAE-only F1 | raw examples P/R/F1 "
             "| pivot token F1 |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def g(key: str, row: dict = r) -> float:
            return row.get(key, float("nan"))

        lines.append(f"| L{r['layer']} N{r['neuron']} | {r['max_activation']:.3f} | {r['mean_original_length']:.1f} -> "
                     f"{r['mean_mae_length']:.1f} | {r['n_positive']}/{r['n_negative']} | "
                     f"{g('n2g_precision'):.2f}/{g('n2g_recall'):.2f}/{g('n2g_f1'):.2f} | {g('n2g_mae_only_f1'):.2f} | "
                     f"{g('raw_examples_precision'):.2f}/{g('raw_examples_recall'):.2f}/{g('raw_examples_f1'):.2f} | "
                     f"{g('pivot_token_f1'):.2f} |")
    atomic_write_text("\n".join(lines) + "\n", Path(out_dir) / "summary.md")
