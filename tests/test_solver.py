"""The exact solver: definition-level checks on small boards, Pons' benchmark sets, API."""

from __future__ import annotations

import random

import numpy as np
import pytest

from games.connect4 import Position
from solver import PONS_PART12, Solver
from solver import search
from tests.conftest import read_benchmark
from tests.reference_connect4 import RefBoard, ref_score


def random_position(width: int, height: int, n_moves: int, rng: random.Random) -> tuple[Position, RefBoard]:
    """A random live position after up to `n_moves` moves, and its reference twin."""
    pos, ref = Position.empty(width, height), RefBoard(width, height)
    for _ in range(n_moves):
        legal = pos.legal_moves()
        if not legal:
            break
        col = rng.choice(legal)
        if pos.play(col).is_terminal():
            break
        pos, _ = pos.play(col), ref.play(col)
    return pos, ref


@pytest.mark.parametrize("width, height, min_moves", [(4, 4, 0), (5, 4, 6), (4, 5, 6), (6, 4, 10)])
def test_agrees_with_plain_minimax_on_small_boards(width, height, min_moves):
    rng = random.Random(width * 100 + height)
    # the default solver only: each board size's default kernel is one compile (shared with the
    # other tests); Pons' reference switches are checked on 7x6 (every switch, and his node counts)
    solver = Solver(width, height, tt_log2=18, small_tt_log2=18)
    checked = 0
    for _ in range(40):
        pos, ref = random_position(width, height, rng.randint(min_moves, width * height - 2), rng)
        if pos.moves < min_moves:
            continue
        expected = ref_score(ref)
        assert solver.solve(pos) == expected, pos.history
        assert solver.solve(pos, weak=True) == np.sign(expected)
        checked += 1
    assert checked >= 20


def test_empty_4x4_is_a_draw_with_all_columns_drawn():
    solver = Solver(4, 4, tt_log2=18, small_tt_log2=18)
    assert solver.solve("") == 0 == ref_score(RefBoard(4, 4))
    assert solver.analyze("") == [0, 0, 0, 0]


@pytest.mark.parametrize("name", ["Test_L3_R1", "Test_L2_R1", "Test_L1_R1"])
def test_exact_scores_on_pons_benchmarks(solver_7x6, name):
    pairs = read_benchmark(name)
    scores, stats = solver_7x6.solve_many([m for m, _ in pairs])
    mismatches = [(m, int(got), s) for (m, s), got in zip(pairs, scores) if got != s]
    assert not mismatches, mismatches[:5]
    assert (stats.nodes >= 0).all()


def test_weak_mode_gives_the_sign(solver_7x6):
    pairs = read_benchmark("Test_L2_R1")
    scores, _ = solver_7x6.solve_many([m for m, _ in pairs], weak=True)
    assert np.array_equal(scores, np.sign([s for _, s in pairs]))


def test_reference_algorithm_node_counts_match_pons():
    # Pons' part-12 solver, TT reset before every position: 51.28 nodes per position on
    # End-Easy and 449.6 on Middle-Easy. Our TT indexes differently (collisions differ),
    # so the means agree to a small fraction of a node, not to every digit.
    solver = Solver(7, 6, tt_log2=23, small_tt_log2=23, escalate_nodes=0, flags=PONS_PART12, specialise=False)
    for name, pons_mean in (("Test_L3_R1", 51.277), ("Test_L2_R1", 449.59)):
        pairs = read_benchmark(name)
        _, stats = solver.solve_many([m for m, _ in pairs], reset_each=True)
        assert stats.nodes.mean() == pytest.approx(pons_mean, rel=2e-3), name


def test_analyze_is_consistent_with_solve(solver_7x6):
    pairs = read_benchmark("Test_L2_R1")[:60]
    for moves, score in pairs:
        pos = Position.from_moves(moves)
        scores = solver_7x6.analyze(pos)
        assert max(s for s in scores if s is not None) == score
        for col, s in enumerate(scores):
            if s is None:
                assert not pos.can_play(col)
            elif pos.is_winning_move(col):
                assert s == (43 - pos.moves) // 2
            else:
                assert s == -solver_7x6.solve(pos.play(col))
        assert solver_7x6.best_moves(pos) == [c for c, s in enumerate(scores) if s == score]


