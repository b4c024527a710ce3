"""The self-play opponent pool: the live policy plus frozen snapshots of its past selves.

Pure self-play against the latest policy tends to chase its own tail (strategies cycle,
or the policy collapses onto a narrow line that only beats itself). Mixing in past
snapshots keeps old weaknesses punished. The pool is an `EpisodeAwareOpponent` for
`games.envs.vector.SelfPlayVecEnv`: at the start of every game on a board it draws who
plays the other seat (the live policy with probability `latest_prob`, otherwise a
uniformly chosen snapshot), and every reply is sampled from that player's masked policy.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.checkpoints import atomic_torch_save

log = logging.getLogger(__name__)


class OpponentPool:
    """Who plays the learner's opponent seat, board by board.

    :param policy: the live (learning) SB3 policy; it is used as the "latest" opponent.
    :param num_envs: number of boards of the vectorised env.
    :param max_size: snapshots kept (the oldest is dropped first).
    :param latest_prob: probability that a game is played against the live policy.
    :param random_prob: probability that a game is played against uniform random moves.
    :param seed: seeds the draws.
    """

    LATEST = -1
    RANDOM = -2

    def __init__(self, policy: Any, num_envs: int, max_size: int = 16, latest_prob: float = 0.5,
                 random_prob: float = 0.0, seed: int = 0) -> None:
        if not 0 <= latest_prob <= 1 or not 0 <= random_prob <= 1 or latest_prob + random_prob > 1:
            raise ValueError(f"need 0 <= latest_prob, random_prob and their sum <= 1; got {latest_prob}, {random_prob}")
        if max_size < 0:
            raise ValueError(f"max_size must be >= 0, got {max_size}")
        self.policy = policy
        self.max_size = max_size
        self.latest_prob = latest_prob
        self.random_prob = random_prob
        self.snapshots: list[Any] = []
        self.snapshot_steps: list[int] = []
        self.assignment = np.full(num_envs, self.LATEST, dtype=np.int64)
        self.rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------ pool content
    def add_snapshot(self, timestep: int) -> None:
        """Freeze a copy of the live policy (taken at `timestep`) into the pool."""
        # a fresh policy with the same weights (deepcopy would also copy the optimizer and
        # trip over tensors cached from the last forward pass)
        snapshot = type(self.policy)(**self.policy._get_constructor_parameters()).to(self.policy.device)
        snapshot.load_state_dict(self.policy.state_dict())
        snapshot.set_training_mode(False)
        for p in snapshot.parameters():
            p.requires_grad_(False)
        self.snapshots.append(snapshot)
        self.snapshot_steps.append(int(timestep))
        if len(self.snapshots) > self.max_size:
            self.snapshots.pop(0)
            self.snapshot_steps.pop(0)
            # boards that were playing the dropped snapshot finish their game against the next one
            self.assignment[self.assignment >= 0] = np.maximum(self.assignment[self.assignment >= 0] - 1, 0)
        log.debug("pool: snapshot at %d steps (%d kept)", timestep, len(self.snapshots))

    def state_dict(self) -> dict:
        """What `load_state_dict` needs to rebuild the pool (weights, steps, RNG)."""
        return {
            "snapshot_steps": list(self.snapshot_steps),
            "snapshots": [s.state_dict() for s in self.snapshots],
            "rng": self.rng.bit_generator.state,
            "assignment": self.assignment.copy(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.snapshots, self.snapshot_steps = [], []
        for step, weights in zip(state["snapshot_steps"], state["snapshots"]):
            self.add_snapshot(step)
            self.snapshots[-1].load_state_dict(weights)
        self.rng.bit_generator.state = state["rng"]
        if len(state["assignment"]) == len(self.assignment):
            self.assignment[:] = state["assignment"]

    def save(self, path: str | Path) -> None:
        """Write the pool atomically (next to a checkpoint, for ``--resume``)."""
        atomic_torch_save(self.state_dict(), path)

    def load(self, path: str | Path) -> None:
        self.load_state_dict(torch.load(path, map_location=self.policy.device, weights_only=False))

    # ------------------------------------------------------------------ EpisodeAwareOpponent
    def new_episodes(self, rows: np.ndarray) -> None:
        """Draw the opponent of each board in `rows` for its next game."""
        u = self.rng.random(len(rows))
        who = np.full(len(rows), self.LATEST, dtype=np.int64)
        if self.snapshots:
            pick = self.rng.integers(0, len(self.snapshots), size=len(rows))
            use_snapshot = u >= self.latest_prob + self.random_prob
            who[use_snapshot] = pick[use_snapshot]
        who[(u >= self.latest_prob) & (u < self.latest_prob + self.random_prob)] = self.RANDOM
        self.assignment[rows] = who

    def __call__(self, obs: np.ndarray, masks: np.ndarray, rows: np.ndarray) -> np.ndarray:
        actions = np.zeros(len(rows), dtype=np.int64)
        who = self.assignment[rows]
        for player in np.unique(who):
            sel = np.flatnonzero(who == player)
            if player == self.RANDOM:
                actions[sel] = [self.rng.choice(np.flatnonzero(m)) for m in masks[sel]]
                continue
            policy = self.policy if player == self.LATEST else self.snapshots[player]
            actions[sel] = sample_actions(policy, obs[sel], masks[sel])
        return actions


def sample_actions(policy: Any, obs: np.ndarray, masks: np.ndarray, deterministic: bool = False) -> np.ndarray:
    """Actions of a maskable SB3 policy for a batch (sampled, or the most likely legal one)."""
    with torch.no_grad():
        obs_t = torch.as_tensor(obs, device=policy.device)
        dist = policy.get_distribution(obs_t, action_masks=masks)
        return dist.get_actions(deterministic=deterministic).cpu().numpy().astype(np.int64)
