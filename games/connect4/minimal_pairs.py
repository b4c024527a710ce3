"""Solver-verified minimal pairs: two Connect Four positions one disc apart that flip one concept.

Definition (a *sibling pair*). Take a live parent position Q and two different legal
columns a and b of the side to move in Q. The members are ``A = Q.play(a)`` and
``B = Q.play(b)``:

* both are legal and reachable (each is Q plus one move), neither is over;
* they have the same number of discs and the same side to move ("me" below);
* they differ in exactly one disc: the opponent's last disc lies on top of column a in A
  and on top of column b in B (two squares differ: one filled in A only, one in B only);
* the target concept is True in one member (``with_concept``) and False in the other
  (``without_concept``), and every *control* concept has the same label in both (by
  default the other binary tactical concepts, so that exactly one of them flips).

Typical pairs: for ``win_in_1`` the opponent blocks my threat in one member and plays
elsewhere in the other; for ``forced_block`` the opponent's disc makes a playable threat in
one member only. The solver labels both members (optimal and value-preserving columns,
value), so behavioural tests can ask whether a player changes its move the way optimal
play does. `concept_moves` names the columns a concept is about (the winning or blocking
column).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from games.concepts import label, select
from games.connect4.game import ConnectFour
from games.connect4.position import Position

log = logging.getLogger(__name__)

# concept -> the spatial map whose playable squares are the concept's moves (used when the
# registry entry does not name a per-column concept in ``params["columns"]``)
DEFAULT_CONTROLS = ("win_in_1", "forced_block", "lost_in_1")
SOLVER_LABELS = ("value", "optimal_moves", "good_moves")


def column_concept(game: ConnectFour, concept: str) -> str | None:
    """The per-column concept naming the columns `concept` is about (registry ``params["columns"]``)."""
    return select(game.name, [concept])[0].params.get("columns")


def concept_moves(game: ConnectFour, states: Sequence[Position], concept: str,
                  labels: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """``[N, W]`` bool: the columns concept `concept` is about (e.g. my winning columns for ``win_in_1``).

    Meaningful where the concept holds. :param labels: precomputed labels holding the
    concept's `column_concept` (optional).
    """
    columns = column_concept(game, concept)
    if columns is None:
        named = sorted(c.name for c in select(game.name) if c.params.get("columns"))
        raise ValueError(f"concept {concept!r} names no columns; concepts with moves: {named}")
    if labels is None or columns not in labels:
        labels = label(game, states, [columns])
    return labels[columns].astype(bool)


@dataclass(frozen=True)
class MinimalPair:
    """Two sibling positions (move strings) that differ in one disc and flip `concept`.

    Columns are 0-based. ``*_with`` refers to the member where the concept holds.
    """

    concept: str
    parent: str
    with_concept: str
    without_concept: str
    column_with: int  # where the opponent's last disc went in the member with the concept
    column_without: int
    concept_moves_with: tuple[int, ...]  # the concept's columns in the member with it
    optimal_with: tuple[int, ...] = ()
    optimal_without: tuple[int, ...] = ()
    good_with: tuple[int, ...] = ()
    good_without: tuple[int, ...] = ()
    value_with: int = 0
    value_without: int = 0

    @property
    def solver_changes_move(self) -> bool:
        """Optimal play differs: no column is optimal in both members."""
        return not set(self.optimal_with) & set(self.optimal_without)

    def to_dict(self) -> dict:
        return {**asdict(self), "solver_changes_move": self.solver_changes_move}


def random_parents(game: ConnectFour, n: int, seed: int = 0, min_ply: int = 10, max_ply: int | None = None) -> list[Position]:
    """`n` distinct live positions from uniformly random games, at plies ``min_ply..max_ply``."""
    rng = np.random.default_rng(seed)
    max_ply = max_ply if max_ply is not None else game.width * game.height - 2
    out: list[Position] = []
    seen: set[int] = set()
    for _ in range(50 * n + 100):
        if len(out) >= n:
            break
        state = game.initial_state()
        trajectory = []
        while not state.is_terminal():
            trajectory.append(state)
            state = state.play(int(rng.choice(state.legal_moves())))
        live = [s for s in trajectory if min_ply <= s.moves <= max_ply]
        if live:
            pick = live[int(rng.integers(len(live)))]
            if pick.canonical_key() not in seen:
                seen.add(pick.canonical_key())
                out.append(pick)
    return out


def find_minimal_pairs(game: ConnectFour, concept: str, parents: Sequence[Position],
                       controls: Sequence[str] | None = None, max_pairs: int = 200, seed: int = 0,
                       solve: bool = True, solution_cache: str | Path | None = None) -> list[MinimalPair]:
    """Sibling pairs of `parents` that flip `concept` with every control concept unchanged.

    :param concept: a binary concept (e.g. ``win_in_1``).
    :param parents: positions whose children form the pairs (need a move history).
    :param controls: binary concepts that must agree in both members (default
        `DEFAULT_CONTROLS` without the target).
    :param max_pairs: keep at most this many pairs (a seeded random subset; at most one per parent
        and one per pair of member positions up to mirroring).
    :param solve: label both members with the solver (optimal / good columns, value).
    """
    chosen = select(game.name, [concept])[0]
    if chosen.kind != "binary":
        raise ValueError(f"minimal pairs need a binary concept; {concept!r} is {chosen.kind}")
    controls = [c for c in (DEFAULT_CONTROLS if controls is None else controls) if c != concept]
    children: list[Position] = []
    index: list[tuple[int, int]] = []  # (parent, column) of each child
    for p, parent in enumerate(parents):
        if parent.history is None:
            raise ValueError("minimal pairs need parents with a move history (built with from_moves / play)")
        for col in parent.legal_moves():
            child = parent.play(col)
            if not child.is_terminal():
                children.append(child)
                index.append((p, col))
    if not children:
        return []
    columns = column_concept(game, concept)
    names = list(dict.fromkeys([concept, *controls, *([columns] if columns else [])]))
    labels = label(game, children, names)
    target = labels[concept].astype(bool)
    control = np.stack([labels[c] for c in controls], axis=1) if controls else np.zeros((len(children), 0))
    by_parent: dict[int, list[int]] = {}
    for i, (p, _) in enumerate(index):
        by_parent.setdefault(p, []).append(i)
    rng = np.random.default_rng(seed)
    candidates: list[tuple[int, int]] = []
    for p, rows in by_parent.items():
        found = [(i, j) for i in rows for j in rows
                 if target[i] and not target[j] and np.array_equal(control[i], control[j])]
        if found:
            candidates.append(found[int(rng.integers(len(found)))])
    rng.shuffle(candidates)
    seen: set = set()
    picked = []
    for i, j in candidates:
        key = frozenset((children[i].canonical_key(), children[j].canonical_key()))
        if key not in seen:
            seen.add(key)
            picked.append((i, j))
        if len(picked) >= max_pairs:
            break
    moves = concept_moves(game, children, concept, labels) if columns else None
    pairs = []
    for i, j in picked:
        parent = parents[index[i][0]]
        pairs.append(MinimalPair(
            concept, parent.history, children[i].history, children[j].history, index[i][1], index[j][1],
            tuple(int(c) for c in np.flatnonzero(moves[i])) if moves is not None else ()))
    if solve and pairs:
        pairs = _with_solver_labels(game, pairs, solution_cache)
    log.info("%s: %d minimal pairs from %d parents (%d with a flip)", concept, len(pairs), len(parents), len(candidates))
    return pairs


def _with_solver_labels(game: ConnectFour, pairs: list[MinimalPair], solution_cache: str | Path | None) -> list[MinimalPair]:
    states = [game.parse(t) for p in pairs for t in (p.with_concept, p.without_concept)]
    labels = label(game, states, SOLVER_LABELS, solution_cache)

    def cols(name: str, row: int) -> tuple[int, ...]:
        return tuple(int(c) for c in np.flatnonzero(labels[name][row]))

    out = []
    for k, pair in enumerate(pairs):
        a, b = 2 * k, 2 * k + 1
        out.append(MinimalPair(**{**asdict(pair), "optimal_with": cols("optimal_moves", a),
                                  "optimal_without": cols("optimal_moves", b), "good_with": cols("good_moves", a),
                                  "good_without": cols("good_moves", b), "value_with": int(labels["value"][a]),
                                  "value_without": int(labels["value"][b])}))
    return out


def check_pair(game: ConnectFour, pair: MinimalPair) -> None:
    """Raise if `pair` breaks the definition (one disc apart, same side to move, concept flips)."""
    a, b = game.parse(pair.with_concept), game.parse(pair.without_concept)
    if a.moves != b.moves or a.is_terminal() or b.is_terminal():
        raise ValueError(f"{pair.with_concept} / {pair.without_concept}: not two live positions with equal disc counts")
    diff = a.to_array() != b.to_array()
    if diff.sum() != 2:
        raise ValueError(f"{pair.with_concept} / {pair.without_concept}: boards differ in {diff.sum()} squares, not 2")
    flags = label(game, [a, b], [pair.concept])[pair.concept]
    if not (flags[0] and not flags[1]):
        raise ValueError(f"{pair.with_concept} / {pair.without_concept}: {pair.concept} does not flip")
