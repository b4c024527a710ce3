"""Opening books: built bottom-up, exact, consulted by the solver, saved atomically, resumable."""

from __future__ import annotations

import random

import numpy as np
import pytest

from games.connect4 import Position
from games.connect4.enumerate import positions_by_ply
from solver import OpeningBook, Solver, build_book


def small_solver(**kw) -> Solver:
    return Solver(5, 4, tt_log2=18, small_tt_log2=18, **kw)


@pytest.fixture(scope="module")
def book_5x4() -> OpeningBook:
    return build_book(4, small_solver(), progress=False)


def test_book_holds_every_position_up_to_its_depth_with_exact_scores(book_5x4):
    levels = positions_by_ply(4, 5, 4)
    assert len(book_5x4) == sum(len(level) for level in levels)
    plain = small_solver()
    for level in levels:
        for pos in level:
            assert book_5x4.lookup(pos) == plain.solve(pos)
            assert book_5x4.lookup(pos.mirror()) == book_5x4.lookup(pos)


def test_solver_consults_the_book(book_5x4):
    with_book = small_solver(book=book_5x4)
    without = small_solver()
    assert with_book.solve("") == without.solve("")
    assert with_book.nodes == 0 and with_book.book_hits >= 1
    rng = random.Random(3)
    for _ in range(30):
        pos = Position.empty(5, 4)
        for _ in range(rng.randint(0, 7)):
            moves = [c for c in pos.legal_moves() if not pos.play(c).is_terminal()]
            if not moves:
                break
            pos = pos.play(rng.choice(moves))
        assert with_book.solve(pos) == without.solve(pos)
        assert with_book.analyze(pos) == without.analyze(pos)


def test_save_load_round_trip_and_errors(tmp_path, book_5x4):
    path = book_5x4.save(tmp_path / "b.npz")
    loaded = OpeningBook.load(path)
    assert (loaded.width, loaded.height, loaded.depth) == (5, 4, 4)
    assert np.array_equal(loaded.keys, book_5x4.keys) and np.array_equal(loaded.scores, book_5x4.scores)
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(FileNotFoundError, match="no opening book at"):
        OpeningBook.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a book")
    with pytest.raises(ValueError, match="is not a valid opening book"):
        OpeningBook.load(tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="the book is for 5x4 boards but this solver is for 7x6"):
        Solver(tt_log2=18, small_tt_log2=18).use_book(book_5x4)


def test_interrupted_build_resumes_from_checkpoint(tmp_path, book_5x4):
    ckpt = tmp_path / "ckpt.json"
    first = build_book(4, small_solver(), checkpoint=ckpt, progress=False)
    assert ckpt.exists()
    resumed_solver = small_solver()
    resumed = build_book(4, resumed_solver, checkpoint=ckpt, progress=False)
    assert resumed_solver.nodes == 0  # everything came from the checkpoint
    assert np.array_equal(resumed.keys, first.keys) and np.array_equal(resumed.scores, book_5x4.scores)
    with pytest.raises(ValueError, match="checkpoint .* is for another book"):
        build_book(3, small_solver(), checkpoint=ckpt, progress=False)


def test_empty_or_truncated_book_files_are_named_errors(tmp_path, book_5x4):
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.npz is empty \(0 bytes\); rebuild it with scripts/make_book.py"):
        OpeningBook.load(tmp_path / "empty.npz")
    whole = book_5x4.save(tmp_path / "whole.npz").read_bytes()
    for cut in (10, len(whole) // 2, len(whole) - 10):
        (tmp_path / "cut.npz").write_bytes(whole[:cut])
        with pytest.raises(ValueError, match=r"cut.npz is not a valid opening book \(truncated or not an .npz file\)"):
            OpeningBook.load(tmp_path / "cut.npz")
    with pytest.raises(ValueError, match="is a folder"):
        OpeningBook.load(tmp_path)


def test_the_default_solver_consults_the_shipped_book():
    """What the README promises: the solver behind solve/analyze, the oracle and labelling uses the book."""
    from solver import default_solver, load_default_book
    from solver.book import SHIPPED_BOOK_DIR

    shipped = OpeningBook.load(SHIPPED_BOOK_DIR / "connect4_7x6_depth2.npz")
    book = default_solver(7, 6).book
    assert book is not None and book.depth >= shipped.depth
    assert load_default_book(7, 6).depth == book.depth
    assert book.lookup(Position.from_moves("44")) == shipped.lookup(Position.from_moves("44"))
