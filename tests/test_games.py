"""The Game protocol, the registry and the three built-in games."""

from __future__ import annotations

import random

import numpy as np
import pytest

import games
from games.base import Game
from games.nim import Nim, NimState
from games.tictactoe import TicTacToe

# small boards keep the Connect Four oracle (the exact solver) fast
GAME_SPECS = [("connect4", {"width": 5, "height": 4}), ("tictactoe", {}), ("nim", {"heaps": (3, 4, 5)}), ("nim", {"heaps": (2, 2, 3)})]


def random_playout(game: Game, rng: random.Random, max_moves: int | None = None):
    """States along a random game (the initial one included)."""
    state = game.initial_state()
    states = [state]
    while not game.is_terminal(state) and (max_moves is None or len(states) <= max_moves):
        state = game.play(state, rng.choice(game.legal_actions(state)))
        states.append(state)
    return states


def test_registry():
    assert {"connect4", "tictactoe", "nim"} <= set(games.available())
    assert games.get("connect4", width=6, height=5).obs_shape == (3, 5, 6)
    assert games.get("nim", heaps=(1, 2)).num_actions == 3
    g = games.get("tictactoe")
    assert games.get(g) is g
    with pytest.raises(ValueError, match="unknown game 'chess'; registered games: connect4, nim, tictactoe"):
        games.get("chess")
    with pytest.raises(ValueError, match="bad options .* for game 'tictactoe'"):
        games.get("tictactoe", width=3)
    with pytest.raises(ValueError, match="already registered"):
        games.register("nim", Nim)
    with pytest.raises(ValueError, match="a 9x7 board needs"):
        games.get("connect4", width=9, height=7)


@pytest.mark.parametrize("name, kwargs", GAME_SPECS)
def test_protocol_on_random_games(name, kwargs):
    game = games.get(name, **kwargs)
    rng = random.Random(0)
    for _ in range(8):
        states = random_playout(game, rng)
        for ply, state in enumerate(states):
            assert game.to_play(state) == ply % 2
            mask = game.legal_mask(state)
            assert mask.dtype == bool and mask.shape == (game.num_actions,)
            assert game.is_terminal(state) == (not mask.any())
            obs = game.observation(state)
            assert obs.dtype == np.float32 and obs.shape == game.obs_shape
            assert game.parse(game.to_text(state)) == state
            assert isinstance(game.render(state), str)
            img = game.render_rgb(state)
            assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
            for bad in np.flatnonzero(~mask):
                with pytest.raises(ValueError, match=r"full|taken|takes \d+ from heap|out of range|game is over"):
                    game.play(state, int(bad))
        final = states[-1]
        assert game.outcome(final) in (-1, 0, 1)
        assert game.returns(final, 0) == -game.returns(final, 1) or game.outcome(final) == 0
        assert all(game.outcome(s) is None for s in states[:-1])


@pytest.mark.parametrize("name, kwargs", GAME_SPECS)
def test_observations_are_player_relative(name, kwargs):
    game = games.get(name, **kwargs)
    state = random_playout(game, random.Random(1), max_moves=3)[-1]
    mine, theirs = game.observation(state, 0), game.observation(state, 1)
    if name == "nim":  # impartial: no stone belongs to anyone
        assert np.array_equal(mine, theirs)
    else:
        assert np.array_equal(mine[0], theirs[1]) and np.array_equal(mine[1], theirs[0])
    assert np.array_equal(game.observation(state), game.observation(state, game.to_play(state)))


