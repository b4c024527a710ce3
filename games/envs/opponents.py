"""Opponents for single-agent environments: random, perfect, epsilon-perfect, a frozen
SB3 policy or any callable. An opponent is called as ``opponent(game, state, rng)`` and
returns a legal action; every random choice it makes is drawn from `rng` (the
environment passes its seeded ``np_random``), so a seeded game replays exactly."""

from __future__ import annotations

import inspect
import logging
from typing import Any, Callable

import numpy as np

from games.base import Game

logger = logging.getLogger(__name__)

Opponent = Callable[[Game, Any, np.random.Generator], int]

OPPONENT_NAMES = ("random", "perfect", "epsilon-perfect")


def random_opponent(game: Game, state: Any, rng: np.random.Generator) -> int:
    """A uniformly random legal action."""
    return int(rng.choice(np.flatnonzero(game.legal_mask(state))))


def perfect_opponent(game: Game, state: Any, rng: np.random.Generator) -> int:
    """A uniformly random action among those that keep the game value (solver-perfect).

    The tie-break among equally good actions is drawn from `rng`; the oracle's answer is
    exact, so the same `rng` state always gives the same action.
    """
    return int(rng.choice(game.optimal_actions(state)))


class EpsilonPerfect:
    """Random with probability `epsilon`, otherwise perfect (both draws from `rng`)."""

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


def accepts_action_masks(predict: Callable[..., Any]) -> bool:
    """Whether `predict` takes an ``action_masks`` keyword (by name or through ``**kwargs``).

    Read from the signature, never by calling it: a ``TypeError`` raised inside a policy
    must reach the caller, not be mistaken for "no masking support".
    """
    try:
        params = inspect.signature(predict).parameters.values()
    except (TypeError, ValueError):  # no introspectable signature (e.g. some C extensions)
        return False
    return any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        or (p.name == "action_masks" and p.kind is not inspect.Parameter.POSITIONAL_ONLY)
        for p in params
    )


class PolicyOpponent:
    """A frozen policy with SB3's ``predict(obs, action_masks=..., deterministic=...)``.

    Whether the policy takes ``action_masks`` (sb3-contrib's MaskablePPO does, plain SB3
    models do not) is read once from the signature of its ``predict``. A policy without
    masking may pick an illegal action: the opponent then plays a random legal one, drawn
    from the environment's `rng`. With ``deterministic=False`` the policy samples from its
    own (torch) generator, which the environment's seed does not control.

    :param policy: an object with ``predict(obs, deterministic=...)`` returning ``(action, state)``.
    :param deterministic: passed to ``predict``.
    """

    def __init__(self, policy: Any, deterministic: bool = True) -> None:
        if not callable(getattr(policy, "predict", None)):
            raise TypeError(f"{type(policy).__name__} has no predict(); pass an SB3 model or policy")
        self.policy = policy
        self.deterministic = deterministic
        self.masks_actions = accepts_action_masks(policy.predict)
        if not self.masks_actions:
            logger.debug("%s.predict takes no action_masks: illegal picks fall back to a random legal action",
                         type(policy).__name__)

    def __call__(self, game: Game, state: Any, rng: np.random.Generator) -> int:
        obs = game.observation(state)
        mask = game.legal_mask(state)
        if self.masks_actions:
            action, _ = self.policy.predict(obs, action_masks=mask, deterministic=self.deterministic)
        else:
            action, _ = self.policy.predict(obs, deterministic=self.deterministic)
        action = int(np.asarray(action).reshape(-1)[0])
        if not (0 <= action < mask.size and mask[action]):  # an unmasked policy may pick an illegal move
            return random_opponent(game, state, rng)
        return action

    def __repr__(self) -> str:
        return f"PolicyOpponent({type(self.policy).__name__})"


def opponent_name(opponent: Opponent) -> str:
    """A short name for messages: a function's name, otherwise the object's repr."""
    return getattr(opponent, "__qualname__", None) or repr(opponent)


def make_opponent(spec: Any, epsilon: float = 0.1) -> Opponent:
    """Build an opponent from "random", "perfect", "epsilon-perfect", an SB3 model/policy or a callable.

    :param spec: the opponent (see the module docstring).
    :param epsilon: random-move probability of "epsilon-perfect".
    """
    if isinstance(spec, str):
        if spec == "random":
            return random_opponent
        if spec == "perfect":
            return perfect_opponent
        if spec == "epsilon-perfect":
            return EpsilonPerfect(epsilon)
        raise ValueError(f"unknown opponent {spec!r}; use one of {OPPONENT_NAMES}, an SB3 policy or a callable "
                         "(game, state, rng) -> action")
    if hasattr(spec, "predict"):
        return PolicyOpponent(spec)
    if callable(spec):
        return spec
    raise ValueError(f"cannot use {spec!r} as an opponent; use one of {OPPONENT_NAMES}, an SB3 policy or a callable "
                     "(game, state, rng) -> action")
