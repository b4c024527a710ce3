"""Shared machinery of weight editors (ROME, fine-tuning): requests, the MLP output projection, scoring.

The edited weight is the *raw* Hugging Face MLP output projection of one block, treated as a
linear associative memory ``value = W @ key`` (``key`` = the projection's input, the MLP's
hidden activation; ``value`` = its output minus the bias). GPT-2 stores it as a transposed
``Conv1D`` (``c_proj.weight`` is ``[d_mlp, d_model]``), Llama/SmolLM2 as ``nn.Linear``
(``down_proj.weight`` is ``[d_model, d_mlp]``); `MLPProjection` hides the difference and
always speaks ``[out, in]``. Every edit returns a `WeightEdit` whose `restore` puts the
original tensor back bit for bit. The bridge runs the same modules, so an edit reaches it too.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch

from lm_interp.models.tokens import (
    forward_logits,
    pad_rows,
    prompt_ids,
    subject_last_index,
    target_ids,
)

log = logging.getLogger(__name__)

# (container of blocks, MLP attribute, output projection attribute) per architecture family
_LAYOUTS = (("transformer.h", "mlp", "c_proj"),      # GPT-2 (Conv1D, transposed)
            ("model.layers", "mlp", "down_proj"),     # Llama, SmolLM2, Mistral, Qwen
            ("gpt_neox.layers", "mlp", "dense_4h_to_h"),  # Pythia
            ("transformer.h", "mlp", "fc_out"))       # GPT-J


@dataclass(frozen=True)
class EditRequest:
    """One rewrite: make ``prompt`` continue with ``target_new`` instead of ``target_true``.

    :param prompt: the full prompt text, subject included ("The Eiffel Tower is located in the city of").
    :param subject: the subject as written in `prompt` (matched case-insensitively).
    :param target_new: the new object (a word or several; a leading space is added when tokenizing).
    :param target_true: the object the unedited model is expected to give.
    """

    prompt: str
    subject: str
    target_new: str
    target_true: str = ""

    def __post_init__(self) -> None:
        if not self.subject or self.subject.lower() not in self.prompt.lower():
            raise ValueError(f"subject {self.subject!r} does not occur in prompt {self.prompt!r}")
        if not self.target_new.strip():
            raise ValueError(f"empty target_new for prompt {self.prompt!r}")
        if self.target_new.strip() == self.target_true.strip():
            raise ValueError(f"target_new equals target_true ({self.target_new!r}): nothing to edit")


# ----------------------------------------------------------------------------------- the weight

def blocks_of(hf_model: torch.nn.Module) -> tuple[torch.nn.ModuleList, str, str]:
    """The block list of a causal LM and the names of its MLP and MLP output projection."""
    for container, mlp, proj in _LAYOUTS:
        obj = hf_model
        try:
            for part in container.split("."):
                obj = getattr(obj, part)
            first = _unwrap(obj[0])
            if hasattr(_unwrap(getattr(first, mlp)), proj):
                return obj, mlp, proj
        except (AttributeError, IndexError, TypeError):
            continue
    raise ValueError(f"cannot find the MLP output projection of {type(hf_model).__name__}; supported layouts: "
                     f"{[f'{c}[L].{m}.{p}' for c, m, p in _LAYOUTS]}")


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The Hugging Face module inside a TransformerLens bridge component (or the module itself)."""
    while hasattr(module, "_original_component"):
        module = module._original_component
    return module


