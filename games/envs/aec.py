"""A PettingZoo AEC environment for any registered game, used like PettingZoo's classic games.

    env = games.pettingzoo_env("tictactoe")
    env.reset(seed=0)
    for agent in env.agent_iter():
        obs, reward, termination, truncation, info = env.last()
        action = None if termination or truncation else policy(obs["observation"], obs["action_mask"])
        env.step(action)

Agents are ``player_0`` (moves first) and ``player_1``; each observes
``{"observation": planes relative to itself, "action_mask": int8 legal actions}``.
Rewards are +1 / -1 / 0 at the end of the game. An illegal action ends the game as in
PettingZoo's classic ``env()`` (its ``TerminateIllegalWrapper``): the mover gets -1, the
other agent 0, and the mover's info says ``illegal_action=True``; pass
``illegal_action="raise"`` for a ``ValueError`` naming the action instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv
from pettingzoo.utils import AgentSelector

from games.base import Game
from games.envs.single_agent import check_illegal_action_mode
from games.registry import get


class SolvedGameAEC(AECEnv):
    """Two-player, turn-based PettingZoo environment over a `Game`.

    :param game: a registered game name or a `Game`.
    :param render_mode: None, "ansi" or "rgb_array".
    :param illegal_action: "loss" (the mover gets -1, the other agent 0, the game ends) or
        "raise" (a ValueError naming the action; nothing changes).
    :param game_kwargs: options of the game (``width``, ``height``, ``heaps``, ...).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "name": "solvedlens_v0", "is_parallelizable": False, "render_fps": 4}

    def __init__(self, game: str | Game, render_mode: str | None = None, illegal_action: str = "loss",
                 **game_kwargs: Any) -> None:
        super().__init__()
        self.game = get(game, **game_kwargs)
        check_illegal_action_mode(illegal_action)
        self.illegal_action = illegal_action
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.render_mode = render_mode
        self.metadata = dict(self.metadata, name=f"solvedlens_{self.game.name}_v0")
        self.possible_agents = ["player_0", "player_1"]
        obs_space = spaces.Dict({
            "observation": spaces.Box(0.0, 1.0, self.game.obs_shape, dtype=np.float32),
            "action_mask": spaces.Box(0, 1, (self.game.num_actions,), dtype=np.int8),
        })
        self.observation_spaces = {a: obs_space for a in self.possible_agents}
        self.action_spaces = {a: spaces.Discrete(self.game.num_actions) for a in self.possible_agents}
        self.state_ = self.game.initial_state()
        self._lost_by_illegal_action = False

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        if seed is not None:
            for i, agent in enumerate(self.possible_agents):
                self.action_spaces[agent].seed(seed + i)
        self.agents = self.possible_agents[:]
        self.state_ = self.game.initial_state()
        self._lost_by_illegal_action = False
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {} for a in self.agents}
        self._agent_selector = AgentSelector(self.agents)
        self.agent_selection = self._agent_selector.reset()

    def observe(self, agent: str) -> dict:
        player = self.possible_agents.index(agent)
        if player == self.game.to_play(self.state_) and not self._lost_by_illegal_action:
            mask = self.game.legal_mask(self.state_)
        else:
            mask = np.zeros(self.game.num_actions, bool)
        return {"observation": self.game.observation(self.state_, player), "action_mask": mask.astype(np.int8)}

    def step(self, action: int | None) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        if action is None:
            raise ValueError(f"{agent} is still playing and must pass an action, not None")
        if not (0 <= int(action) < self.game.num_actions and self.game.legal_mask(self.state_)[int(action)]):
            message = (f"{agent} played {action!r}, which is illegal in {self.game.name} position "
                       f"{self.game.to_text(self.state_)!r}; legal actions: {self.game.legal_actions(self.state_)}")
            if self.illegal_action == "raise":
                raise ValueError(message)
            self._cumulative_rewards[agent] = 0.0
            self._lost_by_illegal_action = True
            for a in self.agents:  # as PettingZoo's TerminateIllegalWrapper: the mover -1, the other 0
                self.rewards[a] = -1.0 if a == agent else 0.0
                self.terminations[a] = True
            self.infos[agent] = {"illegal_action": True}
            self._accumulate_rewards()
            self.agent_selection = self._agent_selector.next()
            return
        self._cumulative_rewards[agent] = 0.0
        self.state_ = self.game.play(self.state_, int(action))
        if self.game.is_terminal(self.state_):
            for i, a in enumerate(self.agents):
                self.rewards[a] = float(self.game.returns(self.state_, i))
                self.terminations[a] = True
        self._accumulate_rewards()
        self.agent_selection = self._agent_selector.next()

    def render(self):
        if self.render_mode == "ansi":
            return self.game.render(self.state_)
        if self.render_mode == "rgb_array":
            return self.game.render_rgb(self.state_)
        return None

    def close(self) -> None:
        pass


def pettingzoo_env(name: str | Game, **kwargs: Any) -> SolvedGameAEC:
    """The PettingZoo AEC environment of a registered game (game options as kwargs)."""
    return SolvedGameAEC(name, **kwargs)
