"""Minimal activating examples at scale: many neurons chosen by a stated rule, fidelity distributions, paired tests.

`run_mae_study` measures the MLP neurons of several layers in one pass over the corpus,
chooses neurons by `select_neurons`' rule (testable neurons, then drawn at random, so the
sample is not picked for being explainable), explains each one (`lm_interp.mae.run.explain_lm_neuron`:
max-activating examples, minimal examples, substitution variants, N2G graphs) and writes one
report per neuron. A re-run skips neurons whose report is already there (resumable).
`study_summary` then compares the four predictors of held-out firing on the same neurons:

* ``n2g``: the N2G graph of the minimal examples and their Positive variants;
* ``n2g_mae_only``: the minimal examples alone;
* ``raw_examples``: the raw max-activating examples (whole prefix up to the pivot, exact);
* ``pivot_token``: the pivot tokens alone.

For each, the distribution of precision / recall / F1 over neurons (mean with a bootstrap
interval over neurons, median, quartiles); for pairs, the per-neuron F1 difference (mean with
a paired bootstrap interval, Wilcoxon signed-rank p-value, wins / ties / losses:
`probes.bootstrap.paired_difference`).
The folder: ``selection.json``, ``L{L}_N{N}.*`` per neuron, ``study.json``, ``study.md``, ``f1_by_predictor.png``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from common.atomic import atomic_save_figure, atomic_write_json, atomic_write_text
from lm_interp.mae.pipeline import MAEConfig
from probes.bootstrap import (
    bootstrap_means,
    bootstrap_weights,
    paired_difference,
    percentile_interval,
)

log = logging.getLogger(__name__)

PREDICTORS = {"n2g": "minimal examples + variants (N2G)", "n2g_mae_only": "minimal examples",
              "raw_examples": "raw examples", "pivot_token": "pivot token"}
# (a, b): the per-neuron difference a - b
COMPARISONS = (("n2g", "raw_examples"), ("n2g_mae_only", "raw_examples"), ("n2g", "n2g_mae_only"),
               ("pivot_token", "n2g"), ("pivot_token", "n2g_mae_only"), ("pivot_token", "raw_examples"))
METRICS = ("precision", "recall", "f1")


@dataclass
class StudyConfig:
    """What the study measures and how neurons are chosen (recorded in ``selection.json``).

    :param layers: blocks whose MLP neurons are sampled; :param per_layer: neurons drawn per layer.
    :param min_firing: a neuron is testable when it fires (>= `firing` x its max over the training text) on at
        least this many held-out tokens and this many training tokens.
    :param n_docs_train / n_docs_heldout: corpus documents per split (held-out text decides fidelity).
    """

    layers: tuple[int, ...] = (2, 7, 12, 17, 22, 27)
    per_layer: int = 5
    min_firing: int = 20
    seed: int = 0
    corpus: str = "generated"
    n_docs_train: int = 1500
    n_docs_heldout: int = 3000
    window: int = 24
    backend: str | None = "causal_lm"
    pool: int = 30
    mae: MAEConfig = field(default_factory=MAEConfig)

    def to_json(self) -> dict:
        return {**asdict(self), "layers": list(self.layers)}


def check_study_config(cfg: StudyConfig, n_layers: int | None = None) -> None:
    """ValueError naming the option if a count is out of range or a layer does not exist."""
    for name in ("per_layer", "min_firing", "n_docs_train", "n_docs_heldout"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
    if not cfg.layers or len(set(cfg.layers)) != len(cfg.layers):
        raise ValueError(f"--layers needs distinct layer indices, got {list(cfg.layers)}")
    if n_layers is not None and any(not 0 <= layer < n_layers for layer in cfg.layers):
        raise ValueError(f"--layers {list(cfg.layers)}: the model has layers 0..{n_layers - 1}")


# ------------------------------------------------------------------------------------ selection

def firing_counts(train: np.ndarray, held: np.ndarray, firing: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per neuron: max over the training tokens, and how many training / held-out tokens reach `firing` x it.

    :param train: / :param held: ``[tokens, neurons]`` activations.
    """
    maxima = train.max(0)
    level = np.where(maxima > 0, firing * maxima, np.inf)
    return maxima, (train >= level).sum(0), (held >= level).sum(0)


