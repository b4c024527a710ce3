"""Opponents for single-agent environments: random, perfect, epsilon-perfect, a frozen
SB3 policy or any callable. An opponent is called as ``opponent(game, state, rng)`` and
returns a legal action."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from games.base import Game

Opponent = Callable[[Game, Any, np.random.Generator], int]


def random_opponent(game: Game, state: Any, rng: np.random.Generator) -> int:
    """A uniformly random legal action."""
    return int(rng.choice(np.flatnonzero(game.legal_mask(state))))


def perfect_opponent(game: Game, state: Any, rng: np.random.Generator) -> int:
    """A uniformly random action among those that keep the game value (solver-perfect)."""
    return int(rng.choice(game.optimal_actions(state)))


class EpsilonPerfect:
    """Random with probability `epsilon`, otherwise perfect."""

    def __init__(self, epsilon: float) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.epsilon = epsilon

    def __call__(self, game: Game, state: Any, rng: np.random.Generator) -> int:
        if rng.random() < self.epsilon:
            return random_opponent(game, state, rng)
        return perfect_opponent(game, state, rng)

    def __repr__(self) -> str:
        return f"EpsilonPerfect({self.epsilon})"


class PolicyOpponent:
    """A frozen policy with SB3's ``predict(obs, action_masks=..., deterministic=...)``."""

    def __init__(self, policy: Any, deterministic: bool = True) -> None:
        if not hasattr(policy, "predict"):
            raise TypeError(f"{type(policy).__name__} has no predict(); pass an SB3 model or policy")
        self.policy = policy
        self.deterministic = deterministic

    def __call__(self, game: Game, state: Any, rng: np.random.Generator) -> int:
        obs = game.observation(state)
        mask = game.legal_mask(state)
        try:
            action, _ = self.policy.predict(obs, action_masks=mask, deterministic=self.deterministic)
        except TypeError:  # a policy without action masking
            action, _ = self.policy.predict(obs, deterministic=self.deterministic)
        action = int(np.asarray(action).reshape(-1)[0])
        if not mask[action]:  # an unmasked policy may pick an illegal move: fall back to random
            return random_opponent(game, state, rng)
        return action


def make_opponent(spec: Any, epsilon: float = 0.1) -> Opponent:
    """Build an opponent from "random", "perfect", "epsilon-perfect", an SB3 model/policy or a callable."""
    if isinstance(spec, str):
        if spec == "random":
            return random_opponent
        if spec == "perfect":
            return perfect_opponent
        if spec in ("epsilon-perfect", "epsilon"):
            return EpsilonPerfect(epsilon)
        raise ValueError(f"unknown opponent {spec!r}; use 'random', 'perfect', 'epsilon-perfect', an SB3 policy or a callable")
    if hasattr(spec, "predict"):
        return PolicyOpponent(spec)
    if callable(spec):
        return spec
    raise ValueError(f"cannot use {spec!r} as an opponent")
