"""An N2G-style token-pattern predictor of a neuron and its fidelity (precision / recall / F1 of firing).

A pattern is a token sequence ending at an activating token (the pivot) in which tokens
that did not matter are wildcards. Patterns are stored in a trie keyed from the pivot
*backwards* (causal: only tokens up to t can explain the activation at t). The predicted
normalised activation at token t of a text is the largest value of a pattern that matches
the text ending at t (0 if none). Firing means at least half the neuron's max activation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

WILDCARD = -1


@dataclass
class _Node:
    children: dict[int, _Node] = field(default_factory=dict)
    value: float | None = None


@dataclass
class Pattern:
    """Tokens ending at the pivot (`WILDCARD` for any token) and the normalised activation it predicts."""

    tokens: tuple[int, ...]
    value: float


def pattern_from(tokens: Sequence[int], importance: Sequence[float] | None, value: float,
                 importance_threshold: float = 0.75) -> Pattern:
    """The pattern of an example ending at its pivot: from its leftmost important token to the pivot.

    Tokens before the pivot with importance below the threshold become wildcards;
    ``importance=None`` keeps every token exact (raw examples).
    """
    tokens = [int(t) for t in tokens]
    if not tokens:
        raise ValueError("a pattern needs at least the pivot token")
    if importance is None:
        return Pattern(tuple(tokens), float(value))
    important = [i for i, v in enumerate(importance[:len(tokens) - 1]) if v >= importance_threshold]
    start = min(important) if important else len(tokens) - 1
    pat = [t if (i in important or i == len(tokens) - 1) else WILDCARD
           for i, t in enumerate(tokens) if i >= start]
    return Pattern(tuple(pat), float(value))


class NeuronGraph:
    """Trie of token patterns ending at activating tokens; predicts per-token normalised activations.

    Fit with `add` / `from_patterns`; `predict(tokens)` -> ``[len(tokens)]``.
    """

    def __init__(self) -> None:
        self.root = _Node()
        self.n_patterns = 0

    @classmethod
    def from_patterns(cls, patterns: Sequence[Pattern]) -> NeuronGraph:
        g = cls()
        for p in patterns:
            g.add(p)
        return g

    def add(self, pattern: Pattern) -> None:
        """Insert `pattern` (the pivot is the first key); a repeated pattern keeps the larger value."""
        node = self.root
        for t in reversed(pattern.tokens):
            node = node.children.setdefault(int(t), _Node())
        node.value = pattern.value if node.value is None else max(node.value, pattern.value)
        self.n_patterns += 1

    def _match(self, node: _Node, tokens: Sequence[int], t: int) -> float:
        best = node.value if node.value is not None else 0.0
        if t < 0:
            return best
        for key in (int(tokens[t]), WILDCARD):
            child = node.children.get(key)
            if child is not None:
                best = max(best, self._match(child, tokens, t - 1))
        return best

    def predict(self, tokens: Sequence[int]) -> np.ndarray:
        """Predicted normalised activation at every token (uses tokens up to each position only)."""
        out = np.zeros(len(tokens))
        for t in range(len(tokens)):
            child = self.root.children.get(int(tokens[t]))
            if child is not None:
                out[t] = self._match(child, tokens, t - 1)
        return out


def firing_scores(truth: np.ndarray, predicted: np.ndarray, firing: float = 0.5) -> dict:
    """Precision, recall and F1 of predicting ``truth >= firing`` by ``predicted >= firing`` (normalised values)."""
    y, p = np.asarray(truth) >= firing, np.asarray(predicted) >= firing
    tp, fp, fn = int((y & p).sum()), int((~y & p).sum()), int((y & ~p).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn,
            "n_firing": int(y.sum()), "n_tokens": len(y)}


def fidelity(graph: NeuronGraph, token_lists: Sequence[Sequence[int]], activations: Sequence[np.ndarray],
             neuron_max: float, firing: float = 0.5) -> dict:
    """`firing_scores` of `graph` on held-out texts whose true activations are normalised by `neuron_max`."""
    if neuron_max <= 0:
        raise ValueError(f"neuron_max must be positive to normalise activations, got {neuron_max}")
    truth = np.concatenate([np.asarray(a) / neuron_max for a in activations]) if activations else np.zeros(0)
    pred = np.concatenate([graph.predict(t) for t in token_lists]) if token_lists else np.zeros(0)
    return firing_scores(truth, pred, firing)