def select_neurons(train: np.ndarray, held: np.ndarray, per_layer: int, min_firing: int, seed: int,
                   firing: float = 0.5) -> tuple[list[int], dict]:
    """The rule: neurons with a positive max that fire on >= `min_firing` training and held-out tokens are
    testable; `per_layer` of them are drawn uniformly at random (seeded). Returns them (sorted) and the counts."""
    maxima, n_train, n_held = firing_counts(train, held, firing)
    eligible = np.flatnonzero((maxima > 0) & (n_train >= min_firing) & (n_held >= min_firing))
    rng = np.random.default_rng(seed)
    chosen = sorted(int(n) for n in rng.choice(eligible, size=min(per_layer, len(eligible)), replace=False))
    stats = {"n_neurons": int(train.shape[1]), "n_testable": int(len(eligible)),
             "heldout_firing_of_chosen": {str(n): int(n_held[n]) for n in chosen},
             "train_firing_of_chosen": {str(n): int(n_train[n]) for n in chosen}}
    if len(chosen) < per_layer:
        log.warning("only %d testable neurons (need %d)", len(chosen), per_layer)
    return chosen, stats


def layer_activation_arrays(lm, layers: Sequence[int], windows: Sequence[Sequence[int]], batch_size: int = 64,
                            progress: bool = True) -> dict[int, np.ndarray]:
    """``{layer: [tokens, d_mlp]}`` MLP-neuron activations of every window, concatenated, in one pass per batch."""
    import torch

    from lm_interp.machinery.hooks import hook_name, run_with_cache
    from lm_interp.models.tokenizer import TokenBatch

    hooks = {layer: hook_name("mlp_post", layer) for layer in layers}
    bos = [lm.tokenizer.bos_token_id] if lm.prepend_bos else []
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    parts: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
    starts = range(0, len(windows), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"activations of layers {list(layers)}", unit="batch", leave=False)
    for s in starts:
        rows = [bos + [int(t) for t in w] for w in windows[s:s + batch_size]]
        tokens = torch.full((len(rows), max(len(r) for r in rows)), pad, dtype=torch.long)
        for i, r in enumerate(rows):
            tokens[i, :len(r)] = torch.tensor(r)
        _, cache, _ = run_with_cache(lm, TokenBatch(tokens, torch.tensor([len(r) for r in rows])), list(hooks.values()))
        for layer, hook in hooks.items():
            acts = cache[hook].float().numpy()
            parts[layer] += [acts[i, len(bos):len(r)] for i, r in enumerate(rows)]
    return {layer: np.concatenate(p) for layer, p in parts.items()}


