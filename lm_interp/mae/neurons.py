"""Adapters from a loaded LM to the MAE machinery: neuron activation functions, mask tokens, corpora.

`LayerActivations(lm, layer)` runs the model on content-token lists (adding the model's BOS
itself, so pruning never touches it) and reads ``blocks.L.mlp.hook_post`` (MLP neurons after
the non-linearity); `.neuron(n)` is an `ActivationFn` for `lm_interp.mae.examples`. `corpus_token_lists`
gives text from the generated corpus, from the model's own samples, or from a text file,
in two disjoint splits (``train`` for examples, ``heldout`` for fidelity).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lm_interp.machinery.hooks import hook_name, hooked_module, run_with_cache
from lm_interp.models.tokenizer import TokenBatch
from lm_interp.models.tokens import sample_texts

log = logging.getLogger(__name__)


def model_dims(lm) -> tuple[int, int, int]:
    """(n_layers, d_mlp, n_ctx) of a `LoadedLM`."""
    cfg = hooked_module(lm).cfg
    d_mlp = getattr(cfg, "d_mlp", None) or 4 * cfg.d_model
    return int(cfg.n_layers), int(d_mlp), int(cfg.n_ctx)


def check_neuron(lm, layer: int, neuron: int | None = None) -> None:
    """Raise ValueError naming the valid range if `layer` / `neuron` is out of range for `lm`."""
    n_layers, d_mlp, _ = model_dims(lm)
    if not isinstance(layer, (int, np.integer)) or not 0 <= layer < n_layers:
        raise ValueError(f"layer {layer!r} out of range: {lm.name} has layers 0..{n_layers - 1}")
    if neuron is not None and (not isinstance(neuron, (int, np.integer)) or not 0 <= neuron < d_mlp):
        raise ValueError(f"neuron {neuron!r} out of range: layer {layer} of {lm.name} has neurons 0..{d_mlp - 1}")


class LayerActivations:
    """MLP-neuron activations of one layer (``blocks.L.mlp.hook_post``) on content-token lists.

    :param lm: a `LoadedLM`; :param layer: block index; :param batch_size: lists per forward pass.
    """

    def __init__(self, lm, layer: int, batch_size: int = 64):
        check_neuron(lm, layer)
        self.lm, self.layer, self.batch_size = lm, int(layer), batch_size
        self.hook = hook_name("mlp_post", layer)
        self.n_layers, self.d_mlp, self.n_ctx = model_dims(lm)
        self.bos = [lm.tokenizer.bos_token_id] if lm.prepend_bos else []
        self.max_tokens = self.n_ctx - len(self.bos)

    def __call__(self, token_lists: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """One ``[len(list), d_mlp]`` array per list (content positions only)."""
        out: list[np.ndarray] = []
        pad = self.lm.tokenizer.pad_token_id if self.lm.tokenizer.pad_token_id is not None else 0
        for s in range(0, len(token_lists), self.batch_size):
            rows = [self.bos + [int(t) for t in r] for r in token_lists[s:s + self.batch_size]]
            too_long = [len(r) for r in rows if len(r) > self.n_ctx]
            if too_long:
                raise ValueError(f"token lists of {max(too_long)} tokens (with BOS) exceed the context of "
                                 f"{self.n_ctx}; use windows of at most {self.max_tokens} tokens")
            width = max(len(r) for r in rows)
            tokens = torch.full((len(rows), width), pad, dtype=torch.long)
            for i, r in enumerate(rows):
                tokens[i, :len(r)] = torch.tensor(r, dtype=torch.long)
            lengths = torch.tensor([len(r) for r in rows])
            _, cache, _ = run_with_cache(self.lm, TokenBatch(tokens, lengths), [self.hook])
            acts = cache[self.hook].float().cpu().numpy()
            for i, r in enumerate(rows):
                out.append(acts[i, len(self.bos):len(r)])
        return out

    def neuron(self, neuron: int):
        """An `ActivationFn` for one neuron of this layer."""
        check_neuron(self.lm, self.layer, neuron)

        def activation_fn(token_lists: Sequence[Sequence[int]]) -> list[np.ndarray]:
            return [a[:, neuron] for a in self(token_lists)]

        return activation_fn


def neuron_activation_fn(lm, layer: int, neuron: int, batch_size: int = 64):
    """The `ActivationFn` of neuron `neuron` at ``blocks.{layer}.mlp.hook_post``."""
    return LayerActivations(lm, layer, batch_size).neuron(neuron)


def default_mask_id(tokenizer) -> int:
    """A neutral token to mask with: pad, else unk, else eos (N2G uses the padding token)."""
    for tid in (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    raise ValueError("the tokenizer has no pad, unk or eos token to mask with; pass mask_id explicitly")


def corpus_token_lists(lm, source: str, split: str, n: int, seed: int = 0, length: int = 24) -> list[list[int]]:
    """Documents as content-token lists from `source` in `split` (``train`` or ``heldout``, disjoint).

    :param source: ``generated`` (the synthetic corpus; `split` picks its random stream and
        held-out templates), ``samples`` (the model's own text; the split picks the seed), or a
        text file path (one document per non-empty line; every 5th line is held out).
    :param n: documents (sentences / samples / lines at most).
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"unknown split {split!r}; splits: train, heldout")
    tok = lm.tokenizer
    if source == "generated":
        from lm_interp.models.corpus import varied_text
        from lm_interp.models.world import make_world

        world_seed = lm.info.get("recipe", {}).get("config", {}).get("world_seed", 0) if lm.name == "tiny" else 0
        texts = varied_text(make_world(world_seed), n, seed=seed, split=split)
    elif source == "samples":
        return sample_texts(lm, n, length, seed + (0 if split == "train" else 1_000_003), ban_special=True)
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"corpus source {source!r} is neither 'generated', 'samples' nor a text file")
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
        texts = [ln for i, ln in enumerate(lines) if (i % 5 == 4) == (split == "heldout")][:n]
    out = [tok((" " if not lm.prepend_bos and i else "") + t, add_special_tokens=False)["input_ids"]
           for i, t in enumerate(texts)]
    out = [r for r in out if r]
    if not out:
        raise ValueError(f"corpus {source!r} ({split}) is empty")
    return out
