"""Connect Four's inputs to the dictionary study: concept targets per square and per position, and descriptors.

`agents.dictionaries` scores sparse-dictionary features against boolean labels and describes
the features that match none with named per-row quantities. Here those come from a labelled
dataset table (``games.datasets.read_dataset(...).positions``):

* **square targets** (one label per board square, rows position-major then row-major squares):
  spatial concepts as they are, and per-column concepts on the playable square (lowest empty
  square) of each column they name; a numeric per-column concept (``column_scores``) becomes
  ``>0`` (a winning move there);
* **position targets**: binary concepts as they are, counts and the categorical value as ``>0``
  (``n_threats_me>0``, ``value>0``: the side to move wins);
* **descriptors** for features that match no concept: board facts per square (my disc, the
  opponent's disc, empty, playable, row, column, discs below in the column), solver facts per
  square (the exact score of the move whose disc lands there, whether it is optimal, whether it
  keeps the value) and per position (value, score, moves to the end, number of good moves, ply).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

SOLVER_DESCRIPTORS = ("move_score_here", "optimal_move_here", "good_move_here", "losing_move_here", "value",
                      "score", "moves_to_end", "n_good_moves")


def _stack(column: Any) -> np.ndarray:
    return np.stack([np.asarray(v) for v in column])


def concept_targets(game: Any, positions: Any, kinds: dict[str, str],
                    names: Sequence[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, str]]:
    """``(square targets name -> [N, H*W] bool, position targets name -> [N] bool, skipped name -> why)``.

    :param kinds: concept -> kind (`games.datasets.Dataset.concept_kinds`).
    :param names: concepts to include (default: every concept of the table).
    """
    n, squares = len(positions), game.height * game.width
    playable = _stack(positions["playable_squares"]).reshape(n, game.height, game.width).astype(bool)
    square, position, skipped = {}, {}, {}
    for name in names or list(kinds):
        kind = kinds.get(name)
        if name not in positions.columns or kind is None:
            skipped[name] = "not in the dataset"
            continue
        if kind == "spatial":
            square[name] = _stack(positions[name]).reshape(n, squares).astype(bool)
        elif kind == "per_column":
            values = _stack(positions[name]).astype(np.float64).reshape(n, game.width)
            columns = np.nan_to_num(values) > 0 if name == "column_scores" else values.astype(bool)
            key = f"{name}>0" if name == "column_scores" else name
            square[f"{key}@square"] = (playable & columns[:, None, :]).reshape(n, squares)
        elif kind == "binary":
            position[name] = positions[name].to_numpy().astype(bool)
        elif name == "score":
            skipped[name] = "score > 0 is value > 0"
            continue
        elif kind in ("count", "categorical"):
            values = positions[name].to_numpy().astype(np.float64)
            if np.isnan(values).any():
                skipped[name] = "it has missing labels"
                continue
            position[f"{name}>0"] = values > 0
        else:
            skipped[name] = f"kind {kind!r} has no boolean form"
    return square, position, skipped


def descriptors(game: Any, positions: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(per-square descriptors name -> [N*H*W], per-position descriptors name -> [N])``; NaN where undefined."""
    n, h, w = len(positions), game.height, game.width
    states = [game.parse(t) for t in positions["moves"]]
    obs = np.stack([game.observation(s) for s in states])
    playable = _stack(positions["playable_squares"]).reshape(n, h, w).astype(bool)
    occupied = obs[:, 0] + obs[:, 1] > 0
    below = np.flip(np.cumsum(np.flip(occupied, axis=1), axis=1), axis=1) - occupied  # discs under each square

    def at_playable(per_column: np.ndarray, dtype=np.float64) -> np.ndarray:
        out = np.full((n, h, w), np.nan)
        spread = np.broadcast_to(per_column.astype(dtype)[:, None, :], (n, h, w))
        out[playable] = spread[playable]
        return out

    scores = _stack(positions["column_scores"]).astype(np.float64).reshape(n, w)
    optimal = _stack(positions["optimal_moves"]).astype(bool).reshape(n, w)
    good = _stack(positions["good_moves"]).astype(bool).reshape(n, w)
    value = positions["value"].to_numpy().astype(np.float64)
    losing = ~good & (value[:, None] >= 0)  # a move that gives away a win or a draw
    square = {"my_disc": obs[:, 0], "their_disc": obs[:, 1], "empty": ~occupied, "playable": playable,
              "row": np.broadcast_to(np.arange(h)[None, :, None], (n, h, w)),
              "column": np.broadcast_to(np.arange(w)[None, None, :], (n, h, w)),
              "discs_below": below,
              "move_score_here": at_playable(scores), "optimal_move_here": at_playable(optimal),
              "good_move_here": at_playable(good), "losing_move_here": at_playable(losing)}
    square = {k: np.asarray(v, dtype=np.float64).reshape(n * h * w) for k, v in square.items()}
    position = {"value": value, "score": positions["score"].to_numpy().astype(np.float64),
                "moves_to_end": positions["moves_to_end"].to_numpy().astype(np.float64),
                "n_good_moves": positions["n_good_moves"].to_numpy().astype(np.float64),
                "ply": positions["ply"].to_numpy().astype(np.float64)}
    return square, position


