"""A vectorised self-play environment (SB3 `VecEnv`): N boards stepped at once in numba.

One policy plays both seats; every observation is relative to the player about to move
(the one whose action the next `step` applies). Finished boards restart at once
(SB3's auto-reset: ``infos[i]["terminal_observation"]`` holds the last observation).

Two modes:

* ``opponent=None`` (both seats from the caller): each `step` plays one ply on every
  board, for whichever side is to move. ``rewards[i]`` is the reward of the player who
  just moved (+1 if that move won, else 0). When a move wins, the loser's last move,
  played one step earlier on the same board, earned -1: the env reports it in
  ``infos[i]["loser_reward"] = -1.0`` and in `last_loser_reward`, so a two-seat learner
  assigns it to that transition (public tutorials forget the loser's -1).
* ``opponent`` given ("random", or a batched callable ``(obs, masks) -> actions`` such
  as a frozen policy): each `step` is a learner move followed by the opponent's reply;
  an opponent that also has ``new_episodes(rows)`` (an `EpisodeAwareOpponent`, e.g. a
  pool that picks an opponent per game) is told which boards start a game and is called
  as ``opponent(obs, masks, rows)``;
  the learner's seat alternates between episodes (board i starts as seat ``i % 2``),
  and the reward is +1 / 0 / -1 from the learner's side, on the learner's transition
  that ended the game (including when the opponent's reply wins).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import gymnasium as gym
import numpy as np
from numba import njit
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from games.base import Game
from games.registry import get

BatchOpponent = Callable[[np.ndarray, np.ndarray], np.ndarray]


@runtime_checkable
class EpisodeAwareOpponent(Protocol):
    """A batched opponent that knows which board each row is and when a board starts a game."""

    def new_episodes(self, rows: np.ndarray) -> None:
        """Boards `rows` start a new game (choose who plays them, reset per-game state)."""

    def __call__(self, obs: np.ndarray, masks: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Actions for boards `rows`, given their observations and legal-action masks."""


@njit(cache=True)
def _seed_numba(seed):
    np.random.seed(seed)


