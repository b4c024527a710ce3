"""Connect Four kernels over many boards at once (`games.base.BatchOps`), per board size.

A board is a row ``(current stones, all stones, moves)`` of a uint64 array; the bit
layout is the one of `games.connect4.bitboard`. The kernels close over W and H only, so
numba folds them into constants and caches the machine code on disk.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, uint64

from games.base import BatchOps
from games.connect4.bitboard import ONE, ZERO, has_four
from games.connect4.position import BoardSize, Position


@functools.lru_cache(maxsize=None)
def batch_ops(width: int = 7, height: int = 6) -> BatchOps:
    size = BoardSize(width, height)
    W, H = size.width, size.height

    @njit(cache=True)
    def reset(states, rows):
        for i in range(rows.shape[0]):
            states[rows[i], 0] = 0
            states[rows[i], 1] = 0
            states[rows[i], 2] = 0

    @njit(cache=True)
    def play(states, actions, rows, terminal, mover_reward):
        for i in range(rows.shape[0]):
            r = rows[i]
            a = np.int64(actions[i])
            cur = states[r, 0]
            mask = states[r, 1]
            moves = np.int64(states[r, 2])
            if a < 0 or a >= W or (mask >> uint64(a * (H + 1) + H - 1)) & ONE:
                return i
            column = ((ONE << uint64(H)) - ONE) << uint64(a * (H + 1))
            mv = (mask + (ONE << uint64(a * (H + 1)))) & column
            won = has_four(cur | mv, H)
            states[r, 0] = cur ^ mask  # the opponent's stones: it moves next
            states[r, 1] = mask | mv
            states[r, 2] = moves + 1
            terminal[i] = won or moves + 1 == W * H
            mover_reward[i] = 1.0 if won else 0.0
        return -1

    @njit(cache=True)
    def observe(states, rows, out):
        for i in range(rows.shape[0]):
            r = rows[i]
            cur = states[r, 0]
            opp = cur ^ states[r, 1]
            first = (states[r, 2] & ONE) == ZERO
            for col in range(W):
                for row in range(H):
                    bit = ONE << uint64(col * (H + 1) + row)
                    out[i, 0, H - 1 - row, col] = 1.0 if cur & bit else 0.0
                    out[i, 1, H - 1 - row, col] = 1.0 if opp & bit else 0.0
                    out[i, 2, H - 1 - row, col] = 1.0 if first else 0.0

    @njit(cache=True)
    def masks(states, rows, out):
        for i in range(rows.shape[0]):
            mask = states[rows[i], 1]
            for col in range(W):
                out[i, col] = ((mask >> uint64(col * (H + 1) + H - 1)) & ONE) == ZERO

    @njit(cache=True)
    def random_actions(states, rows, out):
        for i in range(rows.shape[0]):
            mask = states[rows[i], 1]
            n = 0
            for col in range(W):
                if ((mask >> uint64(col * (H + 1) + H - 1)) & ONE) == ZERO:
                    n += 1
            k = np.random.randint(n)
            for col in range(W):
                if ((mask >> uint64(col * (H + 1) + H - 1)) & ONE) == ZERO:
                    if k == 0:
                        out[i] = col
                        break
                    k -= 1

    @njit(cache=True)
    def to_play(states, rows, out):
        for i in range(rows.shape[0]):
            out[i] = np.int64(states[rows[i], 2] & ONE)

    def to_state(row) -> Position:
        return Position(size, int(row[0]), int(row[1]), int(row[2]), None)

    return BatchOps(3, reset, play, observe, masks, random_actions, to_play, to_state)