class MLPProjection:
    """The MLP output projection of block `layer`, seen as ``value = W @ key + bias`` with W ``[out, in]``.

    :param hf_model: the raw Hugging Face model (`LoadedLM.hf_model`).
    :param layer: block index.
    """

    def __init__(self, hf_model: torch.nn.Module, layer: int) -> None:
        blocks, mlp, proj = blocks_of(hf_model)
        if not isinstance(layer, int) or not 0 <= layer < len(blocks):
            raise ValueError(f"layer {layer!r} is out of range: this model has blocks 0..{len(blocks) - 1}")
        self.layer = layer
        self.name = f"layers.{layer}.{mlp}.{proj}"
        self.module = _unwrap(getattr(_unwrap(getattr(_unwrap(blocks[layer]), mlp)), proj))
        # Conv1D (GPT-2) stores [in, out] and computes x @ W; nn.Linear stores [out, in]
        self.transposed = type(self.module).__name__ == "Conv1D"

    @property
    def param(self) -> torch.nn.Parameter:
        return self.module.weight

    @property
    def W(self) -> torch.Tensor:
        """The weight as ``[out, in]`` (a view: no copy)."""
        return self.module.weight.T if self.transposed else self.module.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return getattr(self.module, "bias", None)

    def value_of(self, keys: torch.Tensor) -> torch.Tensor:
        """``W @ key`` for keys ``[..., in]`` -> ``[..., out]`` (no bias)."""
        return keys @ self.W.T

    def apply_delta(self, delta: torch.Tensor) -> "WeightEdit":
        """Add ``delta`` (``[out, in]``) to the weight; returns the handle that undoes it."""
        if delta.shape != self.W.shape:
            raise ValueError(f"delta has shape {tuple(delta.shape)}, the weight {self.name} is {tuple(self.W.shape)}")
        edit = WeightEdit(self, self.param.detach().clone())
        with torch.no_grad():
            self.param.add_(delta.T if self.transposed else delta)
        return edit

    @contextmanager
    def capture(self, positions: Sequence[int] | None = None) -> Iterator[dict[str, torch.Tensor]]:
        """Record the projection's input (``keys``) and output (``outputs``) during forward passes.

        With `positions` (one per row) only that position of each row is kept: ``[batch, d]``;
        otherwise whole ``[batch, pos, d]`` tensors. Values are detached.
        """
        store: dict[str, torch.Tensor] = {}

        def hook(_module, inputs, output):
            k, v = inputs[0].detach(), output.detach()
            if positions is not None:
                rows = torch.arange(len(k))
                idx = torch.as_tensor(list(positions))
                k, v = k[rows, idx], v[rows, idx]
            store["keys"], store["outputs"] = k, v

        handle = self.module.register_forward_hook(hook)
        try:
            yield store
        finally:
            handle.remove()

    @contextmanager
    def add_to_output(self, delta: torch.Tensor, positions: Sequence[int]) -> Iterator[None]:
        """Add `delta` (``[out]``, may require grad) to the projection's output at one position per row."""
        def hook(_module, _inputs, output):
            idx = torch.as_tensor(list(positions))
            mask = torch.zeros(output.shape[:2] + (1,), dtype=output.dtype, device=output.device)
            mask[torch.arange(len(idx)), idx] = 1.0
            return output + mask * delta

        handle = self.module.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()


@dataclass
class WeightEdit:
    """An applied edit: the projection it changed, the original weight, and metadata about it.

    :param projection: the edited `MLPProjection`.
    :param original: a copy of the weight parameter before the edit (its stored layout).
    :param info: editor-specific facts (norms, losses, timings), JSON-serialisable.
    """

    projection: MLPProjection
    original: torch.Tensor
    info: dict = field(default_factory=dict)

    @property
    def delta(self) -> torch.Tensor:
        """The change ``[out, in]``."""
        d = self.projection.param.detach() - self.original
        return d.T if self.projection.transposed else d

    def norms(self) -> dict[str, float]:
        """Frobenius norm of the change, its ratio to the original's, and its largest entry."""
        d = self.delta
        return {"delta_fro": float(d.norm()), "relative_fro": float(d.norm() / self.original.norm()),
                "delta_max_abs": float(d.abs().max())}

    def restore(self) -> None:
        """Put the original weight back (bit-identical)."""
        with torch.no_grad():
            self.projection.param.copy_(self.original)


