"""The evaluation sets ship with the project: Pons' easy sets in data/connect4, checked by our solver."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

import games
import solver.benchmarks
from agents.evaluation import SHIPPED_LABELS, EvaluationSuite, _cache_file, label_set
from solver.benchmarks import read_set

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "data" / "connect4"
HEADLINE = {"End-Easy": "Test_L3_R1", "Middle-Easy": "Test_L2_R1", "Begin-Easy": "Test_L1_R1"}


def _check_scores(solver, pairs) -> None:
    wrong = [(moves, score, got) for moves, score in pairs if (got := solver.solve(moves)) != score]
    assert not wrong, f"{len(wrong)} shipped scores differ from the solver's, e.g. {wrong[:3]}"


@pytest.mark.parametrize("name", ["Test_L3_R1", "Test_L2_R1"])
def test_shipped_end_and_middle_sets_hold_the_solvers_scores(name, solver_7x6):
    pairs = read_set(SHIPPED / name)
    assert len(pairs) == 1000 and len({m for m, _ in pairs}) == 1000
    _check_scores(solver_7x6, pairs)


def test_shipped_begin_set_holds_the_solvers_scores(solver_7x6):
    """All 1,000 (under a second with the opening book): no need to sample."""
    pairs = read_set(SHIPPED / "Test_L1_R1")
    assert len(pairs) == 1000 and len({m for m, _ in pairs}) == 1000
    _check_scores(solver_7x6, pairs)


def test_shipped_sets_are_pons_files_unchanged():
    """Where ../shared holds Pons' originals, the shipped copies are byte for byte the same."""
    compared = 0
    for name in HEADLINE.values():
        original = REPO.parent / "shared" / "data" / "connect4" / name
        if original.exists():
            assert (SHIPPED / name).read_bytes() == original.read_bytes(), name
            compared += 1
    if not compared:
        pytest.skip("../shared/data/connect4 is absent: nothing to compare with")
    assert "Pascal Pons" in (SHIPPED / "README.md").read_text()


def test_shipped_labels_agree_with_the_shipped_scores():
    """The per-move labels in data/eval_sets belong to the shipped positions: the best move
    of every position scores what Pons' file says the position is worth."""
    game = games.get("connect4")
    for label, name in HEADLINE.items():
        pairs = read_set(SHIPPED / name)
        texts = [m for m, _ in pairs]
        assert _cache_file(game, "set", "\n".join(texts)).parent == SHIPPED_LABELS  # shipped, not recomputed
        labelled = label_set(game, label, texts)
        np.testing.assert_array_equal(np.nanmax(labelled.scores, axis=1), [s for _, s in pairs])


def test_headline_sets_are_evaluated_without_the_shared_folder(monkeypatch, tmp_path):
    """A user's clone has no ../shared: the three sets still come from the repository."""
    monkeypatch.setattr(solver.benchmarks, "SEARCH_DIRS", (tmp_path / "no-shared",))
    game = games.get("connect4")
    sets = game.evaluation_sets()
    assert {k: len(v) for k, v in sets.items()} == dict.fromkeys(HEADLINE, 1000)
    suite = EvaluationSuite(game, games_per_opponent=0, decisive=0, max_positions=20)
    assert [s.name for s in suite.sets] == list(HEADLINE)

    from sb3_contrib import MaskablePPO

    from agents.network import BoardPolicy
    from games.envs.vector import SelfPlayVecEnv

    tiny = {"channels": 8, "blocks": 1, "head_channels": 2, "head_hidden": 16}
    model = MaskablePPO(BoardPolicy, SelfPlayVecEnv("connect4", num_envs=1, seed=0), policy_kwargs={"network": tiny},
                        seed=0, device="cpu")
    record = suite.run(model.policy)
    assert set(record["move_quality"]) == set(HEADLINE) == set(record["sets"])
    for name, described in record["sets"].items():
        assert described["n"] == record["move_quality"][name]["n"] == 20
        assert "evaluation_sets" in described["source"] and len(described["positions_sha256"]) == 16


def test_a_missing_set_is_named_with_the_folders_looked_at(tmp_path, caplog):
    (tmp_path / "Test_L3_R1").write_bytes((SHIPPED / "Test_L3_R1").read_bytes())
    empty = tmp_path / "empty"
    with caplog.at_level(logging.WARNING):
        sets = games.get("connect4").evaluation_sets([empty, tmp_path])
    assert list(sets) == ["End-Easy"]
    missing = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(missing) == 2
    for label, message in zip(("Middle-Easy", "Begin-Easy"), missing):
        assert label in message and str(empty) in message and str(tmp_path) in message


def test_other_games_and_sizes_have_no_fixed_sets_and_record_only_the_decisive_one():
    assert games.get("connect4", width=5, height=4).evaluation_sets() == {}
    suite = EvaluationSuite(games.get("tictactoe"), games_per_opponent=0, decisive=5, seed=3)
    assert [s.name for s in suite.sets] == ["decisive"]
    assert suite.sets[0].description()["n"] == 5
    assert suite.sets[0].description()["source"] == "sampled decisive positions (up to 5, seed 3, from ply 0)"
