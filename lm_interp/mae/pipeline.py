"""One neuron end to end: max-activating examples -> MAEs -> substitution variants -> N2G graph -> fidelity.

Also `scan_layer`, which ranks the neurons of a layer by how well a quick N2G graph (MAEs,
no substitutions) predicts their firing on held-out text. Everything runs on `ActivationFn`s
(or precomputed activations), so it works for planted neurons and real models alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from lm_interp.mae.examples import (
    MAE,
    ActivationFn,
    Example,
    max_activating_examples,
    measure,
    minimal_activating_examples,
)
from lm_interp.mae.n2g import NeuronGraph, Pattern, fidelity, pattern_from
from lm_interp.mae.substitutes import SubstitutionBackend, substitution_variants

log = logging.getLogger(__name__)


@dataclass
class MAEConfig:
    """Hyper-parameters (defaults follow N2G, with exhaustive 1-token pruning steps).

    :param k: max-activating examples; :param fraction: pruning keeps >= fraction x the original pivot activation;
    :param step / max_context: pruning step and the longest context tried (None: the whole prefix);
    :param drop_single: also remove single tokens before the pivot;
    :param importance_threshold: saliency for a token to be important (substituted, exact in the graph);
    :param n_substitutes: substitutes per important token; :param threshold: Positive if the pivot keeps
        >= threshold x the original activation; :param firing: normalised activation that counts as firing.
    """

    k: int = 20
    fraction: float = 0.5
    step: int = 1
    max_context: int | None = None
    drop_single: bool = False
    importance_threshold: float = 0.75
    n_substitutes: int = 5
    threshold: float = 0.5
    firing: float = 0.5


@dataclass
class NeuronExplanation:
    """Everything measured for one neuron; `fidelity` maps predictor name -> P/R/F1 dict."""

    maes: list[MAE]
    neuron_max: float
    fidelity: dict[str, dict] = field(default_factory=dict)
    graph: NeuronGraph | None = None
    meta: dict = field(default_factory=dict)


def graph_patterns(maes: Sequence[MAE], neuron_max: float, importance_threshold: float = 0.75,
                   with_variants: bool = True) -> list[Pattern]:
    """N2G patterns from the MAEs and their Positive variants (Negatives are left out)."""
    pats = []
    for m in maes:
        pats.append(pattern_from(m.pruned.tokens, m.importance, m.pruned.activation / neuron_max, importance_threshold))
        if with_variants:
            for v in m.variants:
                if v.label == "Positive":
                    pats.append(pattern_from(v.tokens, m.importance, v.activation / neuron_max, importance_threshold))
    return pats


def baseline_patterns(examples: Sequence[Example], neuron_max: float) -> dict[str, list[Pattern]]:
    """Baselines: the raw max-activating examples (whole prefix up to the pivot, exact) and their pivot tokens alone."""
    raw = [pattern_from(e.tokens[:e.pivot + 1], None, e.max_activation / neuron_max) for e in examples]
    pivot = [pattern_from([e.tokens[e.pivot]], None, e.max_activation / neuron_max) for e in examples]
    return {"raw_examples": raw, "pivot_token": pivot}


def explain_neuron(activation_fn: ActivationFn, train_windows: Sequence[Sequence[int]],
                   heldout_windows: Sequence[Sequence[int]], mask_id: int,
                   backend: SubstitutionBackend | None = None, config: MAEConfig | None = None,
                   train_acts: Sequence[np.ndarray] | None = None, heldout_acts: Sequence[np.ndarray] | None = None,
                   progress: bool = False) -> NeuronExplanation:
    """Max-activating examples, MAEs, substitution variants (if `backend`), the N2G graph and its fidelity.

    Fidelity is measured on `heldout_windows` (disjoint from `train_windows`) with activations
    normalised by the neuron's max over the training windows, for the N2G graph and the
    baselines ``raw_examples`` and ``pivot_token``.
    """
    cfg = config or MAEConfig()
    examples = max_activating_examples(activation_fn, train_windows, cfg.k, activations=train_acts, progress=progress)
    neuron_max = examples[0].max_activation
    if neuron_max <= 0:
        raise ValueError(f"the neuron never activates positively on the corpus (max {neuron_max:.4g}); "
                         "nothing to explain")
    maes = minimal_activating_examples(activation_fn, examples, mask_id, cfg.fraction, cfg.step, cfg.max_context,
                                       cfg.drop_single, progress)
    if backend is not None:
        it = maes
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(maes, desc="substitutes", unit="MAE", leave=False)
        for m in it:
            substitution_variants(activation_fn, m, backend, cfg.n_substitutes, cfg.importance_threshold,
                                  cfg.threshold)
    held_acts = list(heldout_acts) if heldout_acts is not None else measure(activation_fn, heldout_windows)
    graph = NeuronGraph.from_patterns(graph_patterns(maes, neuron_max, cfg.importance_threshold))
    scores = {"n2g": fidelity(graph, heldout_windows, held_acts, neuron_max, cfg.firing)}
    if backend is not None:
        mae_only = NeuronGraph.from_patterns(graph_patterns(maes, neuron_max, cfg.importance_threshold, False))
        scores["n2g_mae_only"] = fidelity(mae_only, heldout_windows, held_acts, neuron_max, cfg.firing)
    for name, pats in baseline_patterns(examples, neuron_max).items():
        scores[name] = fidelity(NeuronGraph.from_patterns(pats), heldout_windows, held_acts, neuron_max, cfg.firing)
    return NeuronExplanation(maes, neuron_max, scores, graph)


def scan_layer(layer_acts: Callable[[Sequence[Sequence[int]]], list[np.ndarray]], n_neurons: int,
               train_windows: Sequence[Sequence[int]], heldout_windows: Sequence[Sequence[int]], mask_id: int,
               neuron_fn: Callable[[int], ActivationFn], config: MAEConfig | None = None, n_candidates: int = 24,
               min_firing: int = 5, progress: bool = False) -> list[dict]:
    """Rank neurons of a layer by the held-out F1 of a quick N2G graph (MAEs only), best first.

    Candidates: the `n_candidates` neurons that fire (>= half their max) on the fewest
    training tokens while firing on at least `min_firing` training and `min_firing` held-out
    tokens (sparse but not one-off neurons are the likely interpretable ones); each is then
    explained without substitutions.

    :param layer_acts: token lists -> ``[len, n_neurons]`` arrays; :param neuron_fn: neuron -> `ActivationFn`.
    """
    cfg = config or MAEConfig()
    train = layer_acts(train_windows)
    held = layer_acts(heldout_windows)
    flat_train, flat_held = np.concatenate(train), np.concatenate(held)
    maxima = flat_train.max(0)
    safe = np.where(maxima > 0, maxima, np.inf)
    rate = (flat_train >= 0.5 * safe).mean(0)
    train_firing = (flat_train >= 0.5 * safe).sum(0)
    held_firing = (flat_held >= 0.5 * safe).sum(0)
    ok = [n for n in range(n_neurons) if maxima[n] > 0 and min(train_firing[n], held_firing[n]) >= min_firing]
    ok.sort(key=lambda n: (rate[n], n))
    candidates = ok[:n_candidates]
    rows = []
    it = candidates
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(candidates, desc="scan", unit="neuron", leave=False)
    for n in it:
        exp = explain_neuron(neuron_fn(n), train_windows, heldout_windows, mask_id, None, cfg,
                             train_acts=[a[:, n] for a in train], heldout_acts=[a[:, n] for a in held])
        s = exp.fidelity["n2g"]
        rows.append({"neuron": int(n), "f1": s["f1"], "precision": s["precision"], "recall": s["recall"],
                     "firing_rate": float(rate[n]), "n_firing_heldout": int(held_firing[n]), "max_activation": float(maxima[n]),
                     "baseline_f1": exp.fidelity["raw_examples"]["f1"],
                     "pivot_token_f1": exp.fidelity["pivot_token"]["f1"]})
    rows.sort(key=lambda r: (-r["f1"], r["neuron"]))
    return rows
