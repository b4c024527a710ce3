"""Long solver checks (minutes), run by CI through `make test-slow`."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import read_benchmark

pytestmark = pytest.mark.slow


def test_begin_medium_set_exact(solver_7x6):
    # Pons' Begin-Medium set (1,000 positions, 15-28 plies left): about 75 s here
    pairs = read_benchmark("Test_L1_R2")
    scores, _ = solver_7x6.solve_many([m for m, _ in pairs])
    mismatches = [(m, int(got), s) for (m, s), got in zip(pairs, scores) if got != s]
    assert not mismatches, mismatches[:5]


def test_empty_board_column_scores():
    # known exact values: the first player wins only in the centre, with its 21st stone
    from solver import Solver, load_default_book

    solver = Solver(book=load_default_book(7, 6))
    assert solver.analyze("") == [-2, -1, 0, 1, 0, -1, -2]
    assert solver.solve("") == 1
    assert solver.best_moves("") == [3]
    assert np.sign(solver.solve("", weak=True)) == 1


def test_shipped_book_entry_agrees_with_search():
    # re-solve one depth-2 position of the shipped 7x6 book by search alone (about a minute)
    from games.connect4 import Position
    from solver import Solver, load_default_book

    book = load_default_book(7, 6)
    if book is None:
        pytest.skip("no 7x6 opening book is shipped or cached")
    pos = Position.from_moves("44")
    assert Solver().solve(pos) == book.lookup(pos)


@pytest.mark.slow
def test_cold_numba_cache_prints_one_compile_message_then_none(tmp_path):
    """A fresh NUMBA_CACHE_DIR compiles (25-75 s on 2 cores) with a message; the next process loads silently."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    code = "from solver import Solver; print(Solver().solve('44444'))"
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900)
            for _ in range(2)]
    assert [r.stdout.strip() for r in runs] == ["-1", "-1"]
    assert [r.stderr.count("compiling the 7x6 Connect Four solver (first run only") for r in runs] == [1, 0]
