"""A gymnasium environment for any registered game: the learner against an opponent.

Registered as ``solvedlens/ConnectFour-v0``, ``solvedlens/TicTacToe-v0`` and
``solvedlens/Nim-v0`` (importing `games` registers them); game options (``width``,
``height``, ``heaps``) and the environment's own options are keyword arguments:

    env = gymnasium.make("solvedlens/ConnectFour-v0", opponent="perfect", width=6, height=5)

Observations are the game's planes relative to the learner; `action_masks()` gives the
legal actions as sb3-contrib's MaskablePPO expects; the reward is +1 / 0 / -1 from the
learner's side when the game ends (the learner's last move also carries the loss when
the opponent wins with its reply).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from games.base import Game
from games.envs.opponents import make_opponent
from games.registry import get

SEATS = ("first", "second", "alternate", "random")
ILLEGAL_MODES = ("raise", "penalty")


class SolvedGameEnv(gym.Env):
    """Single-agent environment: the learner plays one seat, `opponent` the other.

    :param game: a registered game name or a `Game`.
    :param opponent: "random", "perfect", "epsilon-perfect", an SB3 model/policy, or a
        callable ``(game, state, rng) -> action``.
    :param learner: the learner's seat: "first", "second", "alternate" (switch every
        episode, first in the first one) or "random".
    :param epsilon: random-move probability of the "epsilon-perfect" opponent.
    :param illegal_action: "raise" (a ValueError naming the action) or "penalty"
        (reward -1 and the episode ends).
    :param render_mode: None, "ansi" or "rgb_array".
    :param game_kwargs: options of the game (``width``, ``height``, ``heaps``, ...).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        game: str | Game = "connect4",
        opponent: Any = "random",
        learner: str = "alternate",
        epsilon: float = 0.1,
        illegal_action: str = "raise",
        render_mode: str | None = None,
        **game_kwargs: Any,
    ) -> None:
        self.game = get(game, **game_kwargs)
        self.opponent = make_opponent(opponent, epsilon)
        if learner not in SEATS:
            raise ValueError(f"learner must be one of {SEATS}, got {learner!r}")
        if illegal_action not in ILLEGAL_MODES:
            raise ValueError(f"illegal_action must be one of {ILLEGAL_MODES}, got {illegal_action!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.learner_mode = learner
        self.illegal_action = illegal_action
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0.0, 1.0, self.game.obs_shape, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(self.game.num_actions)
        self._episode = 0
        self.learner = 0
        self.state = self.game.initial_state()

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self.learner_mode == "first":
            self.learner = 0
        elif self.learner_mode == "second":
            self.learner = 1
        elif self.learner_mode == "alternate":
            self.learner = self._episode % 2
        else:
            self.learner = int(self.np_random.integers(2))
        self._episode += 1
        self.state = self.game.initial_state()
        if self.game.to_play(self.state) != self.learner:
            self.state = self.game.play(self.state, self.opponent(self.game, self.state, self.np_random))
        return self._obs(), self._info()

    def step(self, action):
        action = int(action)
        if not (0 <= action < self.game.num_actions and self.game.legal_mask(self.state)[action]):
            if self.illegal_action == "penalty":
                return self._obs(), -1.0, True, False, self._info(illegal_action=True)
            raise ValueError(
                f"action {action} is illegal in {self.game.name} position {self.game.to_text(self.state)!r}; "
                f"legal actions: {self.game.legal_actions(self.state)}"
            )
        self.state = self.game.play(self.state, action)
        if not self.game.is_terminal(self.state):
            self.state = self.game.play(self.state, self.opponent(self.game, self.state, self.np_random))
        terminated = self.game.is_terminal(self.state)
        reward = float(self.game.returns(self.state, self.learner)) if terminated else 0.0
        return self._obs(), reward, terminated, False, self._info()

    def action_masks(self) -> np.ndarray:
        """Legal actions of the learner (what MaskablePPO reads)."""
        return self.game.legal_mask(self.state)

    def render(self):
        if self.render_mode == "ansi":
            return self.game.render(self.state) + "\n"
        if self.render_mode == "rgb_array":
            return self.game.render_rgb(self.state)
        return None

    # ------------------------------------------------------------------ helpers
    def _obs(self) -> np.ndarray:
        return self.game.observation(self.state, self.learner)

    def _info(self, **extra: Any) -> dict:
        return {"action_mask": self.game.legal_mask(self.state), "learner": self.learner,
                "state": self.game.to_text(self.state), **extra}


def register_gym_envs() -> None:
    """Register the solvedlens/* environment ids with gymnasium (idempotent)."""
    for env_id, game in (("solvedlens/ConnectFour-v0", "connect4"), ("solvedlens/TicTacToe-v0", "tictactoe"), ("solvedlens/Nim-v0", "nim")):
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point="games.envs.single_agent:SolvedGameEnv", kwargs={"game": game})
