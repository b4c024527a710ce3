"""Linear probes on LM activations through `probes/`, unchanged.

The demonstration concept is "the country of the subject's city", read from the residual
stream at the last subject token, layer by layer. Rows are (subject, context) prompts;
groups are subjects, so no subject straddles the train/test split and a probe must
generalise to unseen subjects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lm_interp.corpus import FactPrompt, render
from lm_interp.hooks import activations_at, hook_name, hooked_module, subject_positions
from lm_interp.world import RELATIONS, World
from probes.controls import majority_baseline
from probes.linear import fit_probe, grouped_split


@dataclass(frozen=True)
class ProbeRow:
    """One layer's held-out probe scores."""

    layer: str
    accuracy: float
    ci_low: float
    ci_high: float
    majority: float
    n_train: int
    n_test: int


def tiny_probe_contexts() -> tuple[str, ...]:
    """Contexts for the synthetic world's landmarks and cities: training templates that start with the subject
    or mention it, plus distractor sentences (the words after the subject do not matter to its last token)."""
    from lm_interp.corpus import DISTRACTOR_TEMPLATES_TRAIN

    return RELATIONS["country"].train_templates + RELATIONS["essence"].train_templates + DISTRACTOR_TEMPLATES_TRAIN


def subject_prompts(world: World, contexts: Sequence[str], kinds: Sequence[str] = ("landmark", "city")) -> list[FactPrompt]:
    """One prompt per (subject of `kinds`, context); the target is the subject's country."""
    return [FactPrompt(render(ctx, s), s, "country", world.country_of(s), f"context{i}", "probe", "probe")
            for s in (x for k in kinds for x in world.subjects(k)) for i, ctx in enumerate(contexts)]


def probe_layers(model, prompts: Sequence[FactPrompt], layers: Sequence[int] | None = None, seed: int = 0,
                 n_boot: int = 200, batch_size: int = 32, progress: bool = False) -> list[ProbeRow]:
    """Logistic probes for each prompt's target (the country) at the last subject token, per layer.

    Layers: the embedding (``blocks.0.hook_resid_pre``) and ``blocks.L.hook_resid_post``.
    """
    n_layers = hooked_module(model).cfg.n_layers
    layers = list(range(n_layers)) if layers is None else list(layers)
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad:
        raise ValueError(f"layers {bad} out of range; the model has {n_layers}")
    names = [hook_name("resid_pre", 0)] + [hook_name("resid_post", layer) for layer in layers]
    positions = subject_positions(model, prompts)
    acts = activations_at(model, [p.text for p in prompts], names, positions, batch_size, progress)
    labels = np.array([p.target for p in prompts])
    groups = np.array([p.subject for p in prompts])
    split = grouped_split(groups, seed=seed)
    base = majority_baseline(labels, "categorical", *split)
    rows = []
    for name in names:
        score = fit_probe(acts[name], labels, groups, "categorical", "logistic", split=split, seed=seed, n_boot=n_boot)
        lo, hi = score.ci.get("accuracy", (float("nan"), float("nan")))
        rows.append(ProbeRow(name, score["accuracy"], lo, hi, base["accuracy"], score.n_train, score.n_test))
    return rows