def _split_rows(flat: np.ndarray, windows: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """Cut ``[tokens]`` back into one array per window."""
    bounds = np.cumsum([0] + [len(w) for w in windows])
    return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


# ------------------------------------------------------------------------------------------ run

def run_mae_study(model: str, out_dir: str | Path, cfg: StudyConfig | None = None, command: str | None = None,
                  progress: bool = True) -> dict:
    """Choose the neurons, explain each (skipping reports already in `out_dir`) and write the study summary."""
    from lm_interp.mae.neurons import model_dims
    from lm_interp.mae.run import (
        corpus_windows,
        explain_lm_neuron,
        neuron_stem,
        write_neuron,
    )
    from lm_interp.models.loading import load_model

    cfg = cfg or StudyConfig()
    check_study_config(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    lm = load_model(model)
    check_study_config(cfg, model_dims(lm)[0])
    train, _ = corpus_windows(lm, cfg.corpus, cfg.n_docs_train, cfg.window, cfg.seed)
    _, held = corpus_windows(lm, cfg.corpus, cfg.n_docs_heldout, cfg.window, cfg.seed)
    train_acts = layer_activation_arrays(lm, cfg.layers, train, progress=progress)
    held_acts = layer_activation_arrays(lm, cfg.layers, held, progress=progress)
    selection = {"rule": f"per layer, the neurons that fire (>= {cfg.mae.firing} x their max over the training text) "
                         f"on at least {cfg.min_firing} held-out and {cfg.min_firing} training tokens are testable; "
                         f"{cfg.per_layer} of them are drawn uniformly at random (numpy seed {cfg.seed} + layer)",
                 "model": lm.spec, "description": lm.description, "config": cfg.to_json(),
                 "n_train_windows": len(train), "n_heldout_windows": len(held),
                 "n_train_tokens": int(sum(map(len, train))), "n_heldout_tokens": int(sum(map(len, held))),
                 "layers": {}}
    todo = []
    for layer in cfg.layers:
        chosen, stats = select_neurons(train_acts[layer], held_acts[layer], cfg.per_layer, cfg.min_firing,
                                       cfg.seed + layer, cfg.mae.firing)
        selection["layers"][str(layer)] = {"neurons": chosen, **stats}
        todo += [(layer, n) for n in chosen]
    atomic_write_json(selection, out / "selection.json")
    settings = {"config": asdict(cfg.mae), "backend": cfg.backend, "corpus": cfg.corpus,
                "n_train_windows": len(train), "n_heldout_windows": len(held)}
    items = todo
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(todo, desc="neurons", unit="neuron")
    for layer, n in items:
        path = out / f"{neuron_stem(layer, n)}.json"
        if path.is_file():
            old = json.loads(path.read_text())
            if all(old.get(k) == v for k, v in settings.items()):
                continue  # resumable: this neuron's report is done
        report = explain_lm_neuron(lm, layer, n, train, held, cfg.mae, cfg.backend, None, cfg.corpus, progress=False,
                                   pool=cfg.pool, train_acts=_split_rows(train_acts[layer][:, n], train),
                                   heldout_acts=_split_rows(held_acts[layer][:, n], held))
        write_neuron(report, out)
        log.info("L%d N%d: F1 N2G %.3f, minimal %.3f, raw %.3f, pivot %.3f (%s s)", layer, n,
                 report["fidelity"]["n2g"]["f1"], report["fidelity"].get("n2g_mae_only", {}).get("f1", np.nan),
                 report["fidelity"]["raw_examples"]["f1"], report["fidelity"]["pivot_token"]["f1"], report["seconds"])
    summary = study_summary(out, seconds=round(time.perf_counter() - t0, 1), command=command)
    write_study(summary, out)
    return summary


# -------------------------------------------------------------------------------------- summary

def _iv(values: np.ndarray, weights: np.ndarray, level: float = 0.95) -> dict[str, float]:
    low, high = percentile_interval(bootstrap_means(values, weights), level)
    return {"mean": round(float(np.mean(values)), 4), "low": round(float(low), 4), "high": round(float(high), 4)}


def compare_predictors(scores: dict[str, np.ndarray], n_boot: int = 2000, seed: int = 0) -> dict:
    """Distributions per predictor and paired F1 comparisons over the same neurons.

    :param scores: ``{predictor: [n_neurons, 3]}`` precision / recall / F1 per neuron (NaN-free).
    """
    n = len(next(iter(scores.values())))
    w = bootstrap_weights(n, n_boot, seed)
    dist = {}
    for name, s in scores.items():
        dist[name] = {m: {**_iv(s[:, i], w), "median": round(float(np.median(s[:, i])), 4),
                          "q1": round(float(np.percentile(s[:, i], 25)), 4),
                          "q3": round(float(np.percentile(s[:, i], 75)), 4)} for i, m in enumerate(METRICS)}
    paired = {}
    for a, b in COMPARISONS:
        if a not in scores or b not in scores:
            continue
        c = paired_difference(scores[a][:, 2], scores[b][:, 2], n_boot=n_boot, seed=seed)
        paired[f"{a} - {b}"] = {"mean": round(c["mean_diff"], 4), "low": round(c["ci_low"], 4),
                                "high": round(c["ci_high"], 4), "wilcoxon_p": float(f"{c['wilcoxon_p']:.3g}"),
                                "wins": c["wins"], "ties": c["ties"], "losses": c["losses"]}
    return {"n_neurons": n, "n_boot": n_boot, "distributions": dist, "paired_f1": paired}


def study_summary(out_dir: str | Path, seconds: float | None = None, command: str | None = None) -> dict:
    """The study's numbers, from ``selection.json`` and the neuron reports in `out_dir`."""
    out = Path(out_dir)
    selection = json.loads((out / "selection.json").read_text())
    rows = []
    for layer, info in selection["layers"].items():
        for n in info["neurons"]:
            path = out / f"L{layer}_N{n}.json"
            if not path.is_file():
                continue
            r = json.loads(path.read_text())
            f = r["fidelity"]
            rows.append({"layer": int(layer), "neuron": n, "n_firing_heldout": f["n2g"]["n_firing"],
                         "mae_length": r["summary"]["mean_mae_length"],
                         "original_length": r["summary"]["mean_original_length"],
                         "n_positive": r["summary"]["n_positive"], "n_negative": r["summary"]["n_negative"],
                         "seconds": r.get("seconds"),
                         **{f"{p}_{m}": f[p][m] for p in PREDICTORS if p in f for m in METRICS}})
    n_chosen = sum(len(v["neurons"]) for v in selection["layers"].values())
    result = {"model": selection["model"], "description": selection["description"], "rule": selection["rule"],
              "n_chosen": n_chosen, "n_explained": len(rows), "n_heldout_tokens": selection["n_heldout_tokens"],
              "seconds": seconds, "command": command, "neurons": rows}
    predictors = [p for p in PREDICTORS if rows and all(f"{p}_f1" in r for r in rows)]
    if len(rows) >= 2:
        firing = np.array([r["n_firing_heldout"] for r in rows])
        result["heldout_firing_tokens"] = {"min": int(firing.min()), "median": float(np.median(firing)),
                                           "max": int(firing.max())}
        result.update(compare_predictors({p: np.array([[r[f"{p}_{m}"] for m in METRICS] for r in rows])
                                          for p in predictors}))
    return result


def _ci(iv: dict) -> str:
    return f"{iv['mean']:+.3f} [{iv['low']:+.3f}, {iv['high']:+.3f}]"


def study_markdown(s: dict) -> str:
    """``study.md``, generated from the summary."""
    lines = [f"# Minimal activating examples at scale: {s['model']}", ""]
    if s.get("description"):
        lines += [f"Model: {s['description']}.", ""]
    lines += [f"Neurons: {s['rule']}. {s['n_explained']} of {s['n_chosen']} chosen neurons explained; held-out text "
              f"{s['n_heldout_tokens']} tokens"
              + (f", firing tokens per neuron: min {s['heldout_firing_tokens']['min']}, median "
                 f"{s['heldout_firing_tokens']['median']:g}, max {s['heldout_firing_tokens']['max']}"
                 if "heldout_firing_tokens" in s else "")
              + (f"; {s['seconds']} s in all" if s.get("seconds") else "") + ".", ""]
    if s.get("command"):
        lines += [f"`{s['command']}`", ""]
    if "distributions" in s:
        lines += [f"## Held-out fidelity per predictor ({s['n_neurons']} neurons; mean [95% bootstrap interval over "
                  f"neurons], median (quartiles))", "", "| predictor | precision | recall | F1 |", "|---|---|---|---|"]
        for p, d in s["distributions"].items():
            lines.append(f"| {PREDICTORS[p]} | " + " | ".join(
                f"{d[m]['mean']:.3f} [{d[m]['low']:.3f}, {d[m]['high']:.3f}], {d[m]['median']:.2f} "
                f"({d[m]['q1']:.2f}-{d[m]['q3']:.2f})" for m in METRICS) + " |")
        lines += ["", "## Paired F1 differences (same neurons)", "",
                  "| comparison | mean difference [95% CI] | Wilcoxon p | wins / ties / losses |", "|---|---|---|---|"]
        for k, v in s["paired_f1"].items():
            a, b = k.split(" - ")
            lines.append(f"| {PREDICTORS[a]} - {PREDICTORS[b]} | {_ci(v)} | {v['wilcoxon_p']:.3g} | "
                         f"{v['wins']} / {v['ties']} / {v['losses']} |")
    lines += ["", "## Per neuron", "", "| neuron | firing tokens (held-out) | length -> MAE | +/- variants | "
              + " | ".join(f"{PREDICTORS[p]} P/R/F1" for p in PREDICTORS) + " |", "|---|---|---|---|" + "---|" * 4]
    for r in s["neurons"]:
        cells = [f"{r[f'{p}_precision']:.2f}/{r[f'{p}_recall']:.2f}/{r[f'{p}_f1']:.2f}" if f"{p}_f1" in r else "-"
                 for p in PREDICTORS]
        lines.append(f"| L{r['layer']} N{r['neuron']} | {r['n_firing_heldout']} | {r['original_length']:.1f} -> "
                     f"{r['mae_length']:.1f} | {r['n_positive']}/{r['n_negative']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    preds = [p for p in PREDICTORS if s["neurons"] and all(f"{p}_f1" in r for r in s["neurons"])]
    f1 = np.array([[r[f"{p}_f1"] for p in preds] for r in s["neurons"]])
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    x = np.arange(len(preds))
    for row in f1:
        ax.plot(x, row, color="0.75", lw=0.6, zorder=1)
    ax.boxplot(f1, positions=x, widths=0.35, showfliers=False, zorder=2)
    ax.scatter(np.repeat(x[None], len(f1), 0).ravel(), f1.ravel(), s=8, color="tab:blue", zorder=3)
    ax.set_xticks(x, [PREDICTORS[p].replace(" + ", "\n+ ") for p in preds], fontsize=8)
    ax.set_ylabel("held-out F1 of firing")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(f"{s['model']}: {len(f1)} neurons, one line per neuron", fontsize=9)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=120)


def write_study(summary: dict, out_dir: str | Path) -> list[Path]:
    """Write ``study.json``, ``study.md`` and ``f1_by_predictor.png`` (the plot needs at least one neuron)."""
    out = Path(out_dir)
    paths = [atomic_write_json(summary, out / "study.json"), atomic_write_text(study_markdown(summary), out / "study.md")]
    if summary["neurons"]:
        _plot(summary, out / "f1_by_predictor.png")
        paths.append(out / "f1_by_predictor.png")
    return paths
