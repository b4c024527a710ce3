"""Metrics on logits: logit differences (IOI), top-1 recall, and running a model on a batch.

Models are anything callable on ``[batch, pos]`` token ids that returns logits or an object
with ``.logits`` (a TransformerBridge, a Hugging Face model, a toy module), so the same
metrics serve training-time evaluation, hooked runs and ablations.
"""

from __future__ import annotations

from typing import Sequence

import torch

from lm_interp.models.tokenizer import TokenBatch, encode, word_token_id


def logits_of(model, tokens: torch.Tensor) -> torch.Tensor:
    """``[batch, pos, vocab]`` logits of `model` on `tokens`."""
    out = model(tokens)
    return out.logits if hasattr(out, "logits") else out


def at_last(logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The logits at each row's last real token: ``[batch, pos, vocab] -> [batch, vocab]``."""
    if logits.ndim != 3:
        raise ValueError(f"expected [batch, pos, vocab] logits, got shape {tuple(logits.shape)}")
    return logits[torch.arange(len(logits)), lengths.to(logits.device) - 1]


def logit_diff(logits: torch.Tensor, lengths: torch.Tensor, good_ids: torch.Tensor,
               bad_ids: torch.Tensor) -> torch.Tensor:
    """``logit[good] - logit[bad]`` at the last real token of every row: ``[batch]``."""
    last = at_last(logits, lengths)
    rows = torch.arange(len(last))
    return last[rows, good_ids.to(last.device)] - last[rows, bad_ids.to(last.device)]


def ioi_metric(logits: torch.Tensor, lengths: torch.Tensor, io_ids: torch.Tensor, s_ids: torch.Tensor) -> torch.Tensor:
    """IOI logit difference ``logit(IO) - logit(S)`` at the final position, per prompt ``[batch]``."""
    return logit_diff(logits, lengths, io_ids, s_ids)


def last_token_logits(model, batch: TokenBatch, batch_size: int = 64) -> torch.Tensor:
    """``[batch, vocab]`` logits at the last real token, run in chunks without gradients."""
    outs = []
    with torch.no_grad():
        for start in range(0, len(batch), batch_size):
            part = batch[start:start + batch_size]
            outs.append(at_last(logits_of(model, part.tokens), part.lengths).float().cpu())
    return torch.cat(outs) if outs else torch.zeros(0)


def answer_ids(tokenizer, words: Sequence[str]) -> torch.Tensor:
    """First-token ids of answer words (as they appear after a space)."""
    return torch.tensor([word_token_id(tokenizer, w) for w in words], dtype=torch.long)


def evaluate_ioi(model, tokenizer, prompts: Sequence, prepend_bos: bool, batch_size: int = 64) -> dict:
    """Accuracy (``logit(IO) > logit(S)``), mean logit difference and top-1 rate of IO on IOI prompts."""
    if not prompts:
        raise ValueError("no IOI prompts to evaluate")
    batch = encode(tokenizer, [p.text for p in prompts], prepend_bos)
    last = last_token_logits(model, batch, batch_size)
    io, s = answer_ids(tokenizer, [p.io for p in prompts]), answer_ids(tokenizer, [p.s for p in prompts])
    rows = torch.arange(len(last))
    diff = last[rows, io] - last[rows, s]
    return {"n": len(prompts), "accuracy": float((diff > 0).float().mean()), "logit_diff": float(diff.mean()),
            "logit_diff_std": float(diff.std()) if len(diff) > 1 else 0.0,
            "top1": float((last.argmax(-1) == io).float().mean())}


def evaluate_facts(model, tokenizer, prompts: Sequence, prepend_bos: bool, batch_size: int = 64) -> dict:
    """Top-1 recall of the target's first token over the whole vocabulary, overall and per relation."""
    if not prompts:
        raise ValueError("no fact prompts to evaluate")
    batch = encode(tokenizer, [p.text for p in prompts], prepend_bos)
    last = last_token_logits(model, batch, batch_size)
    target = answer_ids(tokenizer, [p.target for p in prompts])
    hit = last.argmax(-1) == target
    prob = last.softmax(-1)[torch.arange(len(last)), target]
    by_rel: dict[str, list[bool]] = {}
    for p, h in zip(prompts, hit.tolist()):
        by_rel.setdefault(p.relation, []).append(h)
    return {"n": len(prompts), "recall": float(hit.float().mean()), "mean_target_prob": float(prob.mean()),
            "by_relation": {r: sum(v) / len(v) for r, v in sorted(by_rel.items())}}
