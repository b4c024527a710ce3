"""Nim (normal play: whoever takes the last object wins) with configurable heaps.

The exact oracle is closed-form (Bouton 1901): the side to move wins iff the nim-sum
(XOR of the heap sizes) is non-zero. An action takes `k >= 1` objects from heap `i`;
actions are numbered heap by heap, ``offset[i] + k - 1`` with ``offset`` the running
sum of the starting sizes. Observation: ``2 x (number of heaps) x (largest heap)``,
plane 0 the objects left (row i holds heap i, left-aligned), plane 1 the board shape
(the starting sizes). Nim is impartial: no object belongs to a player. Text form:
``"3,4,5|0"`` (heap sizes, then the player to move).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from functools import reduce

import numpy as np
from numba import njit

from games.base import BatchOps, Game, Symmetry
from games.render import draw_grid


@dataclass(frozen=True)
class NimState:
    heaps: tuple[int, ...]
    player: int = 0  # 0 or 1: whose turn it is


class Nim(Game):
    """Nim with starting heaps `heaps` (default 3, 4, 5)."""

    name = "nim"
    title = "Nim"
    concepts_module = "games.nim.concepts"

    def __init__(self, heaps: tuple[int, ...] | list[int] = (3, 4, 5)) -> None:
        heaps = tuple(int(h) for h in heaps)
        if not heaps or any(h < 1 for h in heaps):
            raise ValueError(f"Nim needs at least one heap and every heap >= 1, got {heaps}")
        if len(heaps) > 16 or max(heaps) > 64:
            raise ValueError(f"Nim supports up to 16 heaps of up to 64 objects, got {heaps}")
        self.heaps = heaps
        self.offsets = tuple(int(x) for x in np.concatenate([[0], np.cumsum(heaps)[:-1]]))
        self.num_actions = int(sum(heaps))
        self.obs_shape = (2, len(heaps), max(heaps))
        self._shape_plane = np.zeros(self.obs_shape[1:], dtype=np.float32)
        for i, h in enumerate(heaps):
            self._shape_plane[i, :h] = 1.0
        self._symmetries = self._build_symmetries()

    def __repr__(self) -> str:
        return f"Nim(heaps={self.heaps})"

    def decode(self, action: int) -> tuple[int, int]:
        """(heap, objects taken) of an action."""
        for i in range(len(self.heaps) - 1, -1, -1):
            if action >= self.offsets[i]:
                return i, action - self.offsets[i] + 1
        raise ValueError(f"action {action} is negative")

    def encode(self, heap: int, take: int) -> int:
        return self.offsets[heap] + take - 1

    # ------------------------------------------------------------- rules
    def initial_state(self) -> NimState:
        return NimState(self.heaps, 0)

    def to_play(self, state: NimState) -> int:
        return state.player

    def is_terminal(self, state: NimState) -> bool:
        return sum(state.heaps) == 0

    def outcome(self, state: NimState) -> int | None:
        if not self.is_terminal(state):
            return None
        # the player who took the last object (the one not to move) won
        return 1 if state.player == 1 else -1

    def legal_mask(self, state: NimState) -> np.ndarray:
        mask = np.zeros(self.num_actions, dtype=bool)
        for i, h in enumerate(state.heaps):
            mask[self.offsets[i]:self.offsets[i] + h] = True
        return mask

    def play(self, state: NimState, action: int) -> NimState:
        if not isinstance(action, (int, np.integer)) or not 0 <= action < self.num_actions:
            raise ValueError(f"action {action!r} is out of range 0..{self.num_actions - 1}")
        heap, take = self.decode(int(action))
        if take > state.heaps[heap]:
            raise ValueError(f"action {action} takes {take} from heap {heap}, which has {state.heaps[heap]}")
        heaps = list(state.heaps)
        heaps[heap] -= take
        return NimState(tuple(heaps), 1 - state.player)

    # ------------------------------------------------------------- encodings
    def observation(self, state: NimState, player: int | None = None) -> np.ndarray:
        """Objects left and board shape; Nim is impartial, so `player` changes nothing."""
        obs = np.zeros(self.obs_shape, dtype=np.float32)
        for i, h in enumerate(state.heaps):
            obs[0, i, :h] = 1.0
        obs[1] = self._shape_plane
        return obs

    def _build_symmetries(self) -> list[Symmetry]:
        """Permutations of heaps with equal starting size (identity first)."""
        groups: dict[int, list[int]] = {}
        for i, h in enumerate(self.heaps):
            groups.setdefault(h, []).append(i)
        width = self.obs_shape[2]
        syms = []
        for perms in itertools.product(*(itertools.permutations(g) for g in groups.values())):
            row_src = list(range(len(self.heaps)))  # transformed row r comes from row row_src[r]
            for group, perm in zip(groups.values(), perms):
                for target, source in zip(group, perm):
                    row_src[target] = source
            square_perm = np.array([row_src[r] * width + c for r in range(len(self.heaps)) for c in range(width)])
            action_perm = np.empty(self.num_actions, dtype=np.int64)
            for r, src in enumerate(row_src):
                for k in range(1, self.heaps[src] + 1):
                    action_perm[self.encode(src, k)] = self.encode(r, k)
            name = "identity" if row_src == sorted(row_src) else "heaps" + "".join(map(str, row_src))
            syms.append(Symmetry(name, square_perm, action_perm))
            if len(syms) >= 120:
                break
        syms.sort(key=lambda s: s.name != "identity")
        return syms

    def canonical_key(self, state: NimState) -> tuple:
        by_size: dict[int, list[int]] = {}
        for h0, h in zip(self.heaps, state.heaps):
            by_size.setdefault(h0, []).append(h)
        return tuple((h0, tuple(sorted(v))) for h0, v in sorted(by_size.items())) + (state.player,)

    def symmetries(self) -> list[Symmetry]:
        return list(self._symmetries)

    def parse(self, text: str) -> NimState:
        body, _, player = text.strip().partition("|")
        try:
            heaps = tuple(int(x) for x in body.split(","))
            p = int(player) if player else 0
        except ValueError as exc:
            raise ValueError(f"Nim text is 'h1,h2,...|player', got {text!r}") from exc
        if len(heaps) != len(self.heaps):
            raise ValueError(f"{text!r} has {len(heaps)} heaps; this game has {len(self.heaps)}")
        for i, (h, h0) in enumerate(zip(heaps, self.heaps)):
            if not 0 <= h <= h0:
                raise ValueError(f"heap {i} of {text!r} holds {h}; it must be 0..{h0}")
        if p not in (0, 1):
            raise ValueError(f"player to move in {text!r} must be 0 or 1")
        return NimState(heaps, p)

    def to_text(self, state: NimState) -> str:
        return ",".join(map(str, state.heaps)) + f"|{state.player}"

    def render(self, state: NimState) -> str:
        lines = [f"heap {i}: {'o' * h}{'.' * (h0 - h)}" for i, (h, h0) in enumerate(zip(state.heaps, self.heaps))]
        lines.append(f"player {state.player} to move")
        return "\n".join(lines)

    def render_rgb(self, state: NimState) -> np.ndarray:
        cells = np.zeros(self.obs_shape[1:], dtype=np.int8)
        for i, h in enumerate(state.heaps):
            cells[i, :h] = 2
        return draw_grid(cells, shape="square")

    def batch_ops(self) -> BatchOps:
        return _nim_batch_ops(self.heaps)

    # ------------------------------------------------------------- exact oracle
    @staticmethod
    def nim_sum(state: NimState) -> int:
        return reduce(lambda a, b: a ^ b, state.heaps, 0)

    def value(self, state: NimState) -> int:
        if self.is_terminal(state):
            return -1  # the previous player took the last object
        return 1 if self.nim_sum(state) else -1

    def action_values(self, state: NimState) -> np.ndarray:
        values = np.full(self.num_actions, np.nan)
        s = self.nim_sum(state)
        for a in np.flatnonzero(self.legal_mask(state)):
            heap, take = self.decode(int(a))
            child_sum = s ^ state.heaps[heap] ^ (state.heaps[heap] - take)
            values[a] = 1.0 if child_sum == 0 else -1.0
        return values

    def baseline_players(self) -> dict:
        """A perfect player (random among value-keeping moves): the agent can at best match it."""
        from games.envs.opponents import perfect_opponent

        return {"perfect": perfect_opponent}


# --------------------------------------------------------------------------- batched kernels
@functools.lru_cache(maxsize=None)
def _nim_batch_ops(heaps: tuple[int, ...]) -> BatchOps:
    """Kernels for boards stored as rows (heap sizes..., player) of a uint64 array."""
    K = len(heaps)
    START = tuple(heaps)
    OFFSETS = tuple(int(x) for x in np.concatenate([[0], np.cumsum(heaps)[:-1]]))
    N_ACTIONS = int(sum(heaps))

    @njit(cache=True)
    def reset(states, rows):
        for i in range(rows.shape[0]):
            for h in range(K):
                states[rows[i], h] = START[h]
            states[rows[i], K] = 0

    @njit(cache=True)
    def play(states, actions, rows, terminal, mover_reward):
        for i in range(rows.shape[0]):
            r = rows[i]
            a = np.int64(actions[i])
            if a < 0 or a >= N_ACTIONS:
                return i
            heap = 0
            for h in range(K):
                if a >= OFFSETS[h]:
                    heap = h
            take = a - OFFSETS[heap] + 1
            if take > np.int64(states[r, heap]):
                return i
            states[r, heap] -= np.uint64(take)
            states[r, K] ^= np.uint64(1)
            left = 0
            for h in range(K):
                left += np.int64(states[r, h])
            terminal[i] = left == 0
            mover_reward[i] = 1.0 if left == 0 else 0.0
        return -1

    @njit(cache=True)
    def observe(states, rows, out):
        for i in range(rows.shape[0]):
            for h in range(K):
                for j in range(out.shape[3]):
                    out[i, 0, h, j] = 1.0 if j < np.int64(states[rows[i], h]) else 0.0
                    out[i, 1, h, j] = 1.0 if j < START[h] else 0.0

    @njit(cache=True)
    def masks(states, rows, out):
        for i in range(rows.shape[0]):
            for h in range(K):
                for k in range(START[h]):
                    out[i, OFFSETS[h] + k] = k < np.int64(states[rows[i], h])

    @njit(cache=True)
    def random_actions(states, rows, out):
        for i in range(rows.shape[0]):
            n = 0
            for h in range(K):
                n += np.int64(states[rows[i], h])
            k = np.random.randint(n)
            for h in range(K):
                size = np.int64(states[rows[i], h])
                if k < size:
                    out[i] = OFFSETS[h] + k
                    break
                k -= size

    @njit(cache=True)
    def to_play(states, rows, out):
        for i in range(rows.shape[0]):
            out[i] = np.int64(states[rows[i], K])

    def to_state(row) -> NimState:
        return NimState(tuple(int(x) for x in row[:K]), int(row[K]))

    return BatchOps(K + 1, reset, play, observe, masks, random_actions, to_play, to_state)
