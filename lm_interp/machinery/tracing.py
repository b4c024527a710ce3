"""Causal tracing (Meng et al. 2022): where along layers and positions is a fact recalled?

Corrupt the subject tokens' input embeddings (``hook_embed``) with Gaussian noise (std =
`noise_scale` × the std of the embedding matrix), then restore one clean block output
(``blocks.L.hook_resid_post``, the residual stream after block L) at one position and measure
how much of P(true object) comes back. Hooks are the TransformerBridge's hook points, like
every other intervention here. Grids are ``[layer, position]``; `causal_trace_cases` averages
them over facts by position class (first / middle / last subject token, first after the
subject, later tokens, last token).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from lm_interp.machinery.hooks import hook_name, hooked_module
from lm_interp.models.tokens import prompt_ids, target_ids

POSITION_CLASSES = ("first subject", "middle subject", "last subject", "first after", "further", "last")
EMBED_HOOK = "hook_embed"


def _subject_span(lm, text: str, subject: str) -> tuple[int, int]:
    """Token indices [start, end) of the subject in `text` (BOS convention included)."""
    start = text.lower().find(subject.lower())
    if start < 0:
        raise ValueError(f"subject {subject!r} not found in {text!r}")
    tok, bos = lm.tokenizer, lm.prepend_bos
    head = len(tok(text[:start].rstrip(), add_special_tokens=False)["input_ids"]) if start else 0
    end = len(tok(text[:start + len(subject)], add_special_tokens=False)["input_ids"])
    return head + int(bos), end + int(bos)


def causal_trace(lm, prompt: str, subject: str, target: str, n_samples: int = 5, noise_scale: float = 3.0,
                 seed: int = 0) -> dict:
    """Restoration grid of one fact: ``{"p_clean", "p_corrupt", "p_restored" [layer, pos], "tokens", "subject"}``."""
    module = hooked_module(lm)
    n_layers = int(module.cfg.n_layers)
    resid = [hook_name("resid_post", layer) for layer in range(n_layers)]
    ids = prompt_ids(lm.tokenizer, prompt, lm.prepend_bos)
    s0, s1 = _subject_span(lm, prompt, subject)
    tgt = target_ids(lm.tokenizer, target)[0]
    n_pos = len(ids)
    w_e = module.W_E.detach()
    std = float(w_e.std()) * noise_scale
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(n_samples, s1 - s0, w_e.shape[1], generator=gen) * std

    tokens = torch.tensor([ids])
    with torch.no_grad():
        logits, cache = module.run_with_cache(tokens, names_filter=resid)
        p_clean = float(logits[0, -1].softmax(-1)[tgt])
    clean = [cache[name].detach() for name in resid]

    def noisy_run(rows: int, restore: tuple[int, torch.Tensor] | None) -> torch.Tensor:
        reps = rows // n_samples

        def add_noise(act: torch.Tensor, hook=None) -> torch.Tensor:  # noqa: ARG001
            act = act.clone()
            act[:, s0:s1] += noise.repeat(reps, 1, 1).to(act.dtype)
            return act

        hooks = [(EMBED_HOOK, add_noise)]
        if restore is not None:
            layer, positions = restore

            def put_back(act: torch.Tensor, hook=None) -> torch.Tensor:  # noqa: ARG001
                act = act.clone()
                idx = positions.repeat_interleave(n_samples)
                act[torch.arange(rows), idx] = clean[layer][0, idx]
                return act

            hooks.append((resid[layer], put_back))
        with torch.no_grad():
            out = module.run_with_hooks(tokens.repeat(rows, 1), fwd_hooks=hooks)
        return out[:, -1].float().softmax(-1)[:, tgt]

    p_corrupt = float(noisy_run(n_samples, None).mean())
    grid = np.zeros((n_layers, n_pos))
    positions = torch.arange(n_pos)
    for layer in range(n_layers):
        probs = noisy_run(n_pos * n_samples, (layer, positions))
        grid[layer] = probs.view(n_pos, n_samples).mean(1).numpy()
    return {"p_clean": p_clean, "p_corrupt": p_corrupt, "p_restored": grid.tolist(), "subject_span": [s0, s1],
            "tokens": lm.tokenizer.convert_ids_to_tokens(ids), "prompt": prompt, "target": target}


def position_classes(n_pos: int, s0: int, s1: int) -> list[int]:
    """The `POSITION_CLASSES` index of every position of a prompt with subject tokens [s0, s1)."""
    out = []
    for t in range(n_pos):
        if t == n_pos - 1:
            out.append(5)
        elif s0 <= t < s1:
            out.append(0 if t == s0 else (2 if t == s1 - 1 else 1))
        elif t == s1:
            out.append(3)
        elif t > s1:
            out.append(4)
        else:
            out.append(-1)  # before the subject: not shown
    return out


def causal_trace_cases(lm, cases: Sequence, n_samples: int = 5, seed: int = 0, progress: bool = True) -> dict:
    """Mean indirect effect ``P(restored) − P(corrupt)`` by (position class, layer) over `cases`' true facts."""
    items = list(cases)
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="causal tracing", unit="fact", leave=False)
    traces, sums, counts = [], None, None
    for case in items:
        r = case.request
        tr = causal_trace(lm, r.prompt, r.subject, r.target_true, n_samples=n_samples, seed=seed)
        grid = np.asarray(tr["p_restored"]) - tr["p_corrupt"]
        n_layers, n_pos = grid.shape
        if sums is None:
            sums, counts = np.zeros((len(POSITION_CLASSES), n_layers)), np.zeros(len(POSITION_CLASSES))
        for t, c in enumerate(position_classes(n_pos, *tr["subject_span"])):
            if c >= 0:
                sums[c] += grid[:, t]
                counts[c] += 1
        traces.append(tr)
    mean = sums / np.maximum(counts, 1)[:, None]
    return {"position_classes": list(POSITION_CLASSES), "effect": mean.tolist(), "traces": traces,
            "noise_scale": 3.0, "n_samples": n_samples}


def plot_trace(trace: dict, path, title: str) -> None:
    """Heatmap of the mean indirect effect (position class x layer), written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common.atomic import atomic_save_figure

    effect = np.asarray(trace["effect"])
    fig, ax = plt.subplots(figsize=(max(5, 0.3 * effect.shape[1] + 2), 3.2))
    im = ax.imshow(effect, aspect="auto", cmap="Purples")
    ax.set_yticks(range(len(trace["position_classes"])), trace["position_classes"])
    ax.set_xlabel("layer (block output restored)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="P(true) restored − corrupted")
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=120)
