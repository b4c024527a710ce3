"""A gymnasium environment for any registered game: the learner against an opponent.

Registered as ``solvedlens/ConnectFour-v0``, ``solvedlens/TicTacToe-v0`` and
``solvedlens/Nim-v0`` (importing `games` registers them); game options (``width``,
``height``, ``heaps``) and the environment's own options are keyword arguments:

    env = gymnasium.make("solvedlens/ConnectFour-v0", opponent="perfect", width=6, height=5)

Observations are the game's planes relative to the learner; `action_masks()` gives the
legal actions as sb3-contrib's MaskablePPO expects; the reward is +1 / 0 / -1 from the
learner's side when the game ends (the learner's last move also carries the loss when
the opponent wins with its reply).

Illegal actions: by default (``illegal_action="loss"``) an illegal action loses the game,
as in PettingZoo's classic games: reward -1, ``terminated=True``,
``info["illegal_action"] = True``, the board stays as it was and no action is legal any
more. ``illegal_action="raise"`` raises a ``ValueError`` naming the action instead and
leaves the episode running. Stepping a finished episode raises ``ResetNeeded``.

Seeding: every random choice (the "random" seat, the random and epsilon-perfect
opponents, the perfect opponent's choice among equally good actions, a policy
opponent's fallback) is drawn from ``self.np_random``, and a seeded reset restarts the
"alternate" seat sequence, so two environments reset with the same seed and fed the
same actions play the same game (gymnasium's and SB3's checkers pass on the defaults).

Cost: "perfect" and "epsilon-perfect" ask the game's exact oracle for every reply. On
7x6 Connect Four the shipped opening book covers replies to 0-1 stones; a reply to 2
stones took about a minute, to 3 stones about 5 s, to 4 or more under a second (2 cores).
A reply slower than `SLOW_REPLY_S` is logged once per environment; use a smaller board
(``width=5, height=4``) for quick experiments.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gymnasium as gym
import numpy as np

from games.base import Game
from games.envs.opponents import make_opponent, opponent_name
from games.registry import available, get

logger = logging.getLogger(__name__)

SEATS = ("first", "second", "alternate", "random")
ILLEGAL_MODES = ("loss", "raise")
RENAMED_ILLEGAL_MODES = {"penalty": "loss"}  # old name -> new one; old names are refused with a pointer
SLOW_REPLY_S = 5.0  # an opponent reply slower than this is reported once per environment


def check_illegal_action_mode(mode: str) -> None:
    """Raise a ValueError unless `mode` is one of `ILLEGAL_MODES` (pointing renamed modes to their new name)."""
    if mode in RENAMED_ILLEGAL_MODES:
        raise ValueError(f"illegal_action={mode!r} was renamed {RENAMED_ILLEGAL_MODES[mode]!r} "
                         "(same behaviour: the mover loses with reward -1 and the game ends)")
    if mode not in ILLEGAL_MODES:
        raise ValueError(f"illegal_action must be one of {ILLEGAL_MODES}, got {mode!r}")


class SolvedGameEnv(gym.Env):
    """Single-agent environment: the learner plays one seat, `opponent` the other.

    :param game: a registered game name or a `Game`.
    :param opponent: "random", "perfect", "epsilon-perfect", an SB3 model/policy, or a
        callable ``(game, state, rng) -> action`` that draws any randomness from `rng`.
    :param learner: the learner's seat: "first", "second", "alternate" (first, second,
        first, ... counted from the last seeded reset) or "random" (drawn per episode).
    :param epsilon: random-move probability of the "epsilon-perfect" opponent.
    :param illegal_action: "loss" (reward -1, the episode ends, ``info["illegal_action"]``)
        or "raise" (a ValueError naming the action; the episode goes on).
    :param render_mode: None, "ansi" or "rgb_array".
    :param game_kwargs: options of the game (``width``, ``height``, ``heaps``, ...).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        game: str | Game,
        opponent: Any = "random",
        learner: str = "alternate",
        epsilon: float = 0.1,
        illegal_action: str = "loss",
        render_mode: str | None = None,
        **game_kwargs: Any,
    ) -> None:
        self.game = get(game, **game_kwargs)
        self.opponent = make_opponent(opponent, epsilon)
        if learner not in SEATS:
            raise ValueError(f"learner must be one of {SEATS}, got {learner!r}")
        check_illegal_action_mode(illegal_action)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.learner_mode = learner
        self.illegal_action = illegal_action
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0.0, 1.0, self.game.obs_shape, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(self.game.num_actions)
        self._episode = 0  # episodes since the last seeded reset (for learner="alternate")
        self._over = True  # no episode running: step() needs a reset() first
        self._lost_by_illegal_action = False
        self._warned_slow = False
        self.learner = 0
        self.state = self.game.initial_state()

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Start a game; with `seed`, also reseed ``np_random`` and restart the seat sequence."""
        super().reset(seed=seed)
        if seed is not None:
            self._episode = 0
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
        self._lost_by_illegal_action = False
        if self.game.to_play(self.state) != self.learner:
            self._opponent_move()
        self._over = self.game.is_terminal(self.state)
        return self._obs(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        """The learner's action, then the opponent's reply (unless the game is over)."""
        if self._over:
            raise gym.error.ResetNeeded("the episode is over (or was never started): call reset() before step()")
        action = int(action)
        if not (0 <= action < self.game.num_actions and self.game.legal_mask(self.state)[action]):
            message = (f"action {action} is illegal in {self.game.name} position {self.game.to_text(self.state)!r}; "
                       f"legal actions: {self.game.legal_actions(self.state)}")
            if self.illegal_action == "raise":
                raise ValueError(message)
            logger.debug("%s: the learner loses", message)
            self._over = self._lost_by_illegal_action = True
            return self._obs(), -1.0, True, False, self._info(illegal_action=True)
        self.state = self.game.play(self.state, action)
        if not self.game.is_terminal(self.state):
            self._opponent_move()
        terminated = self.game.is_terminal(self.state)
        self._over = terminated
        reward = float(self.game.returns(self.state, self.learner)) if terminated else 0.0
        return self._obs(), reward, terminated, False, self._info()

    def action_masks(self) -> np.ndarray:
        """Legal actions of the learner (what MaskablePPO reads); none once the game is lost or over."""
        if self._lost_by_illegal_action:
            return np.zeros(self.game.num_actions, dtype=bool)
        return self.game.legal_mask(self.state)

    def render(self) -> str | np.ndarray | None:
        if self.render_mode == "ansi":
            return self.game.render(self.state) + "\n"
        if self.render_mode == "rgb_array":
            return self.game.render_rgb(self.state)
        return None

    # ------------------------------------------------------------------ helpers
    def _opponent_move(self) -> None:
        """Play the opponent's reply, drawn with ``self.np_random``; refuse an illegal one."""
        start = time.perf_counter()
        action = self.opponent(self.game, self.state, self.np_random)
        elapsed_s = time.perf_counter() - start
        if elapsed_s > SLOW_REPLY_S and not self._warned_slow:
            # the exact oracle on an early position of a large board (e.g. 7x6 Connect Four before ply 10)
            self._warned_slow = True
            logger.warning("the opponent %s took %.0f s to reply in %s position %r; an exact-oracle opponent is "
                           "slow on early positions of large boards (try a smaller board or another opponent)",
                           opponent_name(self.opponent), elapsed_s, self.game.name, self.game.to_text(self.state))
        if not (isinstance(action, (int, np.integer)) and 0 <= action < self.game.num_actions
                and self.game.legal_mask(self.state)[action]):
            raise ValueError(
                f"opponent {opponent_name(self.opponent)} returned {action!r}, which is not a legal action (an int) in "
                f"{self.game.name} position {self.game.to_text(self.state)!r}; legal actions: "
                f"{self.game.legal_actions(self.state)}"
            )
        self.state = self.game.play(self.state, int(action))

    def _obs(self) -> np.ndarray:
        return self.game.observation(self.state, self.learner)

    def _info(self, **extra: Any) -> dict:
        return {"action_mask": self.action_masks(), "learner": self.learner,
                "state": self.game.to_text(self.state), **extra}


def register_gym_envs() -> None:
    """Register ``solvedlens/<GameClass>-v0`` with gymnasium for every registered game
    (``solvedlens/ConnectFour-v0`` for ``"connect4"``; idempotent)."""
    for game in available():
        env_id = f"solvedlens/{type(get(game)).__name__}-v0"
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point="games.envs.single_agent:SolvedGameEnv", kwargs={"game": game})
