"""Hook names and cached runs over a TransformerBridge (or any TransformerLens hooked module).

Names follow TransformerLens (the bridge exposes them on the raw HF weights, no
compatibility mode needed):

==============  ===================================  ==========================
kind            hook name                            shape
==============  ===================================  ==========================
resid_pre       ``blocks.L.hook_resid_pre``          ``[batch, pos, d_model]``
resid_mid       ``blocks.L.hook_resid_mid``          ``[batch, pos, d_model]``
resid_post      ``blocks.L.hook_resid_post``         ``[batch, pos, d_model]``
attn_out        ``blocks.L.hook_attn_out``           ``[batch, pos, d_model]``
mlp_out         ``blocks.L.hook_mlp_out``            ``[batch, pos, d_model]``
q / k / v / z   ``blocks.L.attn.hook_{q,k,v,z}``     ``[batch, pos, head, d_head]``
result          ``blocks.L.attn.hook_result``        ``[batch, pos, head, d_model]`` (per-head output)
pattern         ``blocks.L.attn.hook_pattern``       ``[batch, head, query, key]``
attn_scores     ``blocks.L.attn.hook_attn_scores``   ``[batch, head, query, key]``
mlp_pre         ``blocks.L.mlp.hook_pre``            ``[batch, pos, d_mlp]``
mlp_post        ``blocks.L.mlp.hook_post``           ``[batch, pos, d_mlp]`` (after the non-linearity)
==============  ===================================  ==========================

``result`` needs ``model.set_use_attn_result(True)`` on a bridge (`run_with_cache` here
switches it on when asked for). With grouped-query attention (SmolLM2) ``k``/``v`` have
the KV-head count on their head axis.
"""

from __future__ import annotations

import difflib
import re
from typing import Callable, Sequence

import numpy as np
import torch

from lm_interp.models.tokenizer import TokenBatch, encode

HOOK_KINDS: dict[str, str] = {
    "resid_pre": "blocks.{layer}.hook_resid_pre",
    "resid_mid": "blocks.{layer}.hook_resid_mid",
    "resid_post": "blocks.{layer}.hook_resid_post",
    "attn_out": "blocks.{layer}.hook_attn_out",
    "mlp_out": "blocks.{layer}.hook_mlp_out",
    "q": "blocks.{layer}.attn.hook_q",
    "k": "blocks.{layer}.attn.hook_k",
    "v": "blocks.{layer}.attn.hook_v",
    "z": "blocks.{layer}.attn.hook_z",
    "result": "blocks.{layer}.attn.hook_result",
    "pattern": "blocks.{layer}.attn.hook_pattern",
    "attn_scores": "blocks.{layer}.attn.hook_attn_scores",
    "mlp_pre": "blocks.{layer}.mlp.hook_pre",
    "mlp_post": "blocks.{layer}.mlp.hook_post",
}
# (position axis, head axis) of each hook's tensor; None: no head axis
_AXES: dict[str, tuple[int, int | None]] = {
    "q": (1, 2), "k": (1, 2), "v": (1, 2), "z": (1, 2), "result": (1, 2),
    "pattern": (2, 1), "attn_scores": (2, 1),
}


def hook_name(kind: str, layer: int) -> str:
    """The hook name of `kind` (a key of `HOOK_KINDS`) in block `layer`."""
    if kind not in HOOK_KINDS:
        raise ValueError(f"unknown hook kind {kind!r}; kinds: {list(HOOK_KINDS)}")
    if not isinstance(layer, (int, np.integer)) or layer < 0:
        raise ValueError(f"layer must be a non-negative int, got {layer!r}")
    return HOOK_KINDS[kind].format(layer=int(layer))


def hook_kind(name: str) -> str:
    """The kind of a hook name (``blocks.3.attn.hook_z`` -> ``z``); ``other`` if not a block hook."""
    for kind, template in HOOK_KINDS.items():
        if re.fullmatch(re.escape(template).replace(r"\{layer\}", r"\d+"), name):
            return kind
    return "other"


def hook_layer(name: str) -> int | None:
    """The block index in a hook name, or None."""
    m = re.match(r"blocks\.(\d+)\.", name)
    return int(m.group(1)) if m else None


def axes(name: str) -> tuple[int, int | None]:
    """(position axis, head axis or None) of the tensor at hook `name`."""
    return _AXES.get(hook_kind(name), (1, None))


def hooked_module(model):
    """The hooked module of a `LoadedLM` (or the argument itself)."""
    return getattr(model, "model", model) if hasattr(model, "tokenizer") and hasattr(model, "spec") else model