class SelfPlayVecEnv(VecEnv):
    """N boards of one game in a single SB3 VecEnv (see the module docstring).

    :param game: registered game name or `Game`.
    :param num_envs: number of boards.
    :param opponent: None (the caller plays both seats), "random", or a batched callable.
    :param seed: seeds the random opponent, random openings (numba's generator).
    :param random_opening: with an opponent, each game starts with a uniformly drawn number
        (0 to this) of uniformly random plies before the learner's seat comes into play, so
        that training sees varied positions (a near-deterministic policy playing itself
        otherwise repeats a few lines). 0 = every game from the initial state.
    :param game_kwargs: game options.
    """

    def __init__(self, game: str | Game, num_envs: int = 64, opponent: str | BatchOpponent | None = None,
                 seed: int | None = None, random_opening: int = 0, **game_kwargs: Any) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.game = get(game, **game_kwargs)
        self.ops = self.game.batch_ops()
        obs_space = gym.spaces.Box(0.0, 1.0, self.game.obs_shape, dtype=np.float32)
        self.render_mode = "rgb_array"  # get_images() draws every board
        super().__init__(num_envs, obs_space, gym.spaces.Discrete(self.game.num_actions))
        if opponent is not None and opponent != "random" and not callable(opponent):
            raise ValueError(f"opponent must be None, 'random' or a callable (obs, masks) -> actions, got {opponent!r}")
        self.opponent = opponent
        n = num_envs
        self.states = np.zeros((n, self.ops.state_width), dtype=np.uint64)
        self.rows = np.arange(n, dtype=np.int64)
        self.obs = np.zeros((n, *self.game.obs_shape), dtype=np.float32)
        self.masks = np.zeros((n, self.game.num_actions), dtype=np.bool_)
        self.learner_seat = (np.arange(n) % 2).astype(np.int64)  # used with an opponent
        self.last_movers = np.zeros(n, dtype=np.int64)  # seat that moved in the last step
        self.last_loser_reward = np.zeros(n, dtype=np.float32)
        self.episode_returns = np.zeros(n, dtype=np.float32)
        self.episode_lengths = np.zeros(n, dtype=np.int64)
        self._actions = np.zeros(n, dtype=np.int64)
        self._terminal = np.zeros(n, dtype=np.bool_)
        self._reward = np.zeros(n, dtype=np.float32)
        self._seed = seed
        if random_opening < 0:
            raise ValueError(f"random_opening must be >= 0, got {random_opening}")
        if random_opening and opponent is None:
            raise ValueError("random_opening needs an opponent (it decides whose turn the learner's seat is)")
        self.random_opening = int(random_opening)
        self._rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------ SB3 VecEnv API
    def reset(self) -> np.ndarray:
        seed = self._seeds[0] if self._seeds and self._seeds[0] is not None else self._seed
        if seed is not None:
            _seed_numba(int(seed) % (2**32))
            self._rng = np.random.default_rng(seed)
        self._reset_seeds()
        self.ops.reset(self.states, self.rows)
        self.learner_seat[:] = np.arange(self.num_envs) % 2
        if self.opponent is not None:
            self._opponent_new_episodes(self.rows)
            self._opponent_opening(self.rows)
        self.episode_returns[:] = 0
        self.episode_lengths[:] = 0
        self._refresh(self.rows)
        return self.obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions[:] = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)

    def step_wait(self):
        n = self.num_envs
        self.ops.to_play(self.states, self.rows, self.last_movers)
        bad = self.ops.play(self.states, self._actions, self.rows, self._terminal, self._reward)
        if bad >= 0:
            raise ValueError(
                f"action {self._actions[bad]} is illegal on board {bad} ({self.game.name}); "
                f"legal actions there: {np.flatnonzero(self.masks[bad]).tolist()}"
            )
        rewards = self._reward.copy()
        terminal = self._terminal.copy()
        self.last_loser_reward[:] = 0.0
        if self.opponent is None:
            self.last_loser_reward[terminal & (rewards > 0)] = -1.0
        else:
            live = np.flatnonzero(~terminal)
            if live.size:
                replies = self._opponent_actions(live)
                t = np.zeros(live.size, dtype=np.bool_)
                r = np.zeros(live.size, dtype=np.float32)
                bad = self.ops.play(self.states, replies, live, t, r)
                if bad >= 0:
                    raise ValueError(f"the opponent played illegal action {replies[bad]} on board {live[bad]}")
                terminal[live] = t
                rewards[live] = -r  # the opponent's win is the learner's loss
        self.episode_returns += rewards
        self.episode_lengths += 1
        done_rows = np.flatnonzero(terminal)
        infos: list[dict] = [{} for _ in range(n)]
        if done_rows.size:
            self._refresh(done_rows)  # observations of the final positions
            for i in done_rows:
                info = infos[i]
                info["terminal_observation"] = self.obs[i].copy()
                info["episode"] = {"r": float(self.episode_returns[i]), "l": int(self.episode_lengths[i])}
                if self.opponent is None:
                    info["loser_reward"] = float(self.last_loser_reward[i])
                    info["mover"] = int(self.last_movers[i])
                else:
                    info["learner_seat"] = int(self.learner_seat[i])
            self.episode_returns[done_rows] = 0
            self.episode_lengths[done_rows] = 0
            self.ops.reset(self.states, done_rows)
            if self.opponent is not None:
                self.learner_seat[done_rows] ^= 1
                self._opponent_new_episodes(done_rows)
                self._opponent_opening(done_rows)
        self._refresh(self.rows)
        return self.obs.copy(), rewards, terminal, infos

    def close(self) -> None:
        pass

    def action_masks(self) -> np.ndarray:
        """Legal actions of every board, ``[num_envs, num_actions]`` (for MaskablePPO)."""
        return self.masks.copy()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        if not hasattr(self, attr_name):
            raise AttributeError(f"{type(self).__name__} has no attribute {attr_name!r}")
        return [getattr(self, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        idx = self._indices(indices)
        if method_name == "action_masks":
            return [self.masks[i].copy() for i in idx]
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result for _ in idx]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [self.game.render_rgb(self.state(i)) for i in range(self.num_envs)]

    def state(self, i: int) -> Any:
        """Board i as the game's state object (for rendering, tests and debugging)."""
        return self.ops.to_state(self.states[i])

    # ------------------------------------------------------------------ helpers
    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def _refresh(self, rows: np.ndarray) -> None:
        """Recompute observations and masks of `rows` (in place)."""
        if rows.size == self.num_envs:
            self.ops.observe(self.states, rows, self.obs)
            self.ops.masks(self.states, rows, self.masks)
        else:
            obs = np.zeros((rows.size, *self.game.obs_shape), dtype=np.float32)
            masks = np.zeros((rows.size, self.game.num_actions), dtype=np.bool_)
            self.ops.observe(self.states, rows, obs)
            self.ops.masks(self.states, rows, masks)
            self.obs[rows] = obs
            self.masks[rows] = masks

    def _opponent_actions(self, rows: np.ndarray) -> np.ndarray:
        out = np.zeros(rows.size, dtype=np.int64)
        if self.opponent == "random":
            self.ops.random_actions(self.states, rows, out)
            return out
        obs = np.zeros((rows.size, *self.game.obs_shape), dtype=np.float32)
        masks = np.zeros((rows.size, self.game.num_actions), dtype=np.bool_)
        self.ops.observe(self.states, rows, obs)
        self.ops.masks(self.states, rows, masks)
        if isinstance(self.opponent, EpisodeAwareOpponent):
            actions = self.opponent(obs, masks, rows)
        else:
            actions = self.opponent(obs, masks)
        return np.asarray(actions, dtype=np.int64).reshape(rows.size)

    def _opponent_new_episodes(self, rows: np.ndarray) -> None:
        if isinstance(self.opponent, EpisodeAwareOpponent):
            self.opponent.new_episodes(rows)

    def _random_plies(self, rows: np.ndarray, tries: int = 3) -> None:
        """Play a uniformly drawn number of random plies on fresh boards `rows`, never ending a game.

        A random move that would end the game is taken back and another drawn (up to `tries`
        times); if every try ends it, that board's opening stops there.
        """
        plies = self._rng.integers(0, self.random_opening + 1, size=rows.size)
        for ply in range(self.random_opening):
            live = rows[plies > ply]
            for _ in range(tries):
                if live.size == 0:
                    break
                saved = self.states[live].copy()
                actions = np.zeros(live.size, dtype=np.int64)
                t = np.zeros(live.size, dtype=np.bool_)
                r = np.zeros(live.size, dtype=np.float32)
                self.ops.random_actions(self.states, live, actions)
                self.ops.play(self.states, actions, live, t, r)
                self.states[live[t]] = saved[t]  # take back moves that ended the game, then retry those boards
                live = live[t]
            plies[np.isin(rows, live)] = ply  # boards where every try ended the game stop their opening

    def _opponent_opening(self, rows: np.ndarray) -> None:
        """Random opening plies (if any), then the opponent moves where it is not the learner's turn."""
        if self.random_opening:
            self._random_plies(rows)
        movers = np.zeros(rows.size, dtype=np.int64)
        self.ops.to_play(self.states, rows, movers)
        second = rows[movers != self.learner_seat[rows]]
        if second.size:
            replies = self._opponent_actions(second)
            t = np.zeros(second.size, dtype=np.bool_)
            r = np.zeros(second.size, dtype=np.float32)
            self.ops.play(self.states, replies, second, t, r)
            ended = second[t]
            if ended.size:  # the reply to a random opening ended the game: deal that board again
                self.ops.reset(self.states, ended)
                self._opponent_new_episodes(ended)
                self._opponent_opening(ended)
