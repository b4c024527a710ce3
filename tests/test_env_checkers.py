"""Every registered environment, as registered and with every kind of opponent, passes
gymnasium's and SB3's environment checkers on their default settings, and replays
exactly from a seed."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import games  # noqa: F401  (registers the solvedlens/* ids)

ENV_IDS = ["solvedlens/ConnectFour-v0", "solvedlens/TicTacToe-v0", "solvedlens/Nim-v0"]
# the exact oracle needs a minute per reply on early 7x6 positions (ply 2: ~58 s measured), so
# the oracle opponents play Connect Four on 5x4, where a reply takes milliseconds
SMALL_BOARD = {"solvedlens/ConnectFour-v0": {"width": 5, "height": 4}}
# SB3 reads 3-D Box observations as images; ours are float planes read by our own extractor
SB3_IMAGE_WARNINGS = ("is an image", "minimal resolution for an image")


class MaskedPolicy:
    """An SB3-style policy with action masking: the highest legal action."""

    def predict(self, obs, state=None, episode_start=None, deterministic=False, action_masks=None):
        return np.array([int(np.flatnonzero(action_masks)[-1])]), None


class UnmaskedPolicy:
    """An SB3-style policy without masking: always action 0 (illegal once taken; the env then plays randomly)."""

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        return np.array([0]), None


def random_callable(game, state, rng):
    """A plain callable opponent that draws from the environment's generator."""
    return int(rng.choice(game.legal_actions(state)))


OPPONENTS = {
    "defaults": None,
    "random": "random",
    "perfect": "perfect",
    "epsilon-perfect": "epsilon-perfect",
    "masked-policy": MaskedPolicy(),
    "unmasked-policy": UnmaskedPolicy(),
    "callable": random_callable,
}


def make_kwargs(env_id: str, opponent_kind: str) -> dict:
    kwargs = {} if OPPONENTS[opponent_kind] is None else {"opponent": OPPONENTS[opponent_kind]}
    if opponent_kind in ("perfect", "epsilon-perfect"):
        kwargs.update(SMALL_BOARD.get(env_id, {}))
    return kwargs


def library_warnings(caught: list[warnings.WarningMessage], allowed: tuple[str, ...] = ()) -> list[str]:
    """Messages of the checker's warnings, less deprecations of third-party code and the allowed ones."""
    messages = [str(w.message) for w in caught if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))]
    return [m for m in messages if not any(a in m for a in allowed)]


@pytest.mark.parametrize("opponent_kind", list(OPPONENTS))
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_registered_envs_pass_gymnasium_and_sb3_checkers(env_id, opponent_kind):
    kwargs = make_kwargs(env_id, opponent_kind)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(gymnasium.make(env_id, **kwargs).unwrapped)  # render and close checks included
    assert library_warnings(caught) == []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(gymnasium.make(env_id, **kwargs))  # the wrapper stack gymnasium.make returns
    assert library_warnings(caught, allowed=("is different from the unwrapped version",)) == []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(gymnasium.make(env_id, **kwargs).unwrapped)
    assert library_warnings(caught, allowed=SB3_IMAGE_WARNINGS) == []


def play(env, actions_rng: np.random.Generator, seed: int, episodes: int) -> list[tuple]:
    """Episodes from one seeded reset; learner actions from `actions_rng`, some of them illegal."""
    trajectory = []
    obs, info = env.reset(seed=seed)
    trajectory.append(("reset", obs.tobytes(), info["state"], info["learner"]))
    for _ in range(episodes):
        done = False
        while not done:
            legal = np.flatnonzero(env.action_masks())
            wild = actions_rng.random() < 0.05  # now and then an illegal (or any) action: a loss
            action = int(actions_rng.integers(env.action_space.n)) if wild else int(actions_rng.choice(legal))
            obs, reward, done, truncated, info = env.step(action)
            trajectory.append((action, obs.tobytes(), reward, done, truncated, info["state"], info.get("illegal_action")))
        obs, info = env.reset()
        trajectory.append(("reset", obs.tobytes(), info["state"], info["learner"]))
    return trajectory


@pytest.mark.parametrize("env_id, kwargs", [
    ("solvedlens/ConnectFour-v0", {"opponent": "perfect", "width": 5, "height": 4}),
    ("solvedlens/ConnectFour-v0", {"opponent": "random", "learner": "random"}),
    ("solvedlens/TicTacToe-v0", {"opponent": "epsilon-perfect", "epsilon": 0.5, "learner": "random"}),
    ("solvedlens/TicTacToe-v0", {"opponent": UnmaskedPolicy()}),
    ("solvedlens/Nim-v0", {"opponent": "perfect", "heaps": (3, 4, 5, 6)}),
    ("solvedlens/Nim-v0", {"opponent": random_callable}),
])
def test_same_seed_and_actions_give_the_same_trajectory(env_id, kwargs):
    runs = [play(gymnasium.make(env_id, **kwargs).unwrapped, np.random.default_rng(7), seed=11, episodes=6)
            for _ in range(2)]
    assert runs[0] == runs[1]
    # a seeded reset starts afresh: the same env replays the same games (seat sequence included)
    env = gymnasium.make(env_id, **kwargs).unwrapped
    play(env, np.random.default_rng(3), seed=5, episodes=3)
    assert play(env, np.random.default_rng(7), seed=11, episodes=6) == runs[0]
    # another seed gives another game (opponents, seats or tie-breaks differ somewhere)
    other = play(gymnasium.make(env_id, **kwargs).unwrapped, np.random.default_rng(7), seed=12, episodes=6)
    assert other != runs[0]


def test_perfect_opponent_breaks_ties_with_the_envs_generator():
    # on the empty 5x4 board the first player has several winning columns; which one the perfect
    # opponent picks must depend on the seed only
    env = gymnasium.make("solvedlens/ConnectFour-v0", opponent="perfect", learner="second", width=5, height=4).unwrapped
    game = env.game
    best = set(game.optimal_actions(game.initial_state()))
    assert len(best) > 1
    openings = {}
    for seed in range(24):
        _, info = env.reset(seed=seed)
        again = env.reset(seed=seed)[1]
        assert again["state"] == info["state"]
        openings[seed] = int(info["state"]) - 1  # the opponent's first column (1-based move string)
    assert set(openings.values()) == best  # every optimal column gets drawn, no other one


def test_a_real_maskable_ppo_opponent_passes_both_checkers():
    import torch
    from sb3_contrib import MaskablePPO

    torch.set_num_threads(1)
    model = MaskablePPO("MlpPolicy", gymnasium.make("solvedlens/TicTacToe-v0").unwrapped, n_steps=16, batch_size=16,
                        seed=0, device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(gymnasium.make("solvedlens/TicTacToe-v0", opponent=model).unwrapped)
        sb3_check_env(gymnasium.make("solvedlens/TicTacToe-v0", opponent=model).unwrapped)
    assert library_warnings(caught, allowed=SB3_IMAGE_WARNINGS) == []
