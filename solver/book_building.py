"""Building opening books with the exact solver (the book format lives in `solver.book`).

A book is built bottom-up: every live position with exactly `depth` stones is solved by
search, then shallower positions follow by plain minimax over their children (all in
the book or finished), so only the deepest level costs search time. This module sits
above both `solver.book` and `solver.engine`, so neither imports the other's caller.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from common.atomic import atomic_write_text
from games.connect4.enumerate import positions_by_ply
from games.connect4.position import BoardSize
from solver.book import OpeningBook, minimax_from_children
from solver.engine import Solver

logger = logging.getLogger(__name__)


def build_book(
    depth: int,
    solver: Solver,
    *,
    checkpoint: str | Path | None = None,
    progress: bool = True,
) -> OpeningBook:
    """Build the book of every live position with at most `depth` stones.

    :param solver: the solver that searches the deepest level (its board size is used).
    :param checkpoint: JSON file of deepest-level results, saved as they come and read
        back on restart, so an interrupted build resumes where it stopped.
    :param progress: show a progress bar.
    """
    size: BoardSize = solver.size
    if depth < 0 or depth >= size.n_squares:
        raise ValueError(f"book depth must be in 0..{size.n_squares - 1}, got {depth}")
    levels = positions_by_ply(depth, size.width, size.height, canonical=True)
    done: dict[int, int] = {}
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt and ckpt.exists():
        saved = json.loads(ckpt.read_text())
        if (saved["width"], saved["height"], saved["depth"]) != (size.width, size.height, depth):
            raise ValueError(f"checkpoint {ckpt} is for another book ({saved['width']}x{saved['height']}, depth {saved['depth']})")
        done = {int(k): int(v) for k, v in saved["scores"].items()}
        logger.info("resuming book build: %d of %d deepest positions already solved", len(done), len(levels[depth]))

    def save_checkpoint() -> None:
        if ckpt is None:
            return
        payload = {"width": size.width, "height": size.height, "depth": depth, "scores": {str(k): v for k, v in done.items()}}
        atomic_write_text(json.dumps(payload), ckpt)

    todo = [p for p in levels[depth] if p.canonical_key() not in done]
    iterator = todo
    if progress:
        from tqdm import tqdm

        iterator = tqdm(todo, desc=f"solving {len(levels[depth])} positions at depth {depth}", unit="pos")
    for i, p in enumerate(iterator):
        done[p.canonical_key()] = solver.solve(p)
        if ckpt is not None and (i % 25 == 24 or i == len(todo) - 1):
            save_checkpoint()

    scores: dict[int, int] = dict(done)
    for ply in range(depth - 1, -1, -1):
        for p in levels[ply]:
            scores[p.canonical_key()] = minimax_from_children(p, lambda c: scores[c.canonical_key()])
    keys = np.array(sorted(scores), dtype=np.uint64)
    values = np.array([scores[int(k)] for k in keys], dtype=np.int8)
    return OpeningBook(size.width, size.height, depth, keys, values)
