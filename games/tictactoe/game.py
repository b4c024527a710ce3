"""Tic-tac-toe: a 3x3 `Game` with an exhaustive memoised solve (5,478 reachable states).

A state is two 9-bit masks (X = player 0, O = player 1), squares numbered row-major
from the top-left: ``0 1 2 / 3 4 5 / 6 7 8``; the action is the square. Text form:
nine characters ``x``, ``o`` or ``.``, row by row (``"x...o...."``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

from games.base import BatchOps, Game, Symmetry
from games.render import draw_grid

LINES = (0b000000111, 0b000111000, 0b111000000, 0b001001001, 0b010010010, 0b100100100, 0b100010001, 0b001010100)
FULL = 0b111111111


@dataclass(frozen=True)
class TicTacToeState:
    """X and O stone masks (bit i = square i)."""

    x: int = 0
    o: int = 0

    @property
    def moves(self) -> int:
        return bin(self.x | self.o).count("1")


def _has_line(mask: int) -> bool:
    return any(mask & line == line for line in LINES)


def _square_perms() -> list[tuple[str, np.ndarray]]:
    """The 8 symmetries of the square as source-index permutations of the 9 cells."""
    idx = np.arange(9).reshape(3, 3)
    out = []
    for k in range(4):
        rot = np.rot90(idx, k)
        out.append((f"rot{90 * k}" if k else "identity", rot.reshape(-1)))
        out.append((f"rot{90 * k}+flip", rot[:, ::-1].reshape(-1)))
    return out


class TicTacToe(Game):
    """Tic-tac-toe; see the module docstring for encodings."""

    name = "tictactoe"
    title = "tic-tac-toe"
    concepts_module = "games.tictactoe.concepts"
    num_actions = 9
    obs_shape = (2, 3, 3)

    def __init__(self) -> None:
        self._symmetries = []
        for name, src in _square_perms():
            # the square that action a lands on after the transform: the i with src[i] == a
            action_perm = np.empty(9, dtype=np.int64)
            action_perm[src] = np.arange(9)
            self._symmetries.append(Symmetry(name, src.astype(np.int64), action_perm))

    # ------------------------------------------------------------- rules
    def initial_state(self) -> TicTacToeState:
        return TicTacToeState()

    def to_play(self, state: TicTacToeState) -> int:
        return state.moves % 2

    def outcome(self, state: TicTacToeState) -> int | None:
        if _has_line(state.x):
            return 1
        if _has_line(state.o):
            return -1
        if (state.x | state.o) == FULL:
            return 0
        return None

    def is_terminal(self, state: TicTacToeState) -> bool:
        return self.outcome(state) is not None

    def legal_mask(self, state: TicTacToeState) -> np.ndarray:
        if self.is_terminal(state):
            return np.zeros(9, dtype=bool)
        occupied = state.x | state.o
        return np.array([not occupied >> i & 1 for i in range(9)], dtype=bool)

    def play(self, state: TicTacToeState, action: int) -> TicTacToeState:
        if not isinstance(action, (int, np.integer)) or not 0 <= action < 9:
            raise ValueError(f"action {action!r} is not a square 0..8")
        if self.is_terminal(state):
            raise ValueError("the game is over; no more moves can be played")
        if (state.x | state.o) >> int(action) & 1:
            raise ValueError(f"square {action} is already taken")
        bit = 1 << int(action)
        return TicTacToeState(state.x | bit, state.o) if self.to_play(state) == 0 else TicTacToeState(state.x, state.o | bit)

    # ------------------------------------------------------------- encodings
    def observation(self, state: TicTacToeState, player: int | None = None) -> np.ndarray:
        player = self.to_play(state) if player is None else player
        me, opp = (state.x, state.o) if player == 0 else (state.o, state.x)
        planes = np.zeros((2, 9), dtype=np.float32)
        for i in range(9):
            planes[0, i] = me >> i & 1
            planes[1, i] = opp >> i & 1
        return planes.reshape(2, 3, 3)

    def _board(self, state: TicTacToeState) -> np.ndarray:
        """3x3 int8 grid: 0 empty, 1 X, 2 O."""
        grid = np.zeros(9, dtype=np.int8)
        for i in range(9):
            grid[i] = 1 if state.x >> i & 1 else (2 if state.o >> i & 1 else 0)
        return grid.reshape(3, 3)

    def canonical_key(self, state: TicTacToeState) -> tuple[int, int]:
        flat = self._board(state).reshape(-1)
        return min(self._pack(flat[sym.square_perm]) for sym in self._symmetries)

    @staticmethod
    def _pack(cells: np.ndarray) -> tuple[int, int]:
        x = sum(1 << i for i, v in enumerate(cells) if v == 1)
        o = sum(1 << i for i, v in enumerate(cells) if v == 2)
        return (x, o)

    def symmetries(self) -> list[Symmetry]:
        return list(self._symmetries)

    def parse(self, text: str) -> TicTacToeState:
        t = text.strip().replace("/", "").replace("\n", "").replace(" ", "")
        if len(t) != 9:
            raise ValueError(f"tic-tac-toe text needs 9 cells (x, o or .), got {len(t)} in {text!r}")
        x = o = 0
        for i, ch in enumerate(t.lower()):
            if ch == "x":
                x |= 1 << i
            elif ch == "o":
                o |= 1 << i
            elif ch not in ".-_":
                raise ValueError(f"cell {i} of {text!r} is {ch!r}; cells are x, o or .")
        nx, no = bin(x).count("1"), bin(o).count("1")
        if nx - no not in (0, 1):
            raise ValueError(f"{text!r} has {nx} x and {no} o; x moves first, so it has as many or one more")
        state = TicTacToeState(x, o)
        if _has_line(x) and _has_line(o):
            raise ValueError(f"{text!r} has a line for both players")
        return state

    def to_text(self, state: TicTacToeState) -> str:
        return "".join(".xo"[v] for v in self._board(state).reshape(-1))

    def render(self, state: TicTacToeState) -> str:
        rows = [" ".join(".XO"[v] for v in row) for row in self._board(state)]
        return "\n".join(rows)

    def render_rgb(self, state: TicTacToeState) -> np.ndarray:
        return draw_grid(self._board(state), shape="square")

    def batch_ops(self) -> BatchOps:
        return _ttt_batch_ops()

    # ------------------------------------------------------------- exact oracle
    def value(self, state: TicTacToeState) -> int:
        return _solve(state.x, state.o)

    def action_values(self, state: TicTacToeState) -> np.ndarray:
        values = np.full(9, np.nan)
        for a in np.flatnonzero(self.legal_mask(state)):
            child = self.play(state, int(a))
            outcome = self.outcome(child)
            if outcome is None:
                values[a] = -_solve(child.x, child.o)
            else:  # the mover either just won or drew
                values[a] = abs(outcome)
        return values

    def baseline_players(self) -> dict:
        """A perfect player (random among value-keeping moves): the agent can at best match it."""
        from games.envs.opponents import perfect_opponent

        return {"perfect": perfect_opponent}


@lru_cache(maxsize=None)
def _solve(x: int, o: int) -> int:
    """Negamax value for the side to move (memoised over all reachable states)."""
    if _has_line(x) or _has_line(o):
        return -1  # the previous mover completed a line
    occupied = x | o
    if occupied == FULL:
        return 0
    x_to_move = bin(x).count("1") == bin(o).count("1")
    best = -1
    for i in range(9):
        if not occupied >> i & 1:
            bit = 1 << i
            v = -_solve(x | bit, o) if x_to_move else -_solve(x, o | bit)
            if v > best:
                best = v
                if best == 1:
                    break
    return best


# --------------------------------------------------------------------------- batched kernels
# A board is a row (X mask, O mask, moves) of a uint64 array.
_LINES_T = tuple(np.uint64(m) for m in LINES)


@njit(cache=True, inline="always")
def _line_in(mask):
    for line in _LINES_T:
        if mask & line == line:
            return True
    return False


@njit(cache=True)
def _ttt_reset(states, rows):
    for i in range(rows.shape[0]):
        states[rows[i], 0] = 0
        states[rows[i], 1] = 0
        states[rows[i], 2] = 0


@njit(cache=True)
def _ttt_play(states, actions, rows, terminal, mover_reward):
    for i in range(rows.shape[0]):
        r = rows[i]
        a = np.int64(actions[i])
        occupied = states[r, 0] | states[r, 1]
        if a < 0 or a >= 9 or (occupied >> np.uint64(a)) & np.uint64(1):
            return i
        side = np.int64(states[r, 2] & np.uint64(1))
        states[r, side] |= np.uint64(1) << np.uint64(a)
        states[r, 2] += np.uint64(1)
        won = _line_in(states[r, side])
        terminal[i] = won or states[r, 2] == np.uint64(9)
        mover_reward[i] = 1.0 if won else 0.0
    return -1


@njit(cache=True)
def _ttt_observe(states, rows, out):
    for i in range(rows.shape[0]):
        r = rows[i]
        side = np.int64(states[r, 2] & np.uint64(1))
        me = states[r, side]
        opp = states[r, 1 - side]
        for sq in range(9):
            out[i, 0, sq // 3, sq % 3] = 1.0 if (me >> np.uint64(sq)) & np.uint64(1) else 0.0
            out[i, 1, sq // 3, sq % 3] = 1.0 if (opp >> np.uint64(sq)) & np.uint64(1) else 0.0


@njit(cache=True)
def _ttt_masks(states, rows, out):
    for i in range(rows.shape[0]):
        occupied = states[rows[i], 0] | states[rows[i], 1]
        for sq in range(9):
            out[i, sq] = ((occupied >> np.uint64(sq)) & np.uint64(1)) == np.uint64(0)


@njit(cache=True)
def _ttt_random_actions(states, rows, out):
    for i in range(rows.shape[0]):
        occupied = states[rows[i], 0] | states[rows[i], 1]
        k = np.random.randint(9 - np.int64(states[rows[i], 2]))
        for sq in range(9):
            if ((occupied >> np.uint64(sq)) & np.uint64(1)) == np.uint64(0):
                if k == 0:
                    out[i] = sq
                    break
                k -= 1


@njit(cache=True)
def _ttt_to_play(states, rows, out):
    for i in range(rows.shape[0]):
        out[i] = np.int64(states[rows[i], 2] & np.uint64(1))


def _ttt_batch_ops() -> BatchOps:
    def to_state(row) -> TicTacToeState:
        return TicTacToeState(int(row[0]), int(row[1]))

    return BatchOps(3, _ttt_reset, _ttt_play, _ttt_observe, _ttt_masks, _ttt_random_actions, _ttt_to_play, to_state)
