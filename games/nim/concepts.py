"""Nim concepts (normal play), relative to the side to move."""

from __future__ import annotations

import numpy as np

from games.concepts import Concept, register_concept

GAME = "nim"


def _per_state(fn, dtype=None):
    return lambda game, states, cache: np.array([fn(game, s) for s in states], dtype=dtype)


def _winning_moves(game, state) -> np.ndarray:
    values = game.action_values(state)
    return np.nan_to_num(values, nan=-1.0) == 1.0


for name, kind, tier, doc, fn, dtype in [
    ("nim_sum", "count", "static", "XOR of the heap sizes (Bouton).", lambda g, s: g.nim_sum(s), np.int64),
    ("nim_sum_zero", "binary", "static", "The nim-sum is zero: the side to move loses with perfect play.", lambda g, s: g.nim_sum(s) == 0, bool),
    ("n_nonempty_heaps", "count", "static", "Heaps that still hold objects.", lambda g, s: sum(h > 0 for h in s.heaps), np.int64),
    ("objects_left", "count", "static", "Objects left on the board.", lambda g, s: sum(s.heaps), np.int64),
    ("largest_heap", "count", "static", "Size of the largest heap.", lambda g, s: max(s.heaps), np.int64),
    ("value", "categorical", "solver", "Game value for me under perfect play: +1 win, -1 loss (no draws in Nim).", lambda g, s: g.value(s), np.int64),
    ("winning_moves", "per_column", "solver", "Actions that leave a zero nim-sum (they keep a won game won).", _winning_moves, bool),
    ("n_winning_moves", "count", "solver", "Number of actions that leave a zero nim-sum.", lambda g, s: int(_winning_moves(g, s).sum()), np.int64),
]:
    register_concept(GAME, Concept(name, kind, "me" if tier == "solver" or name == "nim_sum_zero" else "none", tier, doc,
                                   _per_state(fn, dtype)))
