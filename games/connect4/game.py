"""Connect Four as a `Game`: the rules over the bitboard `Position`; the exact oracle (the
solver) lives in `games.connect4.oracle`, which `Game.oracle` imports on first use, so
this module (rules layer) imports nothing from `solver`.

Actions are 0-based columns. Observation: ``3 x H x W`` float32 with row 0 on top
(as `Position.to_array`), relative to a player (by default the side to move): plane 0
its stones, plane 1 the opponent's, plane 2 all ones if it is the first player, else
zeros (parity matters in Connect Four). Text form: the 1-based move string (``"4453"``); a position without
history is written as its rows, top first, joined by ``/`` (``"......./...X...."``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from games.base import Game, Symmetry
from games.connect4.position import BoardSize, Position
from games.render import draw_grid


class ConnectFour(Game):
    """Connect Four on a W x H board (7x6 by default)."""

    name = "connect4"
    title = "Connect Four"
    concepts_module = "games.connect4.concepts"
    oracle_module = "games.connect4.oracle"
    fast_oracle_ply = 10  # emptier 7x6 boards take the solver seconds to minutes
    #: Positions with more empty squares than this cost the exact solver about a second or more
    #: each on 7x6 (results/bench_labeling_per_ply.json); datasets start where fewer are left.
    max_cheap_empty_squares = 30

    def __init__(self, width: int = 7, height: int = 6) -> None:
        self.size = BoardSize(width, height)
        self.width, self.height = self.size.width, self.size.height
        self.num_actions = self.width
        self.obs_shape = (3, self.height, self.width)
        self.dataset_min_ply = max(0, self.width * self.height - self.max_cheap_empty_squares)  # 12 on 7x6, 0 on 5x4
        n = self.height * self.width
        mirror_squares = np.arange(n).reshape(self.height, self.width)[:, ::-1].reshape(-1)
        self._symmetries = [
            Symmetry("identity", np.arange(n), np.arange(self.width)),
            Symmetry("mirror", mirror_squares, np.arange(self.width)[::-1].copy()),
        ]

    def __repr__(self) -> str:
        return f"ConnectFour({self.width}x{self.height})"

    # ------------------------------------------------------------- rules
    def initial_state(self) -> Position:
        return Position.empty(self.width, self.height)

    def to_play(self, state: Position) -> int:
        return state.moves % 2

    def is_terminal(self, state: Position) -> bool:
        return state.is_terminal()

    def outcome(self, state: Position) -> int | None:
        return state.winner()

    def legal_mask(self, state: Position) -> np.ndarray:
        if state.is_terminal():
            return np.zeros(self.width, dtype=bool)
        return state.legal_mask()

    def play(self, state: Position, action: int) -> Position:
        return state.play(int(action)) if isinstance(action, np.integer) else state.play(action)

    # ------------------------------------------------------------- encodings
    def observation(self, state: Position, player: int | None = None) -> np.ndarray:
        board = state.to_array()
        player = state.moves % 2 if player is None else player
        me = 1 if player == 0 else 2
        obs = np.empty(self.obs_shape, dtype=np.float32)
        obs[0] = board == me
        obs[1] = board == 3 - me
        obs[2] = 1.0 if me == 1 else 0.0
        return obs

    def canonical_key(self, state: Position) -> int:
        return state.canonical_key()

    def symmetries(self) -> list[Symmetry]:
        return list(self._symmetries)

    def parse(self, text: str) -> Position:
        text = text.strip()
        if "/" in text:
            rows = text.split("/")
            symbols = {".": 0, "x": 1, "o": 2}
            try:
                grid = np.array([[symbols[ch] for ch in row.lower()] for row in rows])
            except KeyError as exc:
                raise ValueError(f"board text {text!r} may only hold '.', 'X' and 'O' (bad {exc})") from exc
            except ValueError as exc:
                raise ValueError(f"board text {text!r} has rows of different lengths") from exc
            if grid.shape != (self.height, self.width):
                raise ValueError(f"board text {text!r} is {grid.shape[1]}x{grid.shape[0]}; this game is {self.size}")
            return Position.from_array(grid)
        return Position.from_moves(text, self.width, self.height)

    def to_text(self, state: Position) -> str:
        if state.history is not None:
            return state.history
        return "/".join("".join(".XO"[v] for v in row) for row in state.to_array())

    def render(self, state: Position) -> str:
        return str(state)

    def render_rgb(self, state: Position) -> np.ndarray:
        return draw_grid(state.to_array(), shape="disc")

    def batch_ops(self):
        from games.connect4.batch import batch_ops

        return batch_ops(self.width, self.height)

    # ------------------------------------------------------------- exact oracle
    # value, action_values, action_scores: `Game` asks `games.connect4.oracle` (the solver)
    def score(self, state: Position) -> int:
        """Exact score for the side to move (Pons' convention, see `solver`)."""
        return self.oracle().score(self, state)

    # ------------------------------------------------------------- evaluation
    def baseline_players(self) -> dict:
        from games.connect4.players import baseline_players

        return baseline_players()

    def evaluation_sets(self, search_dirs: Sequence[str | Path] | None = None) -> dict[str, list[str]]:
        """Pascal Pons' three easy test sets, End / Middle / Begin-Easy (7x6 only; other sizes have none).

        They ship with the project in ``data/connect4`` (see its README for provenance), so
        the headline good-move rates need nothing outside the repository; ``solver.benchmarks``
        folders (``../shared/data/connect4``) are looked at only if a shipped file is missing.
        A set found nowhere is left out with a warning that names it and every folder looked
        at. The harder sets are left out: labelling every move of them takes the solver minutes.

        :param search_dirs: folders to look in, in order (default: the shipped folder, then
            ``solver.benchmarks.SEARCH_DIRS``).
        """
        return self.oracle().evaluation_sets(self, search_dirs)