@dataclass
class TargetScores:
    """Per prompt: mean log-probability per target token of each candidate, and the first-token distribution.

    :param logprob: ``[n_prompts, n_targets]`` mean log P(target token | prefix) over the target's tokens.
    :param first_logprobs: ``[n_prompts, vocab]`` log-softmax at the last prompt token (for KL).
    """

    logprob: torch.Tensor
    first_logprobs: torch.Tensor

    @property
    def prob(self) -> torch.Tensor:
        """``exp(mean log-prob)``: CounterFact's per-token probability of each target."""
        return self.logprob.exp()


def score_targets(lm, prompts: Sequence[str], targets: Sequence[Sequence[str]], batch_size: int = 32) -> TargetScores:
    """Teacher-forced scores of candidate targets after each prompt (no gradients).

    :param lm: a `LoadedLM`.
    :param prompts: texts ending just before the object.
    :param targets: per prompt, the candidate objects (the same count for every prompt).
    """
    if len(prompts) != len(targets):
        raise ValueError(f"{len(prompts)} prompts but {len(targets)} target lists")
    if not prompts:
        return TargetScores(torch.zeros(0, 0), torch.zeros(0, 0))
    n_t = len(targets[0])
    tok, bos = lm.tokenizer, lm.prepend_bos
    rows, spans, firsts = [], [], []
    for p, ts in zip(prompts, targets):
        if len(ts) != n_t:
            raise ValueError("every prompt needs the same number of candidate targets")
        pid = prompt_ids(tok, p, bos)
        for t in ts:
            tid = target_ids(tok, t)
            rows.append(pid + tid)
            spans.append((len(pid), tid))
        firsts.append(len(pid) - 1)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    logprob = torch.zeros(len(rows))
    first = []
    with torch.no_grad():
        for s in range(0, len(rows), batch_size):
            tokens, _ = pad_rows(rows[s:s + batch_size], pad)
            lp = forward_logits(lm.hf_model, tokens).float().log_softmax(-1)
            for j in range(len(tokens)):
                start, tid = spans[s + j]
                pos = torch.arange(start - 1, start - 1 + len(tid))
                logprob[s + j] = lp[j, pos, torch.tensor(tid)].mean()
                if (s + j) % n_t == 0:
                    first.append(lp[j, start - 1])
    return TargetScores(logprob.view(len(prompts), n_t), torch.stack(first))


@contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """Switch off gradients of every parameter of `module` (restored afterwards)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in flags:
            p.requires_grad_(f)


def rewrite_batch(lm, texts: Sequence[str], subject: str, target: str, search_from: Sequence[int] | None = None
                  ) -> tuple[torch.Tensor, list[int], list[tuple[int, list[int]]]]:
    """Inputs for teacher-forced training on ``text + target``: tokens, last-subject indices, target spans.

    Each row is the text followed by all target tokens but the last; the span ``(start, ids)``
    says where the target's tokens are predicted from (positions ``start - 1 ...``).
    """
    tok, bos = lm.tokenizer, lm.prepend_bos
    tid = target_ids(tok, target)
    rows, subj, spans = [], [], []
    for i, t in enumerate(texts):
        pid = prompt_ids(tok, t, bos)
        rows.append(pid + tid[:-1])
        subj.append(subject_last_index(tok, t, subject, bos, search_from[i] if search_from else 0))
        spans.append((len(pid), tid))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    tokens, _ = pad_rows(rows, pad)
    return tokens, subj, spans


def target_nll(logits: torch.Tensor, spans: Sequence[tuple[int, list[int]]]) -> torch.Tensor:
    """Mean over rows of the mean NLL of each row's target tokens (differentiable)."""
    lp = logits.log_softmax(-1)
    losses = []
    for j, (start, tid) in enumerate(spans):
        pos = torch.arange(start - 1, start - 1 + len(tid))
        losses.append(-lp[j, pos, torch.tensor(tid)].mean())
    return torch.stack(losses).mean()


Editor = Callable[[object, EditRequest], WeightEdit]
