"""Building opening books with the exact solver (the book format lives in `solver.book`).

A book is built bottom-up: every live position with exactly `depth` stones is solved by
search, then shallower positions follow by plain minimax over their children (all in
the book or finished), so only the deepest level costs search time. This module sits
above both `solver.book` and `solver.engine`, so neither imports the other's caller.

The deepest level is solved through a `common.engine.Engine` (in this process by
default; local processes or Ray actors on request). Work items are chunks of deepest-level
positions as move strings, with the driver solver's table settings (`SolverSpec`); each
worker process keeps one `Solver` per spec in a module-level cache, so its transposition
table stays warm from one chunk to the next. Results are merged into the checkpoint as
chunks arrive (written atomically, and again when the build stops), so a killed build
resumes without solving a finished position again. Scores are exact, so the book is the
same, bit for bit, whatever the engine, the number of workers or the chunking.

Chunk order: chunks are started in enumeration order, which keeps the children of one
parent together (a chunk's positions share subtrees, so the warm table pays off), and are
small (about 8 per worker) so that dynamic scheduling balances them. They are not sorted
by expected cost because no cheap proxy predicts it: every position of the level has the
same number of stones, yet solve times within one level spread over an order of magnitude
or more (7x6: 4.6 to 65 s at ply 3, under a millisecond to a minute at ply 4;
``results/bench_book.json``) with nothing known before the search that tracks them. With
many small chunks the idle tail at the end is about one chunk per worker, whatever the order.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from common.atomic import atomic_write_text
from games.connect4.enumerate import positions_by_ply
from games.connect4.position import BoardSize, Position
from solver import search
from solver.book import OpeningBook, minimax_from_children
from solver.engine import Solver

if TYPE_CHECKING:
    from common.engine import Engine

logger = logging.getLogger(__name__)

CHUNKS_PER_WORKER = 8  # enough chunks for dynamic scheduling to even out uneven positions
MAX_CHUNK = 64  # positions per chunk at most: bounds the work lost with an interrupted chunk


@dataclass(frozen=True)
class SolverSpec:
    """What a worker needs to build a solver like the driver's (picklable, hashable)."""

    width: int
    height: int
    tt_log2: int
    small_tt_log2: int
    escalate_nodes: int
    flags: int

    @classmethod
    def of(cls, solver: Solver) -> "SolverSpec":
        """The spec of an existing solver (same board, table sizes, escalation and flags)."""
        small, main = solver._tables  # noqa: SLF001 - same package; Solver keeps no public copy
        escalate = int(solver._stats[search.ESCALATE_AT])  # noqa: SLF001
        return cls(solver.size.width, solver.size.height, int(main.size).bit_length() - 1,
                   int(small.size).bit_length() - 1, escalate, solver.flags)

    def make(self) -> Solver:
        return Solver(self.width, self.height, tt_log2=self.tt_log2, small_tt_log2=self.small_tt_log2,
                      escalate_nodes=self.escalate_nodes, flags=self.flags)


@dataclass
class BuildStats:
    """What a `build_book` call cost (filled in when passed to it)."""

    positions: int = 0  # deepest-level positions in the book
    resumed: int = 0  # of them, already solved in the checkpoint
    searched: int = 0  # solved by this call
    chunks: int = 0
    nodes: int = 0
    solver_seconds: float = 0.0  # search time summed over workers (CPU time of the compiled loop)
    wall_seconds: float = 0.0


#: one solver per spec in each worker process (and in the driver for the in-process engine)
_WORKER_SOLVERS: dict[SolverSpec, Solver] = {}

ChunkItem = tuple[SolverSpec, int, tuple[str, ...]]
ChunkResult = tuple[int, list[tuple[int, int]], int, float]


def worker_solver(spec: SolverSpec) -> Solver:
    """This process's solver for `spec`, built on first use and kept (its tables stay warm)."""
    solver = _WORKER_SOLVERS.get(spec)
    if solver is None:
        solver = _WORKER_SOLVERS[spec] = spec.make()
    return solver


def solve_chunk(item: ChunkItem) -> ChunkResult:
    """Worker: solve one chunk of positions given as move strings.

    :returns: the chunk index, ``(canonical key, score)`` pairs in the chunk's order, the
        nodes searched and the solver's search time in seconds.
    """
    spec, index, moves = item
    solver = worker_solver(spec)
    positions = [Position.from_moves(m, spec.width, spec.height) for m in moves]
    scores, stats = solver.solve_many(positions)
    pairs = [(p.canonical_key(), int(s)) for p, s in zip(positions, scores)]
    return index, pairs, int(stats.nodes.sum()), float(stats.seconds.sum())


def chunk_positions(positions: Sequence[Position], jobs: int, chunk_size: int | None = None) -> list[tuple[str, ...]]:
    """Split positions (in their order) into chunks of move strings.

    :param chunk_size: positions per chunk; default about `CHUNKS_PER_WORKER` chunks per
        worker, between 1 and `MAX_CHUNK` positions each.
    """
    if chunk_size is None:
        chunk_size = min(MAX_CHUNK, max(1, math.ceil(len(positions) / (max(1, jobs) * CHUNKS_PER_WORKER))))
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    moves = []
    for p in positions:
        if p.history is None:
            raise ValueError("book positions need their move string (Position.history)")
        moves.append(p.history)
    return [tuple(moves[i:i + chunk_size]) for i in range(0, len(moves), chunk_size)]


def _read_checkpoint(ckpt: Path, size: BoardSize, depth: int) -> dict[int, int]:
    try:
        saved = json.loads(ckpt.read_text())
        where = (saved["width"], saved["height"], saved["depth"])
        scores = saved["scores"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"checkpoint {ckpt} is damaged ({exc}); delete it to start the book again") from exc
    if where != (size.width, size.height, depth):
        raise ValueError(f"checkpoint {ckpt} is for another book ({where[0]}x{where[1]}, depth {where[2]})")
    return {int(k): int(v) for k, v in scores.items()}


