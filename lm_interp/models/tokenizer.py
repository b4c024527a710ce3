"""Tokenizers: the tiny model's word-level tokenizer, and batching text for any model.

The tiny model uses a word-level vocabulary trained locally with `tokenizers` (words and
single punctuation characters; ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>`` specials), saved
as a Hugging Face tokenizer directory: the TransformerLens bridge re-loads tokenizers from
their directory (an in-memory tokenizer fails), so one always lives on disk.

`encode` turns texts into a right-padded `TokenBatch` with each text's length, so callers
read logits at the last real token; whether a BOS token is prepended is the caller's
choice (`LoadedLM.prepend_bos`), not the tokenizer's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import torch

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")


def train_word_tokenizer(texts: Iterable[str], out_dir: str | Path, min_frequency: int = 1):
    """Train a word-level tokenizer on `texts` and save it to `out_dir`; returns the loaded tokenizer.

    Words are split on whitespace and every punctuation character is its own token. Decoding
    joins words with spaces and removes the space before ``. , ! ?``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Punctuation("isolated")])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS), min_frequency=min_frequency)
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return load_tokenizer(out_dir)


def load_tokenizer(path: str | Path):
    """A tokenizer saved in a directory (offline: never consults the Hub)."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not (path / "tokenizer.json").exists() and not (path / "tokenizer_config.json").exists():
        raise FileNotFoundError(f"no tokenizer in {path}: expected tokenizer.json / tokenizer_config.json there")
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


@dataclass
class TokenBatch:
    """Right-padded token ids ``[batch, pos]`` and each row's real length ``[batch]``."""

    tokens: torch.Tensor
    lengths: torch.Tensor

    @property
    def last_positions(self) -> torch.Tensor:
        """Index of each row's last real token ``[batch]``."""
        return self.lengths - 1

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, rows) -> "TokenBatch":
        tokens, lengths = self.tokens[rows], self.lengths[rows]
        width = int(lengths.max()) if len(lengths) else 0
        return TokenBatch(tokens[:, :width], lengths)


def encode(tokenizer, texts: Sequence[str], prepend_bos: bool, pad_to: int | None = None) -> TokenBatch:
    """Tokenize `texts` (no special tokens except an optional leading BOS), right-padded.

    :param pad_to: pad every row to at least this many positions (aligning two prompt sets).
    """
    if isinstance(texts, str):
        raise ValueError("encode takes a list of texts, not one string; wrap it: [text]")
    rows = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    if prepend_bos:
        if tokenizer.bos_token_id is None:
            raise ValueError("this tokenizer has no BOS token; call encode(..., prepend_bos=False)")
        rows = [[tokenizer.bos_token_id] + r for r in rows]
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    width = max([len(r) for r in rows] + [pad_to or 0, 1])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    tokens = torch.full((len(rows), width), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, :len(r)] = torch.tensor(r, dtype=torch.long)
    return TokenBatch(tokens, lengths)


def word_token_id(tokenizer, word: str) -> int:
    """The id of the first token of `word` as it appears after a space (``" Paris"``).

    Works for both word-level (spaces are separators) and byte-level BPE tokenizers.
    """
    ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"{word!r} tokenizes to nothing")
    return ids[0]


def is_single_token(tokenizer, word: str) -> bool:
    """Whether ``" " + word`` is one token and not the unknown token."""
    ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    return len(ids) == 1 and ids[0] != tokenizer.unk_token_id


def single_token_words(tokenizer, words: Sequence[str]) -> list[str]:
    """The words of `words` that are single tokens after a space (IOI names for a real model)."""
    return [w for w in words if is_single_token(tokenizer, w)]


def unknown_words(tokenizer, texts: Iterable[str]) -> set[str]:
    """Words in `texts` that the tokenizer maps to its unknown token."""
    unk = tokenizer.unk_token_id
    out: set[str] = set()
    if unk is None:
        return out
    for t in texts:
        for w in t.split():
            if unk in tokenizer(" " + w, add_special_tokens=False)["input_ids"]:
                out.add(w)
    return out
