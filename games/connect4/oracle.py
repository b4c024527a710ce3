"""The exact oracle of Connect Four: the game's questions answered by the solver.

`ConnectFour` names this module in `oracle_module`; `Game.oracle` imports it on first use,
so the rules (`games.connect4.game`) never import `solver` (oracle layer, above the rules;
see docs/architecture.md). Every function takes the `ConnectFour` game it answers for.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from games.connect4.position import Position
from solver.benchmarks import PONS_SETS, SEARCH_DIRS, read_set
from solver.book import OpeningBook
from solver.cache import SolutionCache
from solver.engine import Solver, default_solver

logger = logging.getLogger(__name__)

SHIPPED_SETS_DIR = Path(__file__).resolve().parents[2] / "data" / "connect4"
EVALUATION_SETS = ("Test_L3_R1", "Test_L2_R1", "Test_L1_R1")  # Pons' End / Middle / Begin-Easy

_BOOK_IN_USE: dict[tuple[int, int], str] = {}  # board size -> book file the process-wide solver consults


def solver_of(game: Any) -> Solver:
    """The process-wide solver of the game's board size (`solver.default_solver`)."""
    return default_solver(game.width, game.height)


def value(game: Any, state: Position) -> int:
    """Game value for the side to move: -1, 0 or +1."""
    return int(np.sign(solver_of(game).solve(state, weak=True)))


def action_values(game: Any, state: Position) -> np.ndarray:
    """Value (-1/0/+1) of each column for the side to move (NaN if full)."""
    scores = solver_of(game).analyze(state, weak=True)
    return np.array([np.nan if s is None else float(np.sign(s)) for s in scores])


def score(game: Any, state: Position) -> int:
    """Exact score for the side to move (Pons' convention, see `solver`)."""
    return solver_of(game).solve(state)


def action_scores(game: Any, state: Position) -> np.ndarray:
    """Exact score of each column for the side to move (NaN if full)."""
    scores = solver_of(game).analyze(state)
    return np.array([np.nan if s is None else float(s) for s in scores])


def solution_cache(game: Any, path: str | Path, *, rebuild: bool = False, verify: bool = False) -> SolutionCache:
    """The SQLite store of exact solutions at `path` (`solver.cache.SolutionCache`)."""
    return SolutionCache(path, rebuild=rebuild, verify=verify)


def check_opening_book(game: Any, path: str | Path) -> OpeningBook:
    """The opening book at `path`, checked to be readable and for the game's board size."""
    book = OpeningBook.load(path)
    if (book.width, book.height) != (game.width, game.height):
        raise ValueError(f"opening book {path} is for {book.width}x{book.height} boards; the game is "
                         f"{game.width}x{game.height}")
    return book


def use_opening_book(game: Any, path: str | Path) -> None:
    """Make the process-wide solver of the game's board size consult the book at `path`
    (loaded once per process and board size)."""
    key = (game.width, game.height)
    if _BOOK_IN_USE.get(key) != str(path):
        solver_of(game).use_book(check_opening_book(game, path))
        _BOOK_IN_USE[key] = str(path)


def evaluation_sets(game: Any, search_dirs: Sequence[str | Path] | None = None) -> dict[str, list[str]]:
    """Pons' three easy test sets by label, as move strings (7x6 only; see
    `ConnectFour.evaluation_sets`). A set found in no folder is left out with a warning."""
    if (game.width, game.height) != (7, 6):
        return {}
    if search_dirs is None:
        search_dirs = [SHIPPED_SETS_DIR, *(d for d in SEARCH_DIRS if Path(d).resolve() != SHIPPED_SETS_DIR)]
    folders = [Path(d) for d in search_dirs]
    out = {}
    for spec in PONS_SETS:
        if spec.name not in EVALUATION_SETS:
            continue
        path = next((folder / spec.name for folder in folders if (folder / spec.name).is_file()), None)
        if path is None:
            logger.warning(
                "evaluation set %s (Pons' %s) not found in %s: its good-move rates are left out of every "
                "evaluation record", spec.label, spec.name, ", ".join(str(f) for f in folders))
            continue
        out[spec.label] = [moves for moves, _ in read_set(path)]
    return out
