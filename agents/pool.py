"""The self-play opponent pool: the live policy plus frozen snapshots of its past selves.

Pure self-play against the latest policy tends to chase its own tail (strategies cycle,
or the policy collapses onto a narrow line that only beats itself). Mixing in past
snapshots keeps old weaknesses punished. The pool is an `EpisodeAwareOpponent` for
`games.envs.vector.SelfPlayVecEnv`: at the start of every game on a board it draws who
plays the other seat (the live policy with probability `latest_prob`, uniform random
moves with `random_prob`, one of the game's scripted players with `scripted_prob`,
otherwise a uniformly chosen snapshot), and every reply is sampled from that player's
masked policy (scripted players get the board itself, through `bind_states`).

Scripted players (e.g. Connect Four's one-ply win-or-block and depth-2 alpha-beta) are a
curriculum, as in league training: a policy that only meets itself can share one blind
spot with its opponent for a long time, while a searcher punishes every tactical slip.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Mapping

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
    :param scripted: named players ``(game, state, rng) -> action`` (a game's
        ``baseline_players()``); each game against them picks one uniformly.
    :param scripted_prob: probability that a game is played against a scripted player.
    :param game: the game the scripted players play (needed with `scripted`).
    """

    LATEST = -1
    RANDOM = -2
    SCRIPTED = -3  # scripted player k is coded SCRIPTED - k

    def __init__(self, policy: Any, num_envs: int, max_size: int = 16, latest_prob: float = 0.5,
                 random_prob: float = 0.0, seed: int = 0, scripted: Mapping[str, Any] | None = None,
                 scripted_prob: float = 0.0, game: Any = None) -> None:
        probs = {"latest_prob": latest_prob, "random_prob": random_prob, "scripted_prob": scripted_prob}
        if any(not 0 <= p <= 1 for p in probs.values()) or sum(probs.values()) > 1 + 1e-9:
            raise ValueError(f"need each share in [0, 1] and their sum <= 1; got {probs}")
        if max_size < 0:
            raise ValueError(f"max_size must be >= 0, got {max_size}")
        self.scripted = dict(scripted or {})
        self._scripted_by_index = list(self.scripted.values())
        if scripted_prob > 0 and not self.scripted:
            raise ValueError("scripted_prob > 0 needs scripted players (this game has none)")
        if self.scripted and game is None:
            raise ValueError("scripted players need the game they play")
        self.policy = policy
        self.max_size = max_size
        self.latest_prob = latest_prob
        self.random_prob = random_prob
        self.scripted_prob = scripted_prob if self.scripted else 0.0
        self.game = game
        self.state_of: Callable[[int], Any] | None = None
        self.snapshots: list[Any] = []
        self.snapshot_steps: list[int] = []
        self.assignment = np.full(num_envs, self.LATEST, dtype=np.int64)
        self.rng = np.random.default_rng(seed)

    def bind_states(self, state_of: Callable[[int], Any]) -> None:
        """Give scripted players the boards: `state_of(row)` is board `row`'s game state."""
        self.state_of = state_of

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
        edge_random = self.latest_prob + self.random_prob
        edge_scripted = edge_random + self.scripted_prob
        if self.snapshots:
            pick = self.rng.integers(0, len(self.snapshots), size=len(rows))
            use_snapshot = u >= edge_scripted
            who[use_snapshot] = pick[use_snapshot]
        who[(u >= self.latest_prob) & (u < edge_random)] = self.RANDOM
        if self.scripted:
            script = self.SCRIPTED - self.rng.integers(0, len(self.scripted), size=len(rows))
            use_script = (u >= edge_random) & (u < edge_scripted)
            who[use_script] = script[use_script]
        self.assignment[rows] = who

    def __call__(self, obs: np.ndarray, masks: np.ndarray, rows: np.ndarray) -> np.ndarray:
        actions = np.zeros(len(rows), dtype=np.int64)
        who = self.assignment[rows]
        for player in np.unique(who):
            sel = np.flatnonzero(who == player)
            if player == self.RANDOM:
                actions[sel] = [self.rng.choice(np.flatnonzero(m)) for m in masks[sel]]
                continue
            if player <= self.SCRIPTED:
                actions[sel] = self._scripted_actions(self.SCRIPTED - player, rows[sel])
                continue
            policy = self.policy if player == self.LATEST else self.snapshots[player]
            actions[sel] = sample_actions(policy, obs[sel], masks[sel])
        return actions

    def _scripted_actions(self, index: int, rows: np.ndarray) -> list[int]:
        if self.state_of is None:
            raise RuntimeError("scripted opponents need the boards: call pool.bind_states(env.state) first")
        player = self._scripted_by_index[index]
        return [int(player(self.game, self.state_of(int(row)), self.rng)) for row in rows]


MASKED_LOGIT = -1e8  # sb3-contrib's MaskableCategorical: the logit given to an illegal action


def sample_actions(policy: Any, obs: np.ndarray, masks: np.ndarray, deterministic: bool = False) -> np.ndarray:
    """Actions of a maskable SB3 policy for a batch (sampled, or the most likely legal one).

    The same arithmetic as ``policy.get_distribution(obs, masks).get_actions()`` (logits
    normalised, illegal ones set to -1e8, normalised again, softmax, one multinomial draw
    from torch's generator), so the actions and the random stream are bit for bit those of
    SB3's path, without building two distribution objects per call (the opponents' share
    of a 262k-move run went from 22.4 s to 18.1 s, partly the machine's drift between the
    two runs; `scripts/bench_training.py`).
    """
    with torch.no_grad():
        obs_t = torch.as_tensor(obs, device=policy.device)
        features = policy.extract_features(obs_t, policy.pi_features_extractor)
        logits = policy.action_net(policy.mlp_extractor.forward_actor(features))
        logits = logits.view(-1, logits.shape[-1])
        logits = logits - logits.logsumexp(dim=-1, keepdim=True)
        legal = torch.as_tensor(masks, dtype=torch.bool, device=logits.device).reshape(logits.shape)
        logits = torch.where(legal, logits, torch.tensor(MASKED_LOGIT, dtype=logits.dtype, device=logits.device))
        probs = torch.softmax(logits - logits.logsumexp(dim=-1, keepdim=True), dim=-1)
        if deterministic:
            actions = torch.argmax(probs, dim=1)
        else:
            actions = torch.multinomial(probs, 1, True).T.reshape(-1)
        return actions.cpu().numpy().astype(np.int64)
