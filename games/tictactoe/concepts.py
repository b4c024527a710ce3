"""Tic-tac-toe concepts, relative to the side to move ("me"). Squares are numbered
row-major from the top-left, as the observation planes and actions."""

from __future__ import annotations

import numpy as np

from games.concepts import Concept, register_concept
from games.tictactoe.game import LINES, TicTacToeState

GAME = "tictactoe"


def _me_opp(state: TicTacToeState) -> tuple[int, int]:
    return (state.x, state.o) if state.moves % 2 == 0 else (state.o, state.x)


def _winning_squares(stones: int, occupied: int) -> int:
    """Empty squares that would complete a line of `stones`."""
    out = 0
    for line in LINES:
        missing = line & ~stones
        if bin(missing).count("1") == 1 and not missing & occupied:
            out |= missing
    return out


def _per_state(fn):
    return lambda game, states, cache: np.array([fn(s) for s in states])


def _bits9(x: int) -> list[bool]:
    return [bool(x >> i & 1) for i in range(9)]


def _threats(state: TicTacToeState) -> tuple[int, int]:
    me, opp = _me_opp(state)
    occupied = state.x | state.o
    return _winning_squares(me, occupied), _winning_squares(opp, occupied)


def _fork_squares(state: TicTacToeState) -> list[bool]:
    """Empty squares where my stone creates two or more different winning squares."""
    me, opp = _me_opp(state)
    occupied = state.x | state.o
    out = []
    for sq in range(9):
        if occupied >> sq & 1:
            out.append(False)
            continue
        after = _winning_squares(me | 1 << sq, occupied | 1 << sq)
        out.append(bin(after).count("1") >= 2)
    return out


for name, kind, perspective, tier, doc, fn in [
    ("win_in_1", "binary", "me", "static", "I can complete a line with my next move.", lambda s: _threats(s)[0] != 0),
    ("must_block", "binary", "opp", "static", "I cannot win at once and the opponent has a square that completes a line.",
     lambda s: _threats(s)[0] == 0 and _threats(s)[1] != 0),
    ("threat_squares_me", "spatial", "me", "static", "Empty squares that complete a line of mine.", lambda s: _bits9(_threats(s)[0])),
    ("threat_squares_opp", "spatial", "opp", "static", "Empty squares that complete a line of the opponent's.",
     lambda s: _bits9(_threats(s)[1])),
    ("fork_available", "binary", "me", "search", "Some empty square gives me two different line-completing squares at once.",
     lambda s: any(_fork_squares(s))),
    ("fork_squares", "spatial", "me", "search", "Empty squares where my stone creates two line-completing squares.", _fork_squares),
    ("centre", "categorical", "both", "static", "Owner of the centre square: 0 empty, 1 me, 2 the opponent.",
     lambda s: 0 if not (s.x | s.o) >> 4 & 1 else (1 if _me_opp(s)[0] >> 4 & 1 else 2)),
    ("first_player_to_move", "binary", "none", "static", "X (the first player) is to move.", lambda s: s.moves % 2 == 0),
]:
    register_concept(GAME, Concept(name, kind, perspective, tier, doc, _per_state(fn)))

register_concept(GAME, Concept("value", "categorical", "me", "solver", "Game value for me under perfect play: -1, 0 or +1.",
                               lambda game, states, cache: np.array([game.value(s) for s in states], dtype=np.int64)))
register_concept(GAME, Concept("good_moves", "per_column", "me", "solver", "Squares whose move keeps the game value.",
                               lambda game, states, cache: np.array([_good_mask(game, s) for s in states])))
register_concept(GAME, Concept("n_good_moves", "count", "me", "solver", "Number of value-preserving moves.",
                               lambda game, states, cache: np.array([_good_mask(game, s).sum() for s in states], dtype=np.int64)))


def _good_mask(game, state) -> np.ndarray:
    values = game.action_values(state)
    if np.all(np.isnan(values)):
        return np.zeros(9, dtype=bool)
    return values == game.value(state)