def test_finished_games_score_for_the_side_to_move(solver_7x6):
    won = Position.from_moves("1212121")  # the first player won with its 4th stone
    assert solver_7x6.solve(won) == -(22 - 4)
    assert solver_7x6.solve(won, weak=True) == -1
    assert solver_7x6.analyze(won) == [None] * 7
    assert solver_7x6.best_moves(won) == []
    # one move before, the winner's score is the same number, positive
    assert solver_7x6.solve("121212") == 22 - 4


def test_solver_reuses_its_table_between_calls():
    solver = Solver(7, 6, tt_log2=20, small_tt_log2=18)
    moves = read_benchmark("Test_L1_R1")[0][0]
    solver.solve(moves)
    first = solver.nodes
    solver.solve(moves)
    assert solver.nodes - first < first  # the second solve is mostly table hits
    solver.reset()
    before = solver.nodes
    solver.solve(moves)
    assert solver.nodes - before == first


def test_every_search_switch_keeps_scores_exact():
    pairs = read_benchmark("Test_L1_R1")[:150]
    moves = [m for m, _ in pairs]
    expected = np.array([s for _, s in pairs])
    for flags in [0, search.USE_TT_MOVE, search.USE_ETC, search.USE_LAZY_ETC, search.USE_SYMMETRY,
                  search.USE_PREFETCH, search.USE_TWO_TIER, search.ALL_FLAGS]:
        # one kernel reads every setting (specialised kernels would compile once per setting)
        solver = Solver(7, 6, tt_log2=20, small_tt_log2=18, escalate_nodes=500, flags=flags, specialise=False)
        scores, _ = solver.solve_many(moves, reset_each=True)
        assert np.array_equal(scores, expected), flags
    # the default switches' specialised kernel (the one every default Solver uses) agrees
    specialised = Solver(7, 6, tt_log2=20, small_tt_log2=18, escalate_nodes=500)
    assert np.array_equal(specialised.solve_many(moves, reset_each=True)[0], expected)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="tt_log2=10 is out of range"):
        Solver(tt_log2=10)
    with pytest.raises(ValueError, match="unknown search flags"):
        Solver(flags=1 << 20)
    solver = Solver(5, 4, tt_log2=18, small_tt_log2=18)
    with pytest.raises(ValueError, match="on a 7x6 board but this solver is for 5x4"):
        solver.solve(Position.empty())
    with pytest.raises(ValueError, match="move 2 in '16' is column 6; columns are 1..5"):
        solver.solve("16")
    with pytest.raises(TypeError, match="expected a Position or a move string"):
        solver.solve(42)


def test_first_compile_is_announced_only_when_the_cache_is_cold(monkeypatch, caplog):
    import logging

    from solver import search

    for cold in (True, False):
        monkeypatch.setattr(search, "_in_disk_cache", lambda dispatcher, signature, cold=cold: not cold)
        search.kernels.cache_clear()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="solver.search"):
            kernel = search.kernels(7, 6)
        announced = [r.getMessage() for r in caplog.records if "first run only" in r.getMessage()]
        assert len(announced) == (1 if cold else 0)
        assert kernel.signatures == [search.KERNEL_SIGNATURE]  # one specialisation, compiled up front
    search.kernels.cache_clear()
    assert Solver().solve("4453") == -2


def test_pons_figures_are_keyed_by_cpu_model():
    from solver.benchmarks import PONS_ANCHORS, PONS_SETS, anchor_for, same_cpu_model

    assert anchor_for("Intel(R) Xeon(R) CPU @ 2.20GHz").cpu_model == "Intel Xeon"
    assert anchor_for("AMD EPYC").cpu_model == "AMD EPYC"
    assert anchor_for("AMD EPYC 7B13 64-Core Processor") is None  # another model: no ratio
    assert anchor_for("Intel(R) Xeon(R) Platinum 8480+") is None
    assert not same_cpu_model("", "")
    names = {s.name for s in PONS_SETS}
    intel = anchor_for("Intel Xeon")
    assert {k: (f.mean_us, f.positions) for k, f in intel.figures.items()} == {
        "Test_L3_R1": (4.25, None), "Test_L2_R1": (30.48, None), "Test_L2_R2": (3710.0, None),
        "Test_L1_R1": (203.5, None), "Test_L1_R2": (153000.0, 100), "Test_L1_R3": (5400000.0, 10)}
    for anchor in PONS_ANCHORS:
        assert set(anchor.figures) <= names and "part" in anchor.source and "reset" in anchor.source
