"""The `Game` protocol every solved game implements, and the symmetry type it uses.

A game is a stateless rules object; its states are immutable and hashable. Everything
the rest of the framework needs goes through this interface: environments, agent
training, concept labelling and probe sweeps take a game (or its registry name) and
never look inside a state.

Conventions:
* players are 0 (first to move) and 1; `to_play(state)` says whose turn it is;
* `outcome(state)` of a finished game is +1 if player 0 won, -1 if player 1 won, 0 draw;
* values are from the side to move: `value(state)` is -1/0/+1 under perfect play, and
  `action_values(state)[a]` is the value for the side to move of playing `a` (NaN if
  illegal), so the best actions are the argmax;
* `observation(state)` is a float32 ``C x H x W`` array relative to the side to move:
  plane 0 its own stones, plane 1 the opponent's, then whatever else the game needs.

Layers (docs/architecture.md): this module sits with the rules and imports nothing above
them. A game whose exact oracle lives above the rules (Connect Four's solver) names it in
`oracle_module`; `Game.oracle` imports that module the first time an oracle question is
asked, as `concepts_module` is imported by `games.concepts`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Hashable

import numpy as np


@dataclass(frozen=True)
class BatchOps:
    """Compiled kernels over many boards held in a ``uint64 [N, state_width]`` array.

    Every kernel works in place on the rows given; actions are ints, players 0/1.

    * ``reset(states, rows)``: put boards `rows` in the initial position;
    * ``play(states, actions, rows, terminal, mover_reward)``: play ``actions[i]`` on
      board ``rows[i]`` for its side to move; set ``terminal[i]`` and the mover's reward
      ``mover_reward[i]`` (+1 it won, 0 otherwise); returns the first illegal ``i`` or -1;
    * ``observe(states, rows, out)``: ``out[i]`` = planes of board ``rows[i]`` relative to
      its side to move;
    * ``masks(states, rows, out)``: legal-action masks;
    * ``random_actions(states, rows, out)``: a uniformly random legal action per board;
    * ``to_play(states, rows, out)``: the side to move of each board;
    * ``to_state(row)``: (plain Python) the game's state object of one board row.
    """

    state_width: int
    reset: Any
    play: Any
    observe: Any
    masks: Any
    random_actions: Any
    to_play: Any
    to_state: Any


@dataclass(frozen=True)
class Symmetry:
    """A symmetry of the board: how it moves squares and actions.

    :param name: e.g. "identity", "mirror", "rot90".
    :param square_perm: for each flattened ``H*W`` square of the transformed board, the
        source square it comes from (``planes_out[..., i] = planes_in[..., square_perm[i]]``).
    :param action_perm: ``action_perm[a]`` is the image of action `a`.
    """

    name: str
    square_perm: np.ndarray
    action_perm: np.ndarray

    def apply_planes(self, planes: np.ndarray) -> np.ndarray:
        """Transform ``(..., C, H, W)`` observation planes."""
        shape = planes.shape
        flat = planes.reshape(*shape[:-2], shape[-2] * shape[-1])
        return flat[..., self.square_perm].reshape(shape)

    def apply_actions(self, per_action: np.ndarray) -> np.ndarray:
        """Transform a per-action array (mask, policy, values): ``out[perm[a]] = in[a]``."""
        out = np.empty_like(per_action)
        out[..., self.action_perm] = per_action
        return out


class Game(ABC):
    """Rules, encodings and the exact oracle of one solved game (see module docstring)."""

    name: str
    title: str  # the name people use, for messages ("Connect Four")
    num_actions: int
    obs_shape: tuple[int, int, int]
    concepts_module: str | None = None  # module that registers the game's concepts (games.concepts)
    #: Module of the exact oracle, when it lives above the rules (imported on first use by
    #: `oracle`). It provides ``value(game, state)``, ``action_values(game, state)`` and
    #: ``action_scores(game, state)``, and may provide ``solution_cache(game, path, rebuild,
    #: verify)``, ``use_opening_book(game, path)`` and ``evaluation_sets(game, search_dirs)``.
    #: None: the game answers oracle questions itself (closed form or its own search).
    oracle_module: str | None = None
    fast_oracle_ply: int = 0  # from this many moves on, the exact oracle answers quickly (sampling defaults)
    dataset_min_ply: int = 0  # fewest moves of a sampled dataset position by default (exact labels stay cheap)

    # ---------------------------------------------------------------- rules
    @abstractmethod
    def initial_state(self) -> Any:
        """The starting position."""

    @abstractmethod
    def legal_mask(self, state: Any) -> np.ndarray:
        """Boolean array of length `num_actions` (all False once the game is over)."""

    @abstractmethod
    def play(self, state: Any, action: int) -> Any:
        """The state after the side to move plays `action`; ValueError if illegal."""

    @abstractmethod
    def is_terminal(self, state: Any) -> bool:
        """True once the game is over."""

    @abstractmethod
    def outcome(self, state: Any) -> int | None:
        """+1 player 0 won, -1 player 1 won, 0 draw; None while the game goes on."""

    @abstractmethod
    def to_play(self, state: Any) -> int:
        """0 if the first player is to move, else 1."""

    # ---------------------------------------------------------------- encodings
    @abstractmethod
    def observation(self, state: Any, player: int | None = None) -> np.ndarray:
        """float32 planes ``obs_shape`` relative to `player` (default: the side to move)."""

    @abstractmethod
    def canonical_key(self, state: Any) -> Hashable:
        """Equal for states related by a symmetry of the game."""

    @abstractmethod
    def symmetries(self) -> list[Symmetry]:
        """All symmetries, identity first."""

    @abstractmethod
    def parse(self, text: str) -> Any:
        """A state from its text form (the inverse of `to_text`)."""

    @abstractmethod
    def to_text(self, state: Any) -> str:
        """A compact one-line text form (e.g. a move string)."""

    @abstractmethod
    def render(self, state: Any) -> str:
        """A readable multi-line picture of the board."""

    @abstractmethod
    def render_rgb(self, state: Any) -> np.ndarray:
        """An ``H x W x 3`` uint8 image of the board."""

    # ---------------------------------------------------------------- exact oracle
    def oracle(self) -> ModuleType:
        """The module named by `oracle_module`, imported the first time it is asked for.

        :raises NotImplementedError: the game names no oracle module (it must then answer
            `value` and `action_values` itself).
        """
        if self.oracle_module is None:
            raise NotImplementedError(f"{self.name} names no oracle module; it must implement value and action_values")
        return importlib.import_module(self.oracle_module)

    def value(self, state: Any) -> int:
        """Game value for the side to move under perfect play: -1, 0 or +1."""
        return self.oracle().value(self, state)

    def action_values(self, state: Any) -> np.ndarray:
        """float array: value for the side to move of each action (NaN if illegal)."""
        return self.oracle().action_values(self, state)

    def action_scores(self, state: Any) -> np.ndarray:
        """Exact score of each action for the side to move (NaN if illegal); larger is better.

        Games whose solver distinguishes fast from slow wins provide it in their oracle
        module; otherwise the score is the value (-1/0/+1)."""
        scores = getattr(self.oracle(), "action_scores", None) if self.oracle_module else None
        return self.action_values(state) if scores is None else scores(self, state)

    def solution_cache(self, path: str | Path, *, rebuild: bool = False, verify: bool = False) -> Any | None:
        """An open store of exact solutions at `path` that solver-tier concepts read and
        write (close it when done), or None if the game's oracle keeps none.

        :param rebuild: move a corrupt file aside and start a new one instead of raising.
        :param verify: check the whole file now (a corrupt one raises here, not later).
        """
        opener = getattr(self.oracle(), "solution_cache", None) if self.oracle_module else None
        return None if opener is None else opener(self, path, rebuild=rebuild, verify=verify)

    @property
    def uses_opening_book(self) -> bool:
        """True if the game's oracle can consult an opening book (`check_opening_book`)."""
        return bool(self.oracle_module) and hasattr(self.oracle(), "check_opening_book")

    def check_opening_book(self, path: str | Path) -> None:
        """Check that `path` is a readable opening book that this game's oracle can use.

        :raises ValueError: the oracle uses no opening book, or the book is unreadable or
            for another board; FileNotFoundError if there is no file.
        """
        if not self.uses_opening_book:
            raise ValueError(f"an opening book ({path}) is not used by the oracle of {self.name}")
        self.oracle().check_opening_book(self, path)

    def use_opening_book(self, path: str | Path) -> None:
        """Make this process's oracle consult the opening book at `path` (checked as by
        `check_opening_book`)."""
        if not self.uses_opening_book:
            raise ValueError(f"an opening book ({path}) is not used by the oracle of {self.name}")
        self.oracle().use_opening_book(self, path)

    def baseline_players(self) -> dict[str, Any]:
        """Named players ``(game, state, rng) -> action`` for strength ladders, weakest first
        (uniform random is always added by the evaluator)."""
        return {}

    def evaluation_sets(self) -> dict[str, list[str]]:
        """Named fixed sets of positions (as text) with known answers, for move-quality tests."""
        return {}

    def batch_ops(self) -> "BatchOps":
        """Numba kernels that step many boards at once (for the vectorised environment)."""
        raise NotImplementedError(f"{self.name} has no batched kernels; the vectorised env needs them")

    # ---------------------------------------------------------------- derived helpers
    def legal_actions(self, state: Any) -> list[int]:
        return [int(a) for a in np.flatnonzero(self.legal_mask(state))]

    def returns(self, state: Any, player: int) -> int:
        """Final reward of `player` (+1 win, 0 draw, -1 loss); 0 if the game is not over."""
        outcome = self.outcome(state)
        if outcome is None:
            return 0
        return outcome if player == 0 else -outcome

    def optimal_actions(self, state: Any) -> list[int]:
        """Actions that keep the game value (all of them, not just one)."""
        values = self.action_values(state)
        if np.all(np.isnan(values)):
            return []
        best = np.nanmax(values)
        return [int(a) for a in np.flatnonzero(values == best)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