def move_concept_squares(concept: str) -> str:
    """The square target naming the moves of a move concept (``win_in_1`` -> ``winning_moves@square``)."""
    from games.concepts import concepts as registered

    entry = registered("connect4").get(concept)
    columns = entry.params.get("columns") if entry is not None else None
    if not columns:
        raise ValueError(f"concept {concept!r} names no columns, so no squares to intervene at")
    return f"{columns}@square"


def dictionary_inputs(game: Any, dataset: Any, seed: int = 0, extra_positions: int = 0, players: dict | None = None,
                      intervention_concepts: Sequence[str] = ("win_in_1", "forced_block"),
                      concepts: Sequence[str] | None = None, progress: bool = False):
    """`agents.dictionaries.DictionaryInputs` from a labelled dataset (`games.datasets.read_dataset`).

    :param seed: seed of the split by game (the study's) and of the extra positions.
    :param extra_positions: unlabelled positions added to the dictionaries' training rows, sampled like the
        dataset (half random play, half `players`' play after a random opening), none of them a validation or
        test position.
    :param players: source name -> player for the extra positions (e.g. ``{"agent": PolicyPlayer(...)}``).
    """
    from agents.connect4.usage import judged_positions
    from agents.dictionaries import DictionaryInputs
    from games.datasets import draw_sample
    from probes.dictionary_scores import Folds
    from probes.linear import grouped_three_way_split

    positions = dataset.positions
    groups = positions["game_id"].to_numpy()
    train, validation, test = grouped_three_way_split(groups, seed=seed)
    square, position, skipped = concept_targets(game, positions, dataset.concept_kinds, concepts)
    square_desc, position_desc = descriptors(game, positions)
    judged = judged_positions(game, positions, intervention_concepts[0] if intervention_concepts else "win_in_1")
    interventions = {c: (judged_positions(game, positions, c), move_concept_squares(c)) for c in intervention_concepts}
    extra = None
    if extra_positions:
        held_out = {game.canonical_key(game.parse(t)) for t in positions["moves"].to_numpy()[np.concatenate([validation, test])]}
        manifest = dataset.manifest
        sources = {"random": 0.5, **{name: 0.5 / len(players) for name in players}} if players else {"random": 1.0}
        sample = draw_sample(game, extra_positions, seed=10_000 + seed, sources=sources, players=players,
                             random_opening=int(manifest.get("random_opening", 6)),
                             min_ply=int(manifest.get("min_ply", 0)), progress=progress)
        kept = [p.state for p in sample.positions if game.canonical_key(p.state) not in held_out]
        extra = np.stack([game.observation(s) for s in kept]).astype(np.float32)
    inputs = DictionaryInputs(
        texts=list(positions["moves"]), inputs=judged.inputs, folds=Folds(train, validation, test, groups), judged=judged,
        square_targets=square, position_targets=position, square_descriptors=square_desc,
        position_descriptors=position_desc, interventions=interventions, extra_inputs=extra,
        solver_descriptors=SOLVER_DESCRIPTORS)
    return inputs, skipped