@pytest.mark.parametrize("name, kwargs", GAME_SPECS)
def test_symmetries_map_games_to_games(name, kwargs):
    game = games.get(name, **kwargs)
    syms = game.symmetries()
    assert syms[0].name == "identity"
    rng = random.Random(2)
    for _ in range(5):
        moves = []
        state = game.initial_state()
        while not game.is_terminal(state) and len(moves) < 6:
            a = rng.choice(game.legal_actions(state))
            moves.append(a)
            state = game.play(state, a)
        for sym in syms:
            image = game.initial_state()
            for a in moves:
                image = game.play(image, int(sym.action_perm[a]))
            assert game.canonical_key(image) == game.canonical_key(state)
            assert np.array_equal(sym.apply_planes(game.observation(state)), game.observation(image))
            assert np.array_equal(sym.apply_actions(game.legal_mask(state)), game.legal_mask(image))
            if name != "connect4":  # the Connect Four oracle is checked in test_solver
                np.testing.assert_array_equal(sym.apply_actions(game.action_values(state)), game.action_values(image))


def plain_ttt_value(cells: list[int], player: int) -> int:
    """Negamax from the definition on a 9-list (0 empty, 1 X, 2 O), for `player` (1/2) to move."""
    lines = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]
    if any(cells[a] == cells[b] == cells[c] == 3 - player for a, b, c in lines):
        return -1
    if all(cells):
        return 0
    best = -1
    for i in range(9):
        if not cells[i]:
            cells[i] = player
            best = max(best, -plain_ttt_value(cells, 3 - player))
            cells[i] = 0
    return best


def test_tictactoe_oracle():
    game = TicTacToe()
    empty = game.initial_state()
    assert game.value(empty) == 0
    assert list(game.action_values(empty)) == [0.0] * 9
    rng = random.Random(3)
    for _ in range(30):
        for state in random_playout(game, rng)[:-1]:
            cells = [1 if state.x >> i & 1 else 2 if state.o >> i & 1 else 0 for i in range(9)]
            assert game.value(state) == plain_ttt_value(cells, 1 + game.to_play(state))
            values = game.action_values(state)
            assert np.nanmax(values) == game.value(state)
    # X threatens the top row; O must block at square 2
    state = game.parse("xx..o....")
    assert game.optimal_actions(state) == [2]
    assert game.render(state).splitlines()[0] == "X X ."


def test_nim_oracle():
    game = Nim((3, 4, 5))
    start = game.initial_state()
    assert game.nim_sum(start) == 2 and game.value(start) == 1
    assert game.optimal_actions(start) == [game.encode(0, 2)]  # 3 -> 1 makes the nim-sum 0
    state = game.parse("1,4,5|1")
    assert game.value(state) == -1 and game.to_play(state) == 1
    assert game.outcome(game.parse("0,0,0|1")) == 1  # player 0 took the last object
    with pytest.raises(ValueError, match="heap 1 of '1,9,5|0' holds 9; it must be 0..4"):
        game.parse("1,9,5|0")
    with pytest.raises(ValueError, match="takes 3 from heap 0, which has 1"):
        game.play(NimState((1, 4, 5), 0), game.encode(0, 3))
    with pytest.raises(ValueError, match="at least one heap"):
        Nim(())
    # the closed form agrees with brute force on small heaps
    small = Nim((2, 3, 3))

    def brute(s: NimState) -> int:
        if small.is_terminal(s):
            return -1
        return max(-brute(small.play(s, a)) for a in small.legal_actions(s))

    for state in random_playout(small, random.Random(4)):
        assert small.value(state) == brute(state)


def test_connect4_game_uses_the_solver():
    game = games.get("connect4")
    pos = game.parse("4453")
    assert game.to_text(pos) == "4453"
    assert game.score(game.parse("121212")) == 18
    assert game.value(game.parse("121212")) == 1
    late = game.parse("2252576253462244111563365343671351441")  # End-Easy, score -1
    assert game.score(late) == -1 and game.value(late) == -1
    values, scores = game.action_values(late), game.action_scores(late)
    assert np.nanmax(scores) == -1
    assert np.array_equal(np.isnan(values), ~game.legal_mask(late))
    assert np.array_equal(values[~np.isnan(values)], np.sign(scores[~np.isnan(scores)]))
    board_text = game.to_text(type(pos).from_array(pos.to_array()))
    assert board_text.count("/") == 5 and game.parse(board_text) == pos
    with pytest.raises(ValueError, match="this game is 7x6"):
        game.parse("...../...../...../.....")
