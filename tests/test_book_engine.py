"""Opening books built through common.engine: the same book whatever the engine, resumable chunk by chunk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.engine import LocalEngine, RayEngine
from games.connect4.enumerate import positions_by_ply
from solver import OpeningBook, Solver, book_building
from solver.book_building import BuildStats, build_book, chunk_positions

ROOT = Path(__file__).resolve().parents[1]
W, H, DEPTH = 5, 4, 6  # 1,626 positions with 6 stones: under a second of search


def small_solver() -> Solver:
    return Solver(W, H, tt_log2=18, small_tt_log2=18)


@pytest.fixture(scope="module")
def direct_book() -> OpeningBook:
    """Every position up to DEPTH solved directly by one plain solver (no minimax, no engine)."""
    solver = small_solver()
    scores = {}
    for level in positions_by_ply(DEPTH, W, H):
        for p, s in zip(level, solver.solve_many(level)[0]):
            scores[p.canonical_key()] = int(s)
    keys = np.array(sorted(scores), dtype=np.uint64)
    return OpeningBook(W, H, DEPTH, keys, np.array([scores[int(k)] for k in keys], dtype=np.int8))


def assert_same(book: OpeningBook, expected: OpeningBook) -> None:
    assert (book.width, book.height, book.depth) == (expected.width, expected.height, expected.depth)
    assert book.keys.dtype == expected.keys.dtype and book.scores.dtype == expected.scores.dtype
    assert np.array_equal(book.keys, expected.keys) and np.array_equal(book.scores, expected.scores)


def test_the_book_is_the_same_whatever_the_engine(tmp_path, direct_book):
    default = build_book(DEPTH, small_solver(), progress=False)
    assert_same(default, direct_book)
    assert len(default) == sum(len(level) for level in positions_by_ply(DEPTH, W, H))
    for name, engine in (("local1", LocalEngine(1)), ("local2", LocalEngine(2)), ("ray2", RayEngine(jobs=2))):
        stats = BuildStats()
        with engine:
            book = build_book(DEPTH, small_solver(), progress=False, engine=engine,
                              checkpoint=tmp_path / f"{name}.json", stats=stats)
        assert_same(book, direct_book)
        # several chunks went through the engine, and every deepest position was searched once
        assert stats.chunks >= 2 * engine.jobs
        assert stats.searched == stats.positions == len(positions_by_ply(DEPTH, W, H)[DEPTH])
        assert stats.nodes > 0
        saved = json.loads((tmp_path / f"{name}.json").read_text())
        assert len(saved["scores"]) == stats.positions


def test_in_process_build_uses_the_callers_solver_and_forgets_it():
    solver = small_solver()
    build_book(4, solver, progress=False)
    assert solver.nodes > 0  # the default engine searched with the caller's solver (tables kept)
    assert not book_building._WORKER_SOLVERS  # no reference kept after the build


def test_an_interrupted_build_solves_only_what_the_checkpoint_lacks(tmp_path, monkeypatch, direct_book):
    deepest = positions_by_ply(DEPTH, W, H)[DEPTH]
    ckpt = tmp_path / "ckpt.json"
    # a build killed after some chunks: the checkpoint holds the first chunks' results
    chunks = chunk_positions(deepest, jobs=2)
    finished = [m for chunk in chunks[:5] for m in chunk]
    by_moves = {p.history: p for p in deepest}
    saved = {str(by_moves[m].canonical_key()): direct_book.lookup(by_moves[m]) for m in finished}
    ckpt.write_text(json.dumps({"width": W, "height": H, "depth": DEPTH, "scores": saved}))

    solved: list[str] = []
    seen_in_checkpoint: list[int] = []
    original = book_building.solve_chunk

    def counting(item):
        seen_in_checkpoint.append(len(json.loads(ckpt.read_text())["scores"]))
        solved.extend(item[2])
        return original(item)

    monkeypatch.setattr(book_building, "solve_chunk", counting)
    stats = BuildStats()
    book = build_book(DEPTH, small_solver(), checkpoint=ckpt, progress=False, stats=stats, chunk_size=50,
                      checkpoint_every_s=0)
    assert_same(book, direct_book)
    assert sorted(solved) == sorted(set(by_moves) - set(finished))  # the rest, each once
    assert stats.resumed == len(finished) and stats.searched == len(deepest) - len(finished)
    # results were merged into the checkpoint as each chunk arrived
    assert seen_in_checkpoint == [len(finished) + 50 * i for i in range(len(seen_in_checkpoint))]
    assert len(json.loads(ckpt.read_text())["scores"]) == len(deepest)

    # a finished checkpoint: nothing is searched again
    solved.clear()
    resumed = build_book(DEPTH, small_solver(), checkpoint=ckpt, progress=False)
    assert solved == [] and np.array_equal(resumed.scores, book.scores)


def test_make_book_rejects_address_without_ray(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_book.py"), "--depth", "2", "--width", "5",
                             "--height", "4", "--out", str(tmp_path / "b.npz"), "--address", "10.0.0.1:6379"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --address 10.0.0.1:6379 is for the ray engine; add --engine ray"]
    assert not (tmp_path / "b.npz").exists()


def test_make_book_builds_with_local_workers(tmp_path, direct_book):
    out = tmp_path / "b.npz"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_book.py"), "--depth", str(DEPTH), "--width",
                             str(W), "--height", str(H), "--out", str(out), "--jobs", "2", "--tt-log2", "18"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert_same(OpeningBook.load(out), direct_book)
    assert not out.with_suffix(".checkpoint.json").exists()
    build = json.loads(out.with_suffix(".build.json").read_text())
    assert build["engine"] == "local" and build["jobs"] == 2 and build["entries"] == len(direct_book)
