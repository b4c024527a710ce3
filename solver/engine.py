"""`Solver`: the Python API of the exact Connect Four solver.

A `Solver` owns the transposition tables of one board size and keeps them between calls:
TT entries are exact bounds of a position's score, valid whatever root they were found
under, so solving many related positions (a game, a dataset) reuses work. Call `reset`
to start from empty tables (benchmarks do, to compare with solvers that reset).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from common.intrinsics import read_cycle_counter
from games.connect4.position import BoardSize, Position
from solver import search
from solver.book import OpeningBook, load_default_book

logger = logging.getLogger(__name__)

DEFAULT_TT_LOG2 = 22  # main table: 2^22 slots of 8 bytes (32 MiB): as fast as 2^24 on Pons' sets
# (results/bench_vs_pons.json, Begin-Medium and Begin-Hard); raise it for solves of many minutes
DEFAULT_SMALL_TT_LOG2 = 19  # small table: 4 MiB, mostly in cache while a search is small
DEFAULT_ESCALATE_NODES = 1 << 18  # a solve moves to the main table after this many nodes
DEFAULT_FLAGS = search.USE_PREFETCH | search.USE_TWO_TIER | search.USE_TT_MOVE  # ETC, symmetry: fewer nodes, more time (results/bench_solver.json)


@functools.lru_cache(maxsize=1)
def cycles_per_second() -> float:
    """Rate of the CPU time-stamp counter, calibrated once against `time.perf_counter`."""
    read_cycle_counter()  # compile or load it before timing
    t0, c0 = time.perf_counter(), read_cycle_counter()
    while time.perf_counter() - t0 < 0.05:
        pass
    t1, c1 = time.perf_counter(), read_cycle_counter()
    return (c1 - c0) / (t1 - t0)


@dataclass(frozen=True)
class SolveStats:
    """What a batch solve cost: per-position nodes and CPU time-stamp-counter ticks."""

    nodes: np.ndarray
    cycles: np.ndarray

    @property
    def seconds(self) -> np.ndarray:
        """Per-position solve time in seconds (search only, no Python overhead)."""
        return self.cycles / cycles_per_second()


class Solver:
    """Exact solver for Connect Four on one board size.

    :param width: number of columns.
    :param height: number of rows.
    :param tt_log2: log2 of the main TT's slot count (>= 18).
    :param small_tt_log2: log2 of the small TT used for the first `escalate_nodes` nodes
        of every solve (>= 18; small searches then stay in cache).
    :param escalate_nodes: nodes after which a solve switches to the main table.
    :param flags: search switches (`solver.search.USE_*`); `search.PONS_PART12` (0) is the
        reference algorithm.
    :param book: an `OpeningBook` for this board size, or None.
    :param specialise: use a kernel compiled with `flags` as constants (10-15% faster per
        node; each new setting compiles once, the defaults' 7x6 kernel at install time);
        False: the kernel that reads them at run time, one compile for every setting.
    """

    def __init__(
        self,
        width: int = 7,
        height: int = 6,
        *,
        tt_log2: int = DEFAULT_TT_LOG2,
        small_tt_log2: int = DEFAULT_SMALL_TT_LOG2,
        escalate_nodes: int = DEFAULT_ESCALATE_NODES,
        flags: int = DEFAULT_FLAGS,
        book: OpeningBook | None = None,
        specialise: bool = True,
    ) -> None:
        self.size = BoardSize(width, height)
        for name, value in (("tt_log2", tt_log2), ("small_tt_log2", small_tt_log2)):
            if not search.MIN_TT_LOG2 <= value <= 34:
                raise ValueError(f"{name}={value} is out of range; use {search.MIN_TT_LOG2}..34 (2^k slots of 8 bytes)")
        if flags & ~search.ALL_FLAGS:
            raise ValueError(f"unknown search flags {flags & ~search.ALL_FLAGS:#x}; known switches are solver.search.USE_*")
        if escalate_nodes < 0:
            raise ValueError(f"escalate_nodes must be >= 0, got {escalate_nodes}")
        self._solve_batch = search.kernels(self.size.width, self.size.height, int(flags) if specialise else None)
        self.flags = int(flags)
        # np.zeros maps zero pages lazily: untouched parts of a big table cost no memory
        self._tables = (np.zeros(1 << small_tt_log2, dtype=np.uint64), np.zeros(1 << tt_log2, dtype=np.uint64))
        n_u, n_i = search.stack_sizes(self.size.width, self.size.height)
        self._stack_u = np.zeros(n_u, dtype=np.uint64)
        self._stack_i = np.zeros(n_i, dtype=np.int64)
        self._stats = np.zeros(search.N_STATS, dtype=np.int64)
        self._stats[search.SHIFT_SMALL] = 65 - small_tt_log2
        self._stats[search.SHIFT_MAIN] = 65 - tt_log2
        self._stats[search.ESCALATE_AT] = escalate_nodes
        self._stats[search.BOOK_DEPTH] = -1
        self._book_keys = np.zeros(0, dtype=np.uint64)
        self._book_scores = np.zeros(0, dtype=np.int8)
        self.book: OpeningBook | None = None
        if book is not None:
            self.use_book(book)

    # ------------------------------------------------------------------ configuration
    def use_book(self, book: OpeningBook | None) -> None:
        """Consult `book` (or none) from now on."""
        if book is None:
            self._book_keys = np.zeros(0, dtype=np.uint64)
            self._book_scores = np.zeros(0, dtype=np.int8)
            self._stats[search.BOOK_DEPTH] = -1
        else:
            if (book.width, book.height) != (self.size.width, self.size.height):
                raise ValueError(f"the book is for {book.width}x{book.height} boards but this solver is for {self.size}")
            self._book_keys, self._book_scores = book.keys, book.scores
            self._stats[search.BOOK_DEPTH] = book.depth
        self.book = book

    def reset(self) -> None:
        """Empty the transposition tables (and keep the book)."""
        search.wipe_tables(self._tables, self._stats)

    @property
    def nodes(self) -> int:
        """Total nodes searched by this solver since it was created."""
        return int(self._stats[search.NODES])

    @property
    def book_hits(self) -> int:
        return int(self._stats[search.BOOK_HITS])

    # ------------------------------------------------------------------ solving
    def position(self, position: Position | str) -> Position:
        """Coerce a move string or `Position` to a position of this solver's board size."""
        if isinstance(position, str):
            return Position.from_moves(position, self.size.width, self.size.height)
        if not isinstance(position, Position):
            raise TypeError(f"expected a Position or a move string, got {type(position).__name__}")
        if position.size != self.size:
            raise ValueError(f"the position is on a {position.size} board but this solver is for {self.size}")
        return position

    def solve(self, position: Position | str, *, weak: bool = False) -> int:
        """Score of `position` for the side to move (see `solver` for the convention).

        With `weak`, only the game value is computed: -1 (loss), 0 (draw) or +1 (win),
        usually with far fewer nodes. A finished game scores for the side to move:
        0 for a full board, minus the winner's score for the move that just won.
        """
        return int(self.solve_many([position], weak=weak)[0][0])

    def solve_many(
        self, positions: Iterable[Position | str], *, weak: bool = False, reset_each: bool = False
    ) -> tuple[np.ndarray, SolveStats]:
        """Solve many positions in one compiled loop.

        :param reset_each: zero the tables before each position (benchmark protocol; the
            wipe is not counted in `cycles`).
        :returns: scores (int64 array) and the per-position `SolveStats`.
        """
        ps = [self.position(p) for p in positions]
        n = len(ps)
        scores = np.zeros(n, dtype=np.int64)
        nodes = np.zeros(n, dtype=np.int64)
        cycles = np.zeros(n, dtype=np.int64)
        live = np.array([not p.is_terminal() for p in ps], dtype=bool)
        for i, p in enumerate(ps):
            if not live[i]:
                scores[i] = self._terminal_score(p, weak)
        idx = np.flatnonzero(live)
        if idx.size:
            cur = np.array([ps[i].current for i in idx], dtype=np.uint64)
            mask = np.array([ps[i].mask for i in idx], dtype=np.uint64)
            moves = np.array([ps[i].moves for i in idx], dtype=np.int64)
            out_s = np.zeros(idx.size, dtype=np.int64)
            out_n = np.zeros(idx.size, dtype=np.int64)
            out_c = np.zeros(idx.size, dtype=np.int64)
            self._solve_batch(
                cur, mask, moves, bool(weak), bool(reset_each), self._tables, self._book_keys, self._book_scores,
                self._stats, self._stack_u, self._stack_i, self.flags, out_s, out_n, out_c,
            )
            scores[idx], nodes[idx], cycles[idx] = out_s, out_n, out_c
        return scores, SolveStats(nodes, cycles)

    def analyze(self, position: Position | str, *, weak: bool = False) -> list[int | None]:
        """Score of every column for the side to move (None for a column that cannot be played).

        Playing column c leads to a position whose side-to-move score is ``-scores[c]``
        (an immediate win scores ``(W*H + 1 - moves) // 2``). With `weak`, -1/0/+1.
        """
        p = self.position(position)
        scores: list[int | None] = [None] * self.size.width
        children, columns = [], []
        for col in p.legal_moves():
            if p.is_winning_move(col):
                scores[col] = 1 if weak else (self.size.n_squares + 1 - p.moves) // 2
            else:
                children.append(p.play(col))
                columns.append(col)
        child_scores, _ = self.solve_many(children, weak=weak)
        for col, s in zip(columns, child_scores):
            scores[col] = -int(s)
        return scores

    def best_moves(self, position: Position | str) -> list[int]:
        """0-based columns with the best exact score (all optimal moves)."""
        scores = self.analyze(position)
        legal = [s for s in scores if s is not None]
        if not legal:
            return []
        best = max(legal)
        return [c for c, s in enumerate(scores) if s == best]

    def _terminal_score(self, p: Position, weak: bool) -> int:
        winner = p.winner()
        if winner == 0:
            return 0
        # the side that just moved won with stone number ceil(moves / 2)
        score = -((self.size.n_squares + 2 - p.moves) // 2)
        return -1 if weak else score


def solve(position: Position | str, *, weak: bool = False, width: int = 7, height: int = 6) -> int:
    """Solve one position with a shared default `Solver` for its board size."""
    if isinstance(position, Position):
        width, height = position.size.width, position.size.height
    return default_solver(width, height).solve(position, weak=weak)


def analyze(position: Position | str, *, weak: bool = False, width: int = 7, height: int = 6) -> list[int | None]:
    """Per-column scores of one position with a shared default `Solver`."""
    if isinstance(position, Position):
        width, height = position.size.width, position.size.height
    return default_solver(width, height).analyze(position, weak=weak)


_DEFAULT_SOLVERS: dict[tuple[int, int], Solver] = {}


def default_solver(width: int = 7, height: int = 6) -> Solver:
    """A process-wide `Solver` per board size (with the shipped or cached book, if any)."""
    key = (width, height)
    if key not in _DEFAULT_SOLVERS:
        _DEFAULT_SOLVERS[key] = Solver(width, height, book=load_default_book(width, height))
    return _DEFAULT_SOLVERS[key]
