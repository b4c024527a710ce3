"""Opening books: exact scores of every position up to a depth, keyed by canonical key.

This module owns the book format and knows no search (`solver.engine` imports it, never
the reverse); `solver.book_building.build_book` builds books with a `Solver`. The solver
looks positions with at most `depth` stones up in the book instead of searching them.

Books are saved as ``.npz`` (written to a temporary file, then renamed) and found by
`load_default_book`: first a book shipped in ``solver/books/``, then one in the user's
cache (``$SOLVEDLENS_CACHE`` or ``~/.cache/solvedlens``), the deepest one winning.

Who consults it: `solver.default_solver` (behind `solver.solve`/`solver.analyze`, the
Connect Four game's oracle and concept labelling) loads `load_default_book` once per
board size; a `Solver` built by hand consults a book only when given one
(``Solver(book=load_default_book())``). The shipped 7x6 book has depth 2 (30 positions):
it makes the first plies free, but positions with 3 to about 9 stones still cost seconds
to minutes each (``results/bench_labeling_per_ply.json``).
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from common.atomic import atomic_target
from common.provenance import cache_dir
from games.connect4.position import Position

logger = logging.getLogger(__name__)

SHIPPED_BOOK_DIR = Path(__file__).parent / "books"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class OpeningBook:
    """Exact scores (side to move) of every live position with at most `depth` stones.

    :param keys: sorted uint64 canonical keys (`Position.canonical_key`).
    :param scores: int8 scores, aligned with `keys`.
    """

    width: int
    height: int
    depth: int
    keys: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        if self.keys.dtype != np.uint64 or self.scores.dtype != np.int8 or self.keys.shape != self.scores.shape:
            raise ValueError("book keys must be uint64 and scores int8 arrays of the same length")
        if self.keys.size > 1 and not np.all(self.keys[1:] > self.keys[:-1]):
            raise ValueError("book keys must be sorted and unique")

    def __len__(self) -> int:
        return int(self.keys.size)

    def lookup(self, position: Position) -> int | None:
        """Score of `position` if the book holds it."""
        if (position.size.width, position.size.height) != (self.width, self.height):
            raise ValueError(f"position is {position.size}, book is {self.width}x{self.height}")
        key = np.uint64(position.canonical_key())
        i = int(np.searchsorted(self.keys, key))
        if i < self.keys.size and self.keys[i] == key:
            return int(self.scores[i])
        return None

    # -------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write the book atomically (temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT_VERSION, "width": self.width, "height": self.height, "depth": self.depth}
        with atomic_target(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, keys=self.keys, scores=self.scores, meta=np.array(json.dumps(meta)))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "OpeningBook":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no opening book at {path}; build one with scripts/make_book.py")
        if path.is_dir():
            raise ValueError(f"opening book {path} is a folder; give the .npz file written by scripts/make_book.py")
        if path.stat().st_size == 0:
            raise ValueError(f"opening book {path} is empty (0 bytes); rebuild it with scripts/make_book.py")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                keys, scores = data["keys"], data["scores"]
            book = cls(int(meta["width"]), int(meta["height"]), int(meta["depth"]), keys, scores)
        except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            reason = "truncated or not an .npz file" if isinstance(exc, (EOFError, zipfile.BadZipFile)) else exc
            raise ValueError(f"{path} is not a valid opening book ({reason}); rebuild it with "
                             "scripts/make_book.py") from exc
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path} has book format {meta.get('format')}, expected {FORMAT_VERSION}")
        return book


def book_filename(width: int, height: int, depth: int) -> str:
    return f"connect4_{width}x{height}_depth{depth}.npz"


def find_books(width: int, height: int) -> list[Path]:
    """Book files for this board size, shipped ones first, then cached ones."""
    found = []
    for folder in (SHIPPED_BOOK_DIR, cache_dir() / "books"):
        found.extend(sorted(folder.glob(f"connect4_{width}x{height}_depth*.npz")))
    return found


def load_default_book(width: int = 7, height: int = 6) -> OpeningBook | None:
    """The deepest shipped or cached book for the board size, or None."""
    best: OpeningBook | None = None
    for path in find_books(width, height):
        try:
            book = OpeningBook.load(path)
        except ValueError as exc:
            logger.warning("ignoring %s: %s", path, exc)
            continue
        if best is None or book.depth > best.depth:
            best = book
    return best


def minimax_from_children(position: Position, child_score: Callable[[Position], int]) -> int:
    """Exact score of `position` from its children's exact scores (side-to-move convention)."""
    n_squares = position.size.n_squares
    best = None
    for col in position.legal_moves():
        if position.is_winning_move(col):
            value = (n_squares + 1 - position.moves) // 2
        else:
            child = position.play(col)
            value = 0 if child.is_terminal() else -child_score(child)
        best = value if best is None else max(best, value)
    if best is None:
        raise ValueError("minimax_from_children needs a live position")
    return best