def build_book(
    depth: int,
    solver: Solver,
    *,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    engine: "Engine | None" = None,
    chunk_size: int | None = None,
    checkpoint_every_s: float | None = None,
    stats: BuildStats | None = None,
) -> OpeningBook:
    """Build the book of every live position with at most `depth` stones.

    :param solver: sets the board size and the workers' table settings; with the default
        engine it is the solver that searches (in this process, its tables kept).
    :param checkpoint: JSON file of deepest-level results, merged atomically as chunks
        arrive and read back on restart, so an interrupted build resumes where it stopped.
    :param progress: show a progress bar.
    :param engine: where the deepest level is solved (`common.engine`); default in this
        process. The caller keeps ownership: the engine is not closed here.
    :param chunk_size: positions per work item (default: see `chunk_positions`).
    :param checkpoint_every_s: seconds between checkpoint writes; 0: after every chunk; default
        (None): after a chunk once ten times the last write's duration has passed, so rewriting
        a big checkpoint never takes more than about a tenth of the driver's time (small books:
        every chunk). The checkpoint is also written when the build stops (done, Ctrl-C,
        SIGTERM or an error), so only a ``kill -9`` can lose results, at most that interval's.
    :param stats: filled in with what the build cost.
    """
    from common.engine import LocalEngine

    size: BoardSize = solver.size
    if depth < 0 or depth >= size.n_squares:
        raise ValueError(f"book depth must be in 0..{size.n_squares - 1}, got {depth}")
    if checkpoint_every_s is not None and checkpoint_every_s < 0:
        raise ValueError(f"checkpoint_every_s must be >= 0, got {checkpoint_every_s}")
    start = time.perf_counter()
    stats = stats if stats is not None else BuildStats()
    levels = positions_by_ply(depth, size.width, size.height, canonical=True)
    deepest = levels[depth]
    done: dict[int, int] = {}
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt and ckpt.exists():
        wanted = {p.canonical_key() for p in deepest}
        done = {k: v for k, v in _read_checkpoint(ckpt, size, depth).items() if k in wanted}
        logger.info("resuming book build: %d of %d deepest positions already solved", len(done), len(deepest))
    saving = {"last": time.perf_counter(), "cost": 0.0, "unsaved": 0}

    def save_checkpoint(force: bool = False) -> None:
        if ckpt is None or not saving["unsaved"]:
            return
        wait = 10 * saving["cost"] if checkpoint_every_s is None else checkpoint_every_s
        if not force and time.perf_counter() - saving["last"] < wait:
            return
        t0 = time.perf_counter()
        payload = {"width": size.width, "height": size.height, "depth": depth,
                   "scores": {str(k): v for k, v in done.items()}}
        atomic_write_text(json.dumps(payload), ckpt)
        saving.update(last=time.perf_counter(), cost=time.perf_counter() - t0, unsaved=0)

    todo = [p for p in deepest if p.canonical_key() not in done]
    stats.positions, stats.resumed = len(deepest), len(done)
    runner = engine if engine is not None else LocalEngine(1)
    spec = SolverSpec.of(solver)
    chunks = chunk_positions(todo, runner.jobs, chunk_size)
    items: list[ChunkItem] = [(spec, i, chunk) for i, chunk in enumerate(chunks)]
    if items:
        logger.info("solving %d positions with %d stones in %d chunks (%s)", len(todo), depth, len(items),
                    runner.describe())
    bar = None
    if progress and items:
        from tqdm import tqdm

        bar = tqdm(total=len(deepest), initial=len(done), desc=f"solving positions at depth {depth}", unit="pos",
                   smoothing=0.05)
    # in this process (jobs=1, or a single chunk) the chunks are solved by the caller's own solver
    previous = _WORKER_SOLVERS.get(spec)
    _WORKER_SOLVERS[spec] = solver
    try:
        for index, pairs, nodes, seconds in runner.map_unordered(solve_chunk, items):
            done.update(pairs)
            saving["unsaved"] += len(pairs)
            save_checkpoint()
            stats.searched += len(pairs)
            stats.chunks += 1
            stats.nodes += nodes
            stats.solver_seconds += seconds
            if bar is not None:
                bar.update(len(pairs))
    finally:
        save_checkpoint(force=True)  # whatever arrived is kept, also on Ctrl-C, SIGTERM or an error
        if previous is None:
            _WORKER_SOLVERS.pop(spec, None)
        else:
            _WORKER_SOLVERS[spec] = previous
        if bar is not None:
            bar.close()
    missing = [p for p in deepest if p.canonical_key() not in done]
    if missing:  # an engine that lost an item would otherwise show up as a KeyError below
        raise RuntimeError(f"{len(missing)} positions with {depth} stones were not solved "
                           f"(e.g. {missing[0].history!r})")

    scores: dict[int, int] = dict(done)
    for ply in range(depth - 1, -1, -1):
        for p in levels[ply]:
            scores[p.canonical_key()] = minimax_from_children(p, lambda c: scores[c.canonical_key()])
    keys = np.array(sorted(scores), dtype=np.uint64)
    values = np.array([scores[int(k)] for k in keys], dtype=np.int8)
    stats.wall_seconds = time.perf_counter() - start
    if items:
        logger.info("solved %d positions in %d chunks: %s nodes, %.1f s of search, %.1f s wall", stats.searched,
                    stats.chunks, f"{stats.nodes:,}", stats.solver_seconds, stats.wall_seconds)
    return OpeningBook(size.width, size.height, depth, keys, values)