def check_hook_names(model, names: Sequence[str]) -> None:
    """Raise ValueError naming close matches if any of `names` is not a hook of `model`."""
    module = hooked_module(model)
    available = set(module.hook_dict)
    if any(hook_kind(n) == "result" for n in names) and hasattr(module, "set_use_attn_result"):
        available |= {n for n in names if hook_kind(n) == "result"
                      and hook_layer(n) is not None and hook_layer(n) < module.cfg.n_layers}
    bad = [n for n in names if n not in available]
    if bad:
        hints = {n: difflib.get_close_matches(n, available, n=3) for n in bad}
        raise ValueError(f"unknown hook names {bad}; closest: {hints}; kinds: {list(HOOK_KINDS)} "
                         f"(use lm_interp.machinery.hooks.hook_name(kind, layer))")


def as_batch(model, inputs) -> TokenBatch:
    """A `TokenBatch` from texts (encoded with the model's BOS convention) or a batch as is."""
    if isinstance(inputs, TokenBatch):
        return inputs
    if isinstance(inputs, torch.Tensor):
        return TokenBatch(inputs, torch.full((len(inputs),), inputs.shape[1], dtype=torch.long))
    if not hasattr(model, "tokenizer"):
        raise ValueError("texts need a LoadedLM (with a tokenizer); pass a TokenBatch for a bare hooked module")
    return encode(model.tokenizer, list(inputs), model.prepend_bos)


def run_with_cache(model, inputs, names: Sequence[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor], TokenBatch]:
    """One forward pass caching the hooks `names`: ``(logits, {name: tensor}, batch)``, no gradients."""
    module = hooked_module(model)
    names = list(names)
    check_hook_names(module, names)
    batch = as_batch(model, inputs)
    wants_result = any(hook_kind(n) == "result" for n in names) and hasattr(module, "set_use_attn_result")
    if wants_result:
        module.set_use_attn_result(True)
    try:
        with torch.no_grad():
            logits, cache = module.run_with_cache(batch.tokens, names_filter=names)
    finally:
        if wants_result:
            module.set_use_attn_result(False)
    return logits, {n: cache[n] for n in names}, batch


def gather_positions(acts: torch.Tensor, positions: torch.Tensor, pos_axis: int = 1) -> torch.Tensor:
    """Pick one position per row: ``[batch, ..., pos, ...] -> [batch, ...]`` along `pos_axis`."""
    positions = positions.to(acts.device).long()
    moved = acts.movedim(pos_axis, 1)
    return moved[torch.arange(len(moved)), positions]


def activations_at(model, texts: Sequence[str], names: Sequence[str],
                   positions: str | Sequence[int] | Callable[[TokenBatch], torch.Tensor] = "last",
                   batch_size: int = 32, progress: bool = False) -> dict[str, np.ndarray]:
    """Activations of hooks `names` at one position per text: ``{name: [N, ...]}`` as float32 arrays.

    :param positions: ``"last"`` (last real token), one index per text (BOS included when
        the model prepends it), or a function of each chunk's `TokenBatch`.
    """
    texts = list(texts)
    if not isinstance(positions, str) and not callable(positions) and len(positions) != len(texts):
        raise ValueError(f"{len(positions)} positions for {len(texts)} texts")
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in names}
    starts = range(0, len(texts), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="activations", unit="batch", leave=False)
    for start in starts:
        part = texts[start:start + batch_size]
        _, cache, batch = run_with_cache(model, part, names)
        if isinstance(positions, str):
            if positions != "last":
                raise ValueError(f"positions must be 'last', a list of indices or a function, got {positions!r}")
            pos = batch.last_positions
        elif callable(positions):
            pos = positions(batch)
        else:
            pos = torch.as_tensor(list(positions[start:start + batch_size]))
        if (pos >= batch.lengths).any() or (pos < 0).any():
            raise ValueError(f"positions {pos.tolist()} outside the prompts (lengths {batch.lengths.tolist()})")
        for n in names:
            chunks[n].append(gather_positions(cache[n], pos, axes(n)[0]).float().cpu().numpy())
    return {n: np.concatenate(v) for n, v in chunks.items()}


def lm_activation_fn(model, names: Sequence[str], positions: str = "last",
                     batch_size: int = 32) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """An activation function in `probes.activations`' sense: array of texts -> ``{name: [N, ...]}``."""
    def activations(inputs: np.ndarray) -> dict[str, np.ndarray]:
        return activations_at(model, [str(t) for t in np.asarray(inputs).ravel()], names, positions, batch_size)

    return activations
