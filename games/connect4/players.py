"""Baseline Connect Four players for strength ladders: one-ply win-or-block and depth-k alpha-beta.

All follow the opponent signature of `games.envs.opponents` (``player(game, state, rng) ->
column``) and break ties uniformly at random with `rng`, so repeated games differ.

* `win_or_block`: win at once if possible; otherwise block an immediate threat of the
  opponent (a playable square that would complete its four); otherwise a random move.
* `AlphaBetaPlayer(depth)`: negamax with alpha-beta to `depth` plies (depth 2 = own move
  and the reply), wins scored by how soon they come, leaves scored by a simple heuristic
  from the mover's side: for every line of four not blocked by the opponent, +1 / +4 / +16
  for 1 / 2 / 3 own stones (and the opponent's lines the same, negated), plus 2 per own
  stone in the centre column.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from games.connect4 import bitboard as bb
from games.connect4.position import Position
from games.connect4.tables import board_tables

WIN = 10_000
_LINE_WEIGHTS = np.array([0, 1, 4, 16, 0], dtype=np.int64)


def lines_of_four(width: int, height: int) -> np.ndarray:
    """Bitmaps of every line of four squares on a W x H board (uint64)."""
    return board_tables(width, height)["lines"]


@njit(cache=True)
def _heuristic(current, mask, lines, width, height):
    opponent = current ^ mask
    score = 0
    for line in lines:
        m = bb.popcount(line & current)
        o = bb.popcount(line & opponent)
        if o == 0:
            score += _LINE_WEIGHTS[m]
        elif m == 0:
            score -= _LINE_WEIGHTS[o]
    centre = bb.column_mask(width // 2, height)
    score += 2 * (bb.popcount(current & centre) - bb.popcount(opponent & centre))
    return score


@njit(cache=True)
def _negamax(current, mask, moves, depth, lines, width, height):
    """Score for the side to move, searching `depth` plies; wins are ``WIN + plies left``.

    Alpha-beta negamax with an explicit stack (numba's on-disk cache cannot hold
    recursive functions reliably). Frame k holds the position at ply k, its window, the
    best score so far and the next move (in centre-first order) to try.
    """
    bottom = bb.bottom_mask(width, height)
    full = bb.board_mask(width, height)
    n = depth + 1
    cur = np.zeros(n, dtype=np.uint64)
    msk = np.zeros(n, dtype=np.uint64)
    alpha = np.zeros(n, dtype=np.int64)
    beta = np.zeros(n, dtype=np.int64)
    best = np.zeros(n, dtype=np.int64)
    nxt = np.zeros(n, dtype=np.int64)
    order = np.empty(width, dtype=np.int64)
    for k in range(width):
        order[k] = width // 2 + (1 - 2 * (k % 2)) * ((k + 1) // 2)
    cur[0], msk[0], alpha[0], beta[0] = current, mask, -(1 << 40), 1 << 40
    k = 0
    enter = True
    while True:
        playable = bb.possible_moves(msk[k], bottom, full)
        done = False
        if enter:  # first visit of frame k: leaf tests
            enter = False
            left = depth - k
            done = True
            if moves + k == width * height:
                result = 0
            elif bb.winning_squares(cur[k], msk[k], height, full) & playable:
                result = WIN + left
            elif left == 0:
                result = _heuristic(cur[k], msk[k], lines, width, height)
            else:
                done = False
                best[k] = -WIN - 100
                nxt[k] = 0
        if not done:  # descend into the next move of frame k, if any is left
            while nxt[k] < width:
                col = order[nxt[k]]
                nxt[k] += 1
                move = playable & bb.column_mask(col, height)
                if move:
                    cur[k + 1] = cur[k] ^ msk[k]
                    msk[k + 1] = msk[k] | move
                    alpha[k + 1] = -beta[k]
                    beta[k + 1] = -alpha[k]
                    enter = True
                    break
            if enter:
                k += 1
                continue
            result = best[k]  # every move tried (or cut off)
        if k == 0:
            return result
        k -= 1  # hand the result (from the child's side) to the parent
        score = -result
        if score > best[k]:
            best[k] = score
        if score > alpha[k]:
            alpha[k] = score
        if alpha[k] >= beta[k]:
            nxt[k] = width  # cut off


@njit(cache=True)
def _root_scores(current, mask, moves, depth, lines, width, height, out):
    bottom = bb.bottom_mask(width, height)
    full = bb.board_mask(width, height)
    playable = bb.possible_moves(mask, bottom, full)
    wins = bb.winning_squares(current, mask, height, full) & playable
    for col in range(width):
        move = playable & bb.column_mask(col, height)
        if move == 0:
            out[col] = -(1 << 40)
        elif wins & move:
            out[col] = WIN + depth
        else:
            out[col] = -_negamax(current ^ mask, mask | move, moves + 1, depth - 1, lines, width, height)


def _random_best(scores: np.ndarray, rng: np.random.Generator) -> int:
    return int(rng.choice(np.flatnonzero(scores == scores.max())))


class AlphaBetaPlayer:
    """Depth-limited alpha-beta with the module's heuristic; ties broken at random.

    :param depth: plies searched (at least 1).
    """

    def __init__(self, depth: int) -> None:
        if depth < 1:
            raise ValueError(f"alpha-beta depth must be >= 1, got {depth}")
        self.depth = depth

    def scores(self, state: Position) -> np.ndarray:
        """Search score of every column for the side to move (very negative if full)."""
        w, h = state.size.width, state.size.height
        out = np.zeros(w, dtype=np.int64)
        _root_scores(np.uint64(state.current), np.uint64(state.mask), state.moves, self.depth,
                     lines_of_four(w, h), w, h, out)
        return out

    def __call__(self, game, state: Position, rng: np.random.Generator) -> int:
        return _random_best(self.scores(state), rng)

    def __repr__(self) -> str:
        return f"AlphaBetaPlayer(depth={self.depth})"


def win_or_block(game, state: Position, rng: np.random.Generator) -> int:
    """Win now if possible, else block the opponent's immediate threat, else play at random."""
    playable = state.playable_squares()
    for stones in (state.winning_squares(True), state.winning_squares(False)):
        hits = [c for c in state.legal_moves() if state.move_bit(c) & stones & playable]
        if hits:
            return int(rng.choice(hits))
    return int(rng.choice(state.legal_moves()))


def baseline_players() -> dict:
    """The strength ladder used by `agents.evaluation`, weakest first (random is added there)."""
    return {"win-or-block": win_or_block, "alphabeta-2": AlphaBetaPlayer(2), "alphabeta-4": AlphaBetaPlayer(4)}
