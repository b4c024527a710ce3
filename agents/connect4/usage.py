"""Connect Four's inputs to the usage suite: judged positions and minimal pairs as arrays.

`probes.interventions` needs, per concept, positions with the solver's answers and the
squares the concept names; here those come from a labelled dataset folder (the study's,
whose rows carry ``value``, ``good_moves``, ``optimal_moves`` and every concept) and from
solver-verified sibling minimal pairs (`games.connect4.minimal_pairs`).

The squares a column concept names are the *playable* squares (lowest empty square) of its
columns: for ``win_in_1`` the square where my winning disc would land, for ``forced_block``
the square I must fill to block. Random-square controls are drawn from the other playable
squares, the squares of the same kind.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from games.concepts import label
from games.connect4.minimal_pairs import (
    column_concept,
    find_minimal_pairs,
    random_parents,
)
from probes.interventions import JudgedPositions, PairBatch

log = logging.getLogger(__name__)


def _stack(column: Any, shape: tuple[int, ...]) -> np.ndarray:
    return np.stack([np.asarray(v) for v in column]).reshape(len(column), *shape)


def concept_columns(game: Any, concept: str) -> str:
    """The per-column concept naming `concept`'s moves; a clear error for concepts that name none."""
    columns = column_concept(game, concept)
    if columns is None:
        from games.concepts import select

        named = sorted(c.name for c in select(game.name) if c.params.get("columns"))
        raise ValueError(f"concept {concept!r} names no columns, so no squares to intervene at; concepts that do: {named}")
    return columns


def judged_positions(game: Any, positions: Any, concept: str) -> JudgedPositions:
    """`JudgedPositions` for `concept` from a labelled dataset table (``games.datasets.read_dataset(...).positions``).

    :raises ValueError: naming the columns the table lacks.
    """
    columns = concept_columns(game, concept)
    needed = ["moves", "game_id", "value", "good_moves", "optimal_moves", "playable_squares", concept, columns]
    missing = [c for c in dict.fromkeys(needed) if c not in positions.columns]
    if missing:
        raise ValueError(f"the dataset lacks the columns {missing}; build it with those concepts "
                         "(scripts/make_dataset.py --concepts ...)")
    states = [game.parse(t) for t in positions["moves"]]
    height, width = game.height, game.width
    playable = _stack(positions["playable_squares"], (height, width)).astype(bool)
    moves = _stack(positions[columns], (width,)).astype(bool)
    return JudgedPositions(
        inputs=np.stack([game.observation(s) for s in states]).astype(np.float32),
        legal=np.stack([game.legal_mask(s) for s in states]),
        good=_stack(positions["good_moves"], (width,)).astype(bool),
        optimal=_stack(positions["optimal_moves"], (width,)).astype(bool),
        value=positions["value"].to_numpy().astype(np.int64), groups=positions["game_id"].to_numpy(),
        concept=positions[concept].to_numpy().astype(bool), moves=moves,
        squares=playable & moves[:, None, :], candidates=playable)


def _playable(game: Any, states: Sequence[Any]) -> np.ndarray:
    return label(game, states, ["playable_squares"])["playable_squares"].reshape(len(states), game.height,
                                                                                  game.width).astype(bool)


def minimal_pair_batch(game: Any, concept: str, n_parents: int = 1500, max_pairs: int = 200, seed: int = 0,
                       solution_cache: str | Path | None = None) -> tuple[PairBatch, list[dict]]:
    """Solver-verified minimal pairs of `concept` whose optimal move differs between members, as a `PairBatch`.

    :returns: (the batch, one dict per pair: both members' move strings and solver answers).
    """
    concept_columns(game, concept)
    parents = random_parents(game, n_parents, seed=seed, min_ply=11)
    pairs = [p for p in find_minimal_pairs(game, concept, parents, max_pairs=max_pairs, seed=seed,
                                           solution_cache=solution_cache) if p.solver_changes_move]
    width = game.width
    if not pairs:
        empty = np.zeros((0, *game.obs_shape), dtype=np.float32)
        none = np.zeros((0, width), dtype=bool)
        return PairBatch(empty, empty, none, none, none), []
    with_states = [game.parse(p.with_concept) for p in pairs]
    without_states = [game.parse(p.without_concept) for p in pairs]
    target = np.zeros((len(pairs), width), dtype=bool)
    for k, pair in enumerate(pairs):
        target[k, list(pair.concept_moves_with)] = True
    playable = _playable(game, with_states)
    changed = np.stack([a.to_array() != b.to_array() for a, b in zip(with_states, without_states)])
    batch = PairBatch(
        clean=np.stack([game.observation(s) for s in with_states]).astype(np.float32),
        corrupt=np.stack([game.observation(s) for s in without_states]).astype(np.float32),
        legal_clean=np.stack([game.legal_mask(s) for s in with_states]),
        legal_corrupt=np.stack([game.legal_mask(s) for s in without_states]),
        target=target, concept_squares=playable & target[:, None, :], changed_squares=changed, candidates=playable)
    return batch, [p.to_dict() for p in pairs]
