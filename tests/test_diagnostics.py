"""Post-mortems of played games: kept moves, slips found by the oracle, their summary."""

from __future__ import annotations

import numpy as np
import pytest

import games
from agents.diagnostics import game_slips, where_games_slip
from agents.evaluation import play_games
from games.connect4.players import win_or_block
from games.envs.opponents import perfect_opponent, random_opponent


def first_legal(game, state, rng) -> int:
    return int(game.legal_actions(state)[0])


def test_kept_moves_replay_to_the_recorded_results_and_change_nothing_else():
    game = games.get("connect4")
    plain = play_games(game, first_legal, win_or_block, 20, seed=3, opening_plies=2)
    kept = play_games(game, first_legal, win_or_block, 20, seed=3, opening_plies=2, keep_moves=True)
    assert {k: v for k, v in kept.items() if k != "moves"} == plain  # same games, same draws of the rng
    assert [g["seat"] for g in kept["moves"]] == [0, 1] * 10
    for j in range(10):  # each opening is played with both colours
        assert kept["moves"][2 * j]["actions"][:2] == kept["moves"][2 * j + 1]["actions"][:2]
    for g in kept["moves"]:
        state = game.initial_state()
        for a in g["actions"]:
            state = game.play(state, a)
        assert game.is_terminal(state) and game.returns(state, g["seat"]) == g["result"]
    wins = np.mean([g["result"] > 0 for g in kept["moves"] if g["seat"] == 0])
    assert wins == plain["as_first"]["win"]


def test_game_slips_finds_each_sides_value_drops_on_a_hand_made_game():
    game = games.get("tictactoe")  # squares 0..8 row by row
    # X 0, O 3 (an edge: loses; only the centre draws), X 1, O 2 (forced), X 4 (two threats:
    # 7 and 8), O 7, X 8 wins.
    actions = [0, 3, 1, 2, 4, 7, 8]
    out = game_slips(game, actions, seat=0, result=1)
    assert out.entry_ply == 0 and out.entry_value == 0  # the empty board is a draw
    opponent = [(s.ply, s.best, s.got) for s in out.opponent_slips]
    assert opponent[0] == (1, 0, -1)  # the edge reply gives the game away
    assert out.agent_slips == [] and out.verdict == "won"  # X keeps the win once it has one and takes it
    actions = [0, 3, 1, 4, 8, 5]  # X has 0,1 and can win at 2, plays 8; O completes 3-4-5
    out = game_slips(game, actions, seat=0, result=-1, from_ply=4)
    assert out.entry_value == 1  # at ply 4 X to move wins at once
    [slip] = out.slips
    assert (slip.ply, slip.who, slip.action, slip.best, slip.got, slip.kind) == (4, "agent", 8, 1, -1,
                                                                                  "missed_immediate_win")
    assert out.best_value_held == 1 and out.verdict == "let_a_win_go"
    assert game_slips(game, actions, seat=0, result=-1, from_ply=5).verdict == "decided_before"
    with pytest.raises(ValueError, match="recorded result"):
        game_slips(game, actions, seat=0, result=1)
    with pytest.raises(ValueError, match="illegal"):
        game_slips(game, [0, 0], seat=0, result=0)
    with pytest.raises(ValueError, match="not over"):
        game_slips(game, [0, 3], seat=0, result=0)
    with pytest.raises(ValueError, match="game is over"):
        game_slips(game, actions + [6], seat=0, result=-1)
    with pytest.raises(ValueError, match="from_ply"):
        game_slips(game, actions, seat=0, result=-1, from_ply=-1)


def test_where_games_slip_against_a_perfect_opponent_blames_only_the_agent():
    game = games.get("tictactoe")
    played = play_games(game, first_legal, perfect_opponent, 12, seed=0, opening_plies=1, keep_moves=True)
    report = where_games_slip(game, played["moves"], progress=False)
    s = report["summary"]
    assert s["replayed"] == 12 and s["by_result"]["win"] == 0  # nobody beats a perfect player
    assert s["opponent_slips"] == 0 and s["games_with_opponent_slip"] == 0
    assert sum(s["entry_value"].values()) == 12
    assert s["by_result"]["loss"] > 0 and sum(s["verdict"].values()) == 12
    # against a perfect player the agent's value only ever falls: it held its entry value at best
    assert s["verdict"]["decided_before"] == sum(g["result"] == g["entry_value"] for g in report["games"])
    assert s["no_agent_slip"] + s["first_slip_ply"]["n"] == 12
    assert s["no_agent_slip"] == s["verdict"]["decided_before"]


def test_results_follow_the_entry_value_and_the_slips():
    """Whoever does not slip gets at least its value: with no slip at all the result is the entry value."""
    game = games.get("tictactoe")
    played = play_games(game, first_legal, random_opponent, 40, seed=1, opening_plies=1, keep_moves=True)
    report = where_games_slip(game, played["moves"], only_unwon=False, progress=False)
    assert report["summary"]["replayed"] == 40
    for g in report["games"]:
        if g["verdict"] in ("let_a_win_go", "let_a_draw_go"):  # it held more than it got: it slipped from there
            assert any(s["who"] == "agent" and s["best"] > g["result"] for s in g["slips"])
        if not g["slips"]:
            assert g["result"] == g["entry_value"]
        if not any(s["who"] == "agent" for s in g["slips"]):
            assert g["result"] >= g["entry_value"]
        if not any(s["who"] == "opponent" for s in g["slips"]):
            assert g["result"] <= g["entry_value"]
    table = report["summary"]["result_by_entry_value"]
    assert sum(sum(row.values()) for row in table.values()) == 40 - report["summary"]["entry_value"]["ended_before"]
    assert table["win"]["win"] == sum(g["entry_value"] == 1 and g["result"] == 1 for g in report["games"])
    assert report["summary"]["verdict"]["won"] == sum(g["result"] == 1 for g in played["moves"])
    held = report["summary"]["held_a_win"]
    assert held["first"]["won"] + held["second"]["won"] == report["summary"]["verdict"]["won"]  # a win was held
    assert all(g["held_a_win"] for g in report["games"] if g["verdict"] == "let_a_win_go")
    unwon = where_games_slip(game, played["moves"], progress=False)["summary"]
    assert unwon["replayed"] == sum(g["result"] <= 0 for g in played["moves"])
