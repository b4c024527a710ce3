"""Environments: library checkers, reward and perspective bookkeeping, the vectorised env."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from games.envs.aec import pettingzoo_env
from games.envs.single_agent import SolvedGameEnv
from games.envs.vector import SelfPlayVecEnv

@pytest.mark.parametrize("name, kwargs", [("connect4", {"width": 5, "height": 4}), ("tictactoe", {}), ("nim", {"heaps": (2, 3)})])
def test_pettingzoo_api_test_passes(name, kwargs):
    from pettingzoo.test import api_test

    api_test(pettingzoo_env(name, **kwargs), num_cycles=200)


def test_pettingzoo_illegal_action_ends_the_game_as_pettingzoo_classic_does():
    env = pettingzoo_env("tictactoe")
    env.reset(seed=0)
    env.step(4)
    env.step(4)  # player_1 plays the taken centre: it loses, player_0 gets 0 (as TerminateIllegalWrapper)
    seen = {}
    for agent in env.agent_iter():
        obs, reward, termination, truncation, info = env.last()
        seen[agent] = (reward, termination, truncation, info.get("illegal_action", False), int(obs["action_mask"].sum()))
        env.step(None)
    assert seen == {"player_0": (0.0, True, False, False, 0), "player_1": (-1.0, True, False, True, 0)}
    raising = pettingzoo_env("tictactoe", illegal_action="raise")
    raising.reset(seed=0)
    raising.step(4)
    with pytest.raises(ValueError, match=r"player_1 played 4, which is illegal in tictactoe position '....x....'"):
        raising.step(4)
    raising.step(0)  # nothing changed: player_1 is still to move
    assert raising.game.to_text(raising.state_) == "o...x...."
    with pytest.raises(ValueError, match="player_0 is still playing and must pass an action, not None"):
        raising.step(None)
    with pytest.raises(ValueError, match="illegal_action='penalty' was renamed 'loss'"):
        pettingzoo_env("tictactoe", illegal_action="penalty")


def scripted(actions):
    """An opponent that plays the given actions in order."""
    it = iter(actions)
    return lambda game, state, rng: next(it)


def test_gym_rewards_from_the_learners_side():
    # learner X stacks column 1 and wins on its 4th move
    env = SolvedGameEnv("connect4", opponent=scripted([1, 1, 1]), learner="first")
    obs, info = env.reset(seed=0)
    assert info["learner"] == 0 and obs[2].min() == 1.0  # the learner moves first
    for step in range(3):
        obs, reward, terminated, truncated, info = env.step(0)
        assert (reward, terminated) == (0.0, False)
        assert obs[0].sum() == step + 1 and obs[1].sum() == step + 1  # own stones in plane 0
    obs, reward, terminated, _, _ = env.step(0)
    assert (reward, terminated) == (1.0, True)
    # learner O loses when the opponent's reply completes four
    env = SolvedGameEnv("connect4", opponent=scripted([0, 0, 0, 0]), learner="second")
    obs, info = env.reset(seed=0)
    assert info["learner"] == 1 and obs[1].sum() == 1 and obs[2].max() == 0.0
    for _ in range(2):
        assert env.step(6)[1:3] == (0.0, False)
    obs, reward, terminated, _, _ = env.step(6)
    assert (reward, terminated) == (-1.0, True)


def test_gym_illegal_action_loses_by_default():
    env = SolvedGameEnv("tictactoe", opponent=scripted([4]), learner="first", render_mode="rgb_array")
    env.reset(seed=0)
    env.step(0)
    obs, reward, terminated, truncated, info = env.step(4)  # square 4 is the opponent's
    assert (reward, terminated, truncated, info["illegal_action"]) == (-1.0, True, False, True)
    assert info["state"] == "x...o...." and obs[0].sum() == 1 and obs[1].sum() == 1  # the board is unchanged
    assert not info["action_mask"].any() and not env.action_masks().any()  # the game is over: nothing is legal
    with pytest.raises(gymnasium.error.ResetNeeded, match=r"episode is over .* call reset\(\) before step\(\)"):
        env.step(1)
    assert env.render().shape == (96, 96, 3)
    # out-of-range actions lose too, and a new episode starts clean
    env = SolvedGameEnv("nim", heaps=(2, 3), learner="first")
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(99)
    assert (reward, terminated, info["illegal_action"]) == (-1.0, True, True)
    _, info = env.reset(seed=0)
    assert "illegal_action" not in info and info["action_mask"].any()


def test_gym_illegal_action_raise_mode_and_bad_options():
    env = SolvedGameEnv("tictactoe", opponent=scripted([4, 2]), learner="first", illegal_action="raise", render_mode="ansi")
    with pytest.raises(gymnasium.error.ResetNeeded, match="never started"):
        env.step(0)
    env.reset(seed=0)
    env.step(0)
    with pytest.raises(ValueError, match=r"action 4 is illegal in tictactoe position 'x...o....'; legal actions: \[1, 2, 3, 5, 6, 7, 8\]"):
        env.step(4)
    assert env.render().startswith("X . .")
    _, reward, terminated, _, _ = env.step(1)  # the episode goes on after the error
    assert (reward, terminated) == (0.0, False)
    with pytest.raises(ValueError, match="illegal_action='penalty' was renamed 'loss'"):
        SolvedGameEnv("tictactoe", illegal_action="penalty")
    with pytest.raises(ValueError, match=r"illegal_action must be one of \('loss', 'raise'\), got 'ignore'"):
        SolvedGameEnv("tictactoe", illegal_action="ignore")
    with pytest.raises(ValueError, match="unknown opponent 'genius'"):
        SolvedGameEnv("tictactoe", opponent="genius")
    with pytest.raises(ValueError, match="learner must be one of"):
        SolvedGameEnv("tictactoe", learner="both")


def test_gym_an_opponent_that_plays_an_illegal_action_is_named():
    env = SolvedGameEnv("tictactoe", opponent=scripted([0]), learner="first")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"opponent \S*<lambda> returned 0, which is not a legal action .* position 'x........'"):
        env.step(0)
    env = SolvedGameEnv("tictactoe", opponent=lambda game, state, rng: "4", learner="second")
    with pytest.raises(ValueError, match=r"opponent \S*<lambda> returned '4', which is not a legal action \(an int\)"):
        env.reset(seed=0)


def test_gym_a_slow_opponent_is_reported_once(monkeypatch, caplog):
    import games.envs.single_agent as single_agent

    monkeypatch.setattr(single_agent, "SLOW_REPLY_S", 0.0)  # every reply counts as slow
    env = SolvedGameEnv("tictactoe", opponent="perfect", learner="second")
    with caplog.at_level("WARNING", logger="games.envs.single_agent"):
        env.reset(seed=0)
        env.step(int(np.flatnonzero(env.action_masks())[0]))
    slow = [r.getMessage() for r in caplog.records if "to reply in" in r.getMessage()]
    assert len(slow) == 1 and slow[0].startswith("the opponent perfect_opponent took 0 s to reply in tictactoe position '.........'")


def test_gym_seats_alternate_and_perfect_opponent_never_loses():
    env = gymnasium.make("solvedlens/TicTacToe-v0", opponent="perfect").unwrapped
    rng = np.random.default_rng(0)
    seats = []
    for episode in range(20):
        obs, info = env.reset(seed=0) if episode == 0 else env.reset()
        seats.append(info["learner"])
        done = False
        while not done:
            action = int(rng.choice(np.flatnonzero(env.action_masks())))
            obs, reward, done, _, _ = env.step(action)
        assert reward <= 0.0
    assert seats == [0, 1] * 10
    # a seeded reset restarts the sequence (so a seed alone fixes the episode), an unseeded one continues it
    assert [env.reset(seed=s)[1]["learner"] for s in (1, 2)] == [0, 0]
    assert [env.reset()[1]["learner"] for _ in range(3)] == [1, 0, 1]
    # learner="random" draws the seat from the env's generator: mixed seats, fixed by the seed
    env = SolvedGameEnv("tictactoe", learner="random")
    drawn = [env.reset(seed=0)[1]["learner"]] + [env.reset()[1]["learner"] for _ in range(19)]
    assert set(drawn) == {0, 1}
    assert drawn == [env.reset(seed=0)[1]["learner"]] + [env.reset()[1]["learner"] for _ in range(19)]


def check_vec_matches_game(env: SelfPlayVecEnv) -> None:
    for i in range(env.num_envs):
        state = env.state(i)
        assert np.array_equal(env.masks[i], env.game.legal_mask(state))
        assert np.array_equal(env.obs[i], env.game.observation(state))


@pytest.mark.parametrize("name, kwargs", [("connect4", {}), ("connect4", {"width": 5, "height": 4}), ("tictactoe", {}), ("nim", {"heaps": (3, 4, 5)})])
def test_vec_env_matches_the_game_rules(name, kwargs):
    env = SelfPlayVecEnv(name, num_envs=16, seed=0, **kwargs)
    env.reset()
    check_vec_matches_game(env)
    rng = np.random.default_rng(0)
    shadow = [env.state(i) for i in range(16)]
    for _ in range(60):
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in env.masks])
        obs, rewards, dones, infos = env.step(actions)
        for i in range(16):
            after = env.game.play(shadow[i], int(actions[i]))
            assert dones[i] == env.game.is_terminal(after)
            if dones[i]:
                assert rewards[i] == abs(env.game.outcome(after))  # the mover won (1) or drew (0)
                assert np.array_equal(infos[i]["terminal_observation"], env.game.observation(after))
                assert infos[i]["loser_reward"] == (-1.0 if rewards[i] > 0 else 0.0)
                after = env.game.initial_state()
            else:
                assert rewards[i] == 0.0
            shadow[i] = after
            assert env.state(i) == after or env.game.to_text(env.state(i)) == env.game.to_text(after)
        check_vec_matches_game(env)


def test_vec_env_bookkeeping_on_a_hand_made_game():
    # board 0: the first player stacks column 1 (the second plays column 2) and wins on ply 7
    env = SelfPlayVecEnv("connect4", num_envs=2, seed=0)
    env.reset()
    script = [0, 1, 0, 1, 0, 1, 0]
    for ply, col in enumerate(script):
        movers_obs = env.obs[0].copy()
        obs, rewards, dones, infos = env.step(np.array([col, 3 + ply % 3]))
        mover = ply % 2
        assert env.last_movers[0] == mover
        assert movers_obs[2].max() == (1.0 if mover == 0 else 0.0)  # the observation was the mover's
        if ply < 6:
            assert rewards[0] == 0.0 and not dones[0]
            # the next observation belongs to the other player: its own stones in plane 0
            assert obs[0, 0].sum() == (ply + 1) // 2 and obs[0, 1].sum() == ply // 2 + 1
        else:
            assert rewards[0] == 1.0 and dones[0]
            assert infos[0]["loser_reward"] == -1.0 and infos[0]["mover"] == 0
            assert infos[0]["terminal_observation"][0].sum() == 3  # the loser's 3 stones
            assert obs[0].sum() == 42  # auto-reset: empty board, first player's parity plane
    assert not dones[1]  # board 1 cycled through columns 4-6 without a four


def test_vec_env_with_an_opponent_gives_the_learner_its_loss():
    def opponent(obs, masks):  # always the first legal column
        return masks.argmax(axis=1)

    env = SelfPlayVecEnv("connect4", num_envs=2, opponent=opponent, seed=0)
    obs = env.reset()
    assert list(env.learner_seat) == [0, 1]
    assert obs[1, 1].sum() == 1  # on board 1 the opponent opened
    # board 0: learner (first) plays column 7 three times while the opponent stacks column 1
    # board 1: learner (second) plays column 7 while the opponent stacks column 1 and wins
    for step in range(3):
        obs, rewards, dones, infos = env.step(np.array([6, 6]))
        if step < 2:
            assert list(rewards) == [0.0, 0.0] and not dones.any()
    assert rewards[1] == -1.0 and dones[1] and infos[1]["learner_seat"] == 1
    assert not dones[0]
    obs, rewards, dones, infos = env.step(np.array([6, 0]))
    assert rewards[0] == 1.0 and dones[0]  # the learner's fourth stone in column 7
    assert env.learner_seat[0] == 1 and env.learner_seat[1] == 0  # seats switch after each game


def test_vec_env_random_opponent_and_errors():
    env = SelfPlayVecEnv("tictactoe", num_envs=8, opponent="random", seed=1)
    env.reset()
    rng = np.random.default_rng(1)
    finished = 0
    for _ in range(100):
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in env.action_masks()])
        _, rewards, dones, infos = env.step(actions)
        finished += int(dones.sum())
        assert set(np.unique(rewards)) <= {-1.0, 0.0, 1.0}
    assert finished > 0
    with pytest.raises(ValueError, match="is illegal on board 0"):
        env.step(np.full(8, -1))
    with pytest.raises(ValueError, match="num_envs must be >= 1"):
        SelfPlayVecEnv("tictactoe", num_envs=0)
    masks = env.env_method("action_masks")
    assert len(masks) == 8 and masks[0].shape == (9,)
    assert env.has_attr("action_masks")


def test_frozen_sb3_policy_as_opponent():
    import torch
    from sb3_contrib import MaskablePPO

    torch.set_num_threads(1)
    train_env = SolvedGameEnv("tictactoe", learner="first")
    model = MaskablePPO("MlpPolicy", train_env, n_steps=16, batch_size=16, seed=0, device="cpu")
    env = SolvedGameEnv("tictactoe", opponent=model, learner="second")
    obs, info = env.reset(seed=0)
    assert obs[1].sum() == 1  # the policy opened
    done = False
    while not done:  # the policy always answers with a legal move
        obs, reward, done, _, _ = env.step(int(np.flatnonzero(env.action_masks())[0]))
    # a policy without action masks falls back to a random legal move when it picks an illegal one
    class Stubborn:
        def predict(self, obs, deterministic=True):
            return np.array([4]), None

    env = SolvedGameEnv("tictactoe", opponent=Stubborn(), learner="first")
    env.reset(seed=0)
    env.step(4)  # the opponent wants 4 too, which is now taken
    assert env.state.moves == 2
    # the vectorised env takes the policy as a batched opponent
    vec = SelfPlayVecEnv("tictactoe", num_envs=4, opponent=lambda o, m: model.predict(o, action_masks=m, deterministic=True)[0], seed=0)
    vec.reset()
    _, rewards, _, _ = vec.step(vec.masks.argmax(axis=1))
    assert rewards.shape == (4,)


def test_policy_opponent_reads_masking_support_from_the_signature():
    import games
    from games.envs.opponents import PolicyOpponent, accepts_action_masks

    calls = []

    class Buggy:  # takes masks, but has a bug of its own that raises a TypeError
        def predict(self, obs, state=None, episode_start=None, deterministic=False, action_masks=None):
            calls.append(action_masks is not None)
            return np.array([None + 1]), None

    env = SolvedGameEnv("tictactoe", opponent=Buggy(), learner="second")
    with pytest.raises(TypeError, match="unsupported operand"):
        env.reset(seed=0)
    assert calls == [True]  # called once, with the mask: the error is not retried without masks

    class WithKwargs:
        def predict(self, obs, **kwargs):
            calls.append(sorted(kwargs))
            return np.array([int(np.flatnonzero(kwargs["action_masks"])[-1])]), None

    class Plain:
        def predict(self, obs, deterministic=True):
            calls.append("plain")
            return np.array([8]), None

    game = games.get("tictactoe")
    calls.clear()
    assert PolicyOpponent(WithKwargs()).masks_actions and not PolicyOpponent(Plain()).masks_actions
    assert PolicyOpponent(WithKwargs())(game, game.play(game.initial_state(), 8), np.random.default_rng(0)) == 7
    assert PolicyOpponent(Plain())(game, game.initial_state(), np.random.default_rng(0)) == 8
    assert calls == [["action_masks", "deterministic"], "plain"]
    assert not accepts_action_masks(lambda obs, action_masks, /: None)  # positional-only: not a keyword
    assert not accepts_action_masks(max)  # no introspectable signature: no masks
    with pytest.raises(TypeError, match="object has no predict"):
        PolicyOpponent(object())


@pytest.mark.parametrize("name, opening", [("connect4", 6), ("tictactoe", 3)])
def test_vec_env_random_openings_hand_the_learner_live_positions(name, opening):
    import games

    env = SelfPlayVecEnv(name, num_envs=64, opponent="random", seed=3, random_opening=opening)
    game = games.get(name)
    obs = env.reset()
    rng = np.random.default_rng(0)
    plies = set()
    for _ in range(40):
        for i in range(env.num_envs):
            state = env.state(i)
            assert not game.is_terminal(state) and game.to_play(state) == env.learner_seat[i]
            assert np.array_equal(game.observation(state), obs[i])
            plies.add(int(state.moves))
        obs, _, _, _ = env.step(np.array([rng.choice(np.flatnonzero(m)) for m in env.action_masks()]))
    assert len(plies) > opening  # openings vary in length
    with pytest.raises(ValueError, match="needs an opponent"):
        SelfPlayVecEnv(name, num_envs=2, random_opening=2)
    with pytest.raises(ValueError, match=">= 0"):
        SelfPlayVecEnv(name, num_envs=2, opponent="random", random_opening=-1)
