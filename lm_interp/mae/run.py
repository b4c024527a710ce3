"""MAE runs on a loaded LM: corpus windows, one neuron's report, a layer scan, the folder and its summary.

Thin glue between `lm_interp.mae.neurons` (activations, corpora), `lm_interp.mae.pipeline`
(the algorithms) and `lm_interp.mae.report` (one neuron's files); `run_mae` is what
`scripts/lm_mae.py` calls. This module owns the folder: ``L{L}_N{N}.*`` (through the report
module), ``scan_L{L}.json`` (`write_scan`) and ``summary.json`` / ``summary.md`` (`write_summary`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common.atomic import atomic_write_text
from lm_interp.mae.examples import windows_from_token_lists
from lm_interp.mae.neurons import (
    LayerActivations,
    check_neuron,
    corpus_token_lists,
    default_mask_id,
)
from lm_interp.mae.pipeline import MAEConfig, explain_neuron, scan_layer
from lm_interp.mae.report import Decoder, explanation_to_dict, write_neuron_report
from lm_interp.mae.substitutes import make_backend

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
                      progress: bool = True, pool: int = 30, train_acts=None, heldout_acts=None) -> dict:
    """The report dictionary (see `lm_interp.mae.report.explanation_to_dict`) of neuron `neuron` at ``blocks.L.mlp.hook_post``.

    :param train_acts: / :param heldout_acts: the neuron's activations on `train` / `held` if already measured.
    """
    check_neuron(lm, layer, neuron)
    cfg = config or MAEConfig()
    t0 = time.perf_counter()
    acts = LayerActivations(lm, layer)
    sub = make_backend(backend, lm, backend_path, pool) if backend else None
    exp = explain_neuron(acts.neuron(neuron), train, held, default_mask_id(lm.tokenizer), sub, cfg,
                         train_acts=train_acts, heldout_acts=heldout_acts, progress=progress)
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
    """`lm_interp.mae.pipeline.scan_layer` on the MLP neurons of `layer`."""
    acts = LayerActivations(lm, layer)
    return scan_layer(acts, acts.d_mlp, train, held, default_mask_id(lm.tokenizer), acts.neuron,
                      config or MAEConfig(), n_candidates, progress=progress)


def neuron_stem(layer: int, neuron: int) -> str:
    return f"L{layer}_N{neuron}"


def write_neuron(report: dict, out_dir: str | Path) -> list[Path]:
    """Write the neuron's JSON / Markdown / HTML and refresh the folder summary."""
    paths = write_neuron_report(report, out_dir, neuron_stem(report["layer"], report["neuron"]))
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


def check_mae_options(neuron: int | None, scan: bool, **counts: int) -> None:
    """ValueError if neither a neuron nor a scan is asked for, or a count (``top_k=20``, ...) is below 1."""
    if neuron is None and not scan:
        raise ValueError("give --neuron N or --scan")
    for name, value in counts.items():
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def write_scan(rows: list[dict], model: str, layer: int, out_dir: str | Path) -> Path:
    """``scan_L{layer}.json``: the layer's neurons ranked by `scan`."""
    return atomic_write_text(json.dumps({"model": model, "layer": layer, "ranked": rows}, indent=1),
                             Path(out_dir) / f"scan_L{layer}.json")


@dataclass
class MAERun:
    """What `run_mae` did: the scan ranking (empty without a scan) and one report dict per explained neuron."""

    scan: list[dict] = field(default_factory=list)
    reports: list[dict] = field(default_factory=list)


def run_mae(model: str, layer: int, out_dir: str | Path, neuron: int | None = None, config: MAEConfig | None = None,
            corpus: str = "generated", n_docs: int = 400, window: int = 24, backend: str | None = "causal_lm",
            backend_path: str | None = None, pool: int = 30, scan_layer_neurons: bool = False, scan_top: int = 3,
            scan_candidates: int = 24, seed: int = 0) -> MAERun:
    """Explain `neuron` (and/or the best `scan_top` of a layer scan) of `model` at `layer`; writes `out_dir`.

    :param backend: substitution backend (`make_backend` kinds) or None for no substitutions.
    :param scan_layer_neurons: rank the layer's neurons first (quick N2G F1 with at most 10 examples).
    """
    from lm_interp.models.loading import load_model

    cfg = config or MAEConfig()
    lm = load_model(model)
    check_neuron(lm, layer, neuron)
    train, held = corpus_windows(lm, corpus, n_docs, window, seed)
    run = MAERun()
    neurons = [neuron] if neuron is not None else []
    if scan_layer_neurons:
        scan_k = min(cfg.k, 10)
        rows = scan(lm, layer, train, held, MAEConfig(k=scan_k, fraction=cfg.fraction, step=cfg.step),
                    scan_candidates)
        run.scan = [{**r, "scan_k": scan_k} for r in rows]
        write_scan(run.scan, lm.spec, layer, out_dir)
        neurons += [r["neuron"] for r in run.scan[:scan_top] if r["neuron"] not in neurons]
    for n in neurons:
        report = explain_lm_neuron(lm, layer, n, train, held, cfg, backend, backend_path, corpus, pool=pool)
        write_neuron(report, out_dir)
        run.reports.append(report)
    return run
