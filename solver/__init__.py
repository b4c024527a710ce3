"""Exact Connect Four solver (numba negamax) for W x H boards.

Score convention (Pascal Pons' benchmark files, generalised to W x H): the score is for
the side to move under perfect play of both sides, the winner winning as early and the
loser losing as late as possible. Positive: the side to move wins; 0: draw; negative: it
loses. A side that wins with its k-th stone scores ``W*H // 2 + 1 - k`` (on 7x6,
``22 - k``); a side to move that can win at once, after n stones, scores
``(W*H + 1 - n) // 2``. After the best move the opponent's score is the negation.

    >>> from solver import Solver
    >>> Solver().solve("44444")        # doctest: +SKIP
"""

from solver.book import OpeningBook, load_default_book
from solver.book_building import build_book
from solver.engine import Solver, analyze, default_solver, solve
from solver.search import PONS_PART12

__all__ = ["OpeningBook", "PONS_PART12", "Solver", "analyze", "build_book", "default_solver", "load_default_book", "solve"]
