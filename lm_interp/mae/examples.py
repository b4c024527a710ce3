"""Minimal activating examples (MAE) of one neuron, causal-aware: max-activating windows, pruning, saliency.

Every algorithm here runs on a plain *activation function*: token-id lists in, one float
array of per-token activations per list out (`ActivationFn`). The lists hold content
tokens only; a model adapter (`lm_interp.mae.neurons`) adds the model's BOS itself, so
pruning never removes or moves BOS. In a causal model the activation at position t depends
on tokens 0..t only, hence: examples are cut right after the pivot (max-activating token),
pruning removes tokens from the *left* (and optionally single tokens before the pivot),
and saliency masks tokens *before* the pivot. Nothing after the pivot is ever kept, pruned
or substituted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

ActivationFn = Callable[[Sequence[Sequence[int]]], list[np.ndarray]]
"""Token-id lists (content tokens, no BOS) -> one ``[len(list)]`` float array of activations per list."""


@dataclass
class Example:
    """A text window and the neuron's activation at each of its tokens.

    :param tokens: content token ids (no BOS); :param activations: ``[len(tokens)]``.
    :param source: index of the window in the corpus it came from.
    """

    tokens: list[int]
    activations: np.ndarray
    source: int = -1

    @property
    def pivot(self) -> int:
        """Index of the max-activating token (the first one on ties)."""
        return int(np.argmax(self.activations))

    @property
    def max_activation(self) -> float:
        return float(np.max(self.activations))


@dataclass
class PruneResult:
    """The shortest prefix-free context ending at the pivot that keeps the neuron firing.

    :param tokens: the MAE (ends with the pivot token); :param activations: its per-token activations.
    :param original_activation: pivot activation in the full (unpruned) window.
    :param kept: indices into the original window of the MAE's tokens (ascending, last = pivot).
    :param tried: number of candidate prompts evaluated.
    """

    tokens: list[int]
    activations: np.ndarray
    original_activation: float
    kept: list[int]
    tried: int = 0

    @property
    def activation(self) -> float:
        """Pivot activation of the MAE."""
        return float(self.activations[-1])


@dataclass
class MAE:
    """One max-activating example, its MAE and the saliency of the MAE's tokens before the pivot.

    :param importance: ``[len(mae.tokens) - 1]``: ``1 - act_masked / act`` for each token
        before the pivot (masking it by `mask_id`).
    """

    example: Example
    pruned: PruneResult
    importance: np.ndarray
    mask_id: int
    variants: list = field(default_factory=list)  # filled by lm_interp.mae.substitutes

    def important_positions(self, threshold: float = 0.75) -> list[int]:
        """Positions (in the MAE) before the pivot whose importance is at least `threshold`."""
        return [i for i, v in enumerate(self.importance) if v >= threshold]


def _check_fn_output(acts: list[np.ndarray], lists: Sequence[Sequence[int]]) -> list[np.ndarray]:
    if len(acts) != len(lists):
        raise ValueError(f"activation function returned {len(acts)} arrays for {len(lists)} token lists")
    out = []
    for a, t in zip(acts, lists):
        a = np.asarray(a, dtype=np.float64).reshape(-1)
        if len(a) != len(t):
            raise ValueError(f"activation function returned {len(a)} activations for {len(t)} tokens")
        out.append(a)
    return out


def measure(activation_fn: ActivationFn, token_lists: Sequence[Sequence[int]], batch_size: int = 256,
            progress: bool = False) -> list[np.ndarray]:
    """Per-token activations of every list (batched calls of `activation_fn`; empty lists give empty arrays)."""
    token_lists = [list(t) for t in token_lists]
    out: list[np.ndarray] = [np.zeros(0)] * len(token_lists)
    todo = [i for i, t in enumerate(token_lists) if t]
    starts = range(0, len(todo), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="activations", unit="batch", leave=False)
    for s in starts:
        idx = todo[s:s + batch_size]
        part = [token_lists[i] for i in idx]
        for i, a in zip(idx, _check_fn_output(activation_fn(part), part)):
            out[i] = a
    return out


def windows_from_token_lists(token_lists: Sequence[Sequence[int]], window: int,
                             separator: Sequence[int] = ()) -> list[list[int]]:
    """Concatenate documents (with `separator` between them) and cut the stream into windows of `window` tokens.

    Windows do not overlap; the last partial window is kept if it has at least 2 tokens.
    """
    if window < 2:
        raise ValueError(f"window must be at least 2 tokens, got {window}")
    stream: list[int] = []
    for t in token_lists:
        if stream and separator:
            stream.extend(separator)
        stream.extend(int(x) for x in t)
    out = [stream[i:i + window] for i in range(0, len(stream), window)]
    return [w for w in out if len(w) >= 2]


def max_activating_examples(activation_fn: ActivationFn, windows: Sequence[Sequence[int]], k: int = 20,
                            batch_size: int = 256, progress: bool = False,
                            activations: Sequence[np.ndarray] | None = None) -> list[Example]:
    """The `k` windows whose maximum activation is highest, with per-token activations (best first).

    :param activations: the windows' activations if already measured (`activation_fn` is then unused).
    :raises ValueError: no windows (empty corpus) or ``k < 1``.
    """
    if not windows:
        raise ValueError("the corpus gave no text windows: pass a non-empty corpus")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    acts = list(activations) if activations is not None else measure(activation_fn, windows, batch_size, progress)
    maxima = np.array([a.max() if len(a) else -np.inf for a in acts])
    order = np.argsort(-maxima, kind="stable")[:k]
    return [Example(list(windows[i]), acts[i], int(i)) for i in order]


def _keeps_firing(acts: np.ndarray, original: float, fraction: float) -> bool:
    """The last token (the pivot) keeps >= `fraction` of `original` and is still the maximum."""
    pivot = acts[-1]
    return bool(pivot >= fraction * original and pivot >= acts.max() and (original <= 0 or pivot > 0))


def prune(activation_fn: ActivationFn, tokens: Sequence[int], pivot: int | None = None, fraction: float = 0.5,
          step: int = 1, max_context: int | None = None, drop_single: bool = False) -> PruneResult:
    """Causal-aware pruning to a minimal activating example.

    1. Truncate right after the pivot (later tokens cannot change its activation).
    2. Try every suffix ``tokens[start:pivot + 1]`` with ``pivot - start`` in ``0, step, 2 step, ...``
       (up to `max_context` tokens before the pivot, plus the full prefix); keep the *shortest*
       one whose pivot activation is at least ``fraction`` x the original and still the maximum
       of the prompt (N2G's rule; `step=5`, ``max_context=30`` is N2G's setting).
    3. If `drop_single`, greedily remove single tokens before the pivot (left to right) while
       the same condition holds.

    :param pivot: index of the token to explain (default: the argmax of the window).
    :raises ValueError: empty `tokens`, a pivot outside them, or `fraction` not in (0, 1].
    """
    tokens = [int(t) for t in tokens]
    if not tokens:
        raise ValueError("cannot prune an empty token list")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if step < 1:
        raise ValueError(f"step must be at least 1, got {step}")
    if pivot is None:
        pivot = int(np.argmax(measure(activation_fn, [tokens])[0]))
    if not 0 <= pivot < len(tokens):
        raise ValueError(f"pivot {pivot} outside the {len(tokens)} tokens (valid: 0..{len(tokens) - 1})")
    head = tokens[:pivot + 1]
    contexts = list(range(0, pivot + 1, step))
    if max_context is not None:
        contexts = [c for c in contexts if c <= max_context]
    if contexts[-1] != pivot:
        contexts.append(pivot)  # the full prefix is always a candidate
    candidates = [head[pivot - c:] for c in contexts]
    acts = measure(activation_fn, candidates)
    original = float(acts[-1][-1])  # full prefix = the original pivot activation (causality)
    best = len(contexts) - 1
    for i, a in enumerate(acts):
        if _keeps_firing(a, original, fraction):
            best = i
            break
    kept = list(range(pivot - contexts[best], pivot + 1))
    cur_tokens, cur_acts, tried = candidates[best], acts[best], len(candidates)
    if drop_single:
        i = 0
        while i < len(cur_tokens) - 1:
            trial = cur_tokens[:i] + cur_tokens[i + 1:]
            a = measure(activation_fn, [trial])[0]
            tried += 1
            if _keeps_firing(a, original, fraction):
                cur_tokens, cur_acts = trial, a
                kept = kept[:i] + kept[i + 1:]
            else:
                i += 1
    return PruneResult(cur_tokens, cur_acts, original, kept, tried)


def saliency(activation_fn: ActivationFn, tokens: Sequence[int], mask_id: int) -> np.ndarray:
    """Importance of each token before the last (the pivot): ``1 - act_masked / act`` at the pivot.

    Token i is replaced by `mask_id` (a neutral token of the tokenizer); 1 means masking it
    kills the activation, 0 means no effect, negative means masking increases it.
    """
    tokens = [int(t) for t in tokens]
    if len(tokens) < 2:
        return np.zeros(0)
    masked = [tokens[:i] + [int(mask_id)] + tokens[i + 1:] for i in range(len(tokens) - 1)]
    acts = measure(activation_fn, [tokens] + masked)
    base = acts[0][-1]
    if abs(base) < 1e-12:
        return np.zeros(len(masked))
    return np.array([1.0 - a[-1] / base for a in acts[1:]])


def minimal_activating_examples(activation_fn: ActivationFn, examples: Sequence[Example], mask_id: int,
                                fraction: float = 0.5, step: int = 1, max_context: int | None = None,
                                drop_single: bool = False, progress: bool = False) -> list[MAE]:
    """Prune every example at its pivot and measure the saliency of the MAE's tokens."""
    out = []
    it = examples
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(examples, desc="pruning", unit="example", leave=False)
    for ex in it:
        pr = prune(activation_fn, ex.tokens, ex.pivot, fraction, step, max_context, drop_single)
        out.append(MAE(ex, pr, saliency(activation_fn, pr.tokens, mask_id), int(mask_id)))
    return out
