"""Token ids and positions of prompts, raw forward passes, and text sampled from a model.

Every experiment speaks about prompts the same way: `prompt_ids` (the model's BOS convention),
`target_ids` (how an object follows its prompt), `span_end_position` / `subject_last_index` /
`subject_positions` (the last token of a subject), `pad_rows` and `forward_logits` (one padded
raw forward pass), and `sample_texts` (the model's own text, for corpora and ROME's contexts).
"""

from __future__ import annotations

import random
from typing import Sequence

import torch


def prompt_ids(tokenizer, text: str, prepend_bos: bool) -> list[int]:
    """Token ids of `text` with the model's BOS convention."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ([tokenizer.bos_token_id] if prepend_bos else []) + list(ids)


def target_ids(tokenizer, target: str) -> list[int]:
    """Token ids of ``" " + target`` (how an object follows its prompt)."""
    ids = tokenizer(" " + target.strip(), add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"target {target!r} tokenizes to nothing")
    if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
        raise ValueError(f"target {target!r} contains words unknown to the tokenizer")
    return list(ids)


def span_end_position(tokenizer, text: str, end_char: int, prepend_bos: bool) -> int:
    """Token index of the last token of ``text[:end_char]`` within the tokenized `text`.

    Used for "the last subject token". Raises ValueError if the prefix does not tokenize as
    a prefix of the whole text (the span must end at a word boundary).
    """
    full = tokenizer(text, add_special_tokens=False)["input_ids"]
    head = tokenizer(text[:end_char], add_special_tokens=False)["input_ids"]
    if not head or full[:len(head)] != head:
        raise ValueError(f"{text[:end_char]!r} does not tokenize as a prefix of {text!r}; end spans at a word boundary")
    return len(head) - 1 + int(prepend_bos)


def subject_last_index(tokenizer, text: str, subject: str, prepend_bos: bool, search_from: int = 0) -> int:
    """Token index of the last token of `subject`'s first occurrence in `text` at or after `search_from`."""
    start = text.lower().find(subject.lower(), search_from)
    if start < 0:
        raise ValueError(f"subject {subject!r} not found in {text!r}")
    return span_end_position(tokenizer, text, start + len(subject), prepend_bos)


def subject_positions(model, prompts: Sequence) -> list[int]:
    """Last-subject-token index of every prompt with ``text`` and ``subject`` fields (case-insensitive match).

    :param model: a `LoadedLM` (its tokenizer and BOS convention are used).
    :param prompts: objects with ``text``, ``subject`` and optionally ``prefix`` (searched after it).
    """
    return [subject_last_index(model.tokenizer, p.text, p.subject, model.prepend_bos, len(getattr(p, "prefix", "")))
            for p in prompts]


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists: ``(tokens [batch, pos], lengths [batch])``."""
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    tokens = torch.full((len(rows), max(int(lengths.max()), 1)), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, :len(r)] = torch.tensor(list(r), dtype=torch.long)
    return tokens, lengths


def forward_logits(hf_model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``[batch, pos, vocab]`` logits of the raw model (right padding needs no mask: attention is causal)."""
    out = hf_model(tokens)
    return out.logits if hasattr(out, "logits") else out


def special_ids(tokenizer) -> set[int]:
    """Ids of the tokenizer's special tokens."""
    return {int(i) for i in getattr(tokenizer, "all_special_ids", []) if i is not None}


def sample_texts(lm, n: int, new_tokens: int, seed: int, *, seed_words: Sequence[str] | None = None,
                 top_k: int | None = None, temperature: float = 1.0, ban_special: bool = False,
                 batch_size: int = 16) -> list[list[int]]:
    """`n` token lists sampled from the model itself (BOS stripped), `new_tokens` sampled tokens each.

    Each row starts from BOS (a model with BOS) or the first token of ``" The"``; with
    `seed_words`, from the first token of a word drawn (``random.Random(seed)``) per row, kept
    in the output. Sampling is from the whole softmax at `temperature`, or from the `top_k`
    most likely tokens; `ban_special` never samples the tokenizer's special tokens.

    :param lm: a `LoadedLM`.
    :param seed: seeds the sampling generator (and the seed-word draw).
    """
    tok, bos = lm.tokenizer, lm.prepend_bos
    gen = torch.Generator().manual_seed(seed)
    if seed_words is not None:
        rng = random.Random(seed)
        starts = [prompt_ids(tok, rng.choice(seed_words), bos)[: 1 + int(bos)] for _ in range(n)]
    else:
        start = [tok.bos_token_id] if bos else tok(" The", add_special_tokens=False)["input_ids"][:1]
        starts = [start] * n
    banned = sorted(special_ids(tok)) if ban_special else []
    out: list[list[int]] = []
    with torch.no_grad():
        for s in range(0, n, batch_size):
            rows = torch.tensor(starts[s:s + batch_size], dtype=torch.long)
            for _ in range(new_tokens):
                logits = forward_logits(lm.hf_model, rows)[:, -1].float() / temperature
                if banned:
                    logits[:, banned] = -torch.inf
                if top_k is None:
                    nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)
                else:
                    top = logits.topk(min(top_k, logits.shape[-1]))
                    nxt = top.indices.gather(1, torch.multinomial(top.values.softmax(-1), 1, generator=gen))
                rows = torch.cat([rows, nxt], 1)
            out.extend(r[int(bos):].tolist() for r in rows)
    return out
