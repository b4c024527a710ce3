"""The concept registry: named, exactly computable properties of game states.

A concept is metadata plus a vectorised function from a batch of states to labels. Each
game registers its own (``games/<game>/concepts.py``); datasets label states with them
and `probes/` consumes the labels and this metadata only (never the game). All concepts
are relative to the side to move: "me" is the player to move, "opp" the other one.

Kinds and label shapes (per state):
* ``binary``: bool; ``count``: int; ``continuous``: float; ``categorical``: int class;
* ``spatial``: float/bool vector of the ``H*W`` squares (row-major, row 0 on top, as the
  observation planes); ``per_column``: vector of length `num_actions`.
Cost tiers, cheapest first: ``static`` (bitboard arithmetic), ``search`` (a few plies),
``rules`` (rule-based search, e.g. Allis' rules), ``solver`` (exact solution).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

KINDS = ("binary", "count", "continuous", "categorical", "spatial", "per_column")
TIERS = ("static", "search", "rules", "solver")
PERSPECTIVES = ("me", "opp", "both", "none")


@dataclass(frozen=True)
class Concept:
    """One concept of one game.

    :param name: unique within the game (e.g. ``"win_in_1"``).
    :param kind: one of `KINDS`.
    :param perspective: "me", "opp", "both" (e.g. shared squares) or "none" (e.g. parity).
    :param tier: one of `TIERS`.
    :param doc: one or two sentences: what exactly is computed.
    :param compute: ``compute(game, states, cache) -> ndarray`` with one row per state;
        `cache` is a dict shared by the concepts of one `label` call, for intermediate
        results several concepts need.
    :param params: options the label depends on (e.g. ``{"k": 3}``), for the record.
    """

    name: str
    kind: str
    perspective: str
    tier: str
    doc: str
    compute: Callable[[Any, Sequence[Any], dict], np.ndarray] = field(repr=False)
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"concept {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.tier not in TIERS:
            raise ValueError(f"concept {self.name!r}: tier {self.tier!r} is not one of {TIERS}")
        if self.perspective not in PERSPECTIVES:
            raise ValueError(f"concept {self.name!r}: perspective {self.perspective!r} is not one of {PERSPECTIVES}")

    def metadata(self) -> dict:
        """JSON-able description (what dataset manifests and probes read)."""
        return {"name": self.name, "kind": self.kind, "perspective": self.perspective, "tier": self.tier,
                "doc": self.doc, "params": dict(self.params)}


_CONCEPTS: dict[str, dict[str, Concept]] = {}


def register_concept(game_name: str, concept: Concept, *, overwrite: bool = False) -> Concept:
    """Add a concept to a game's registry."""
    table = _CONCEPTS.setdefault(game_name, {})
    if concept.name in table and not overwrite:
        raise ValueError(f"{game_name} already has a concept named {concept.name!r}")
    table[concept.name] = concept
    return concept


def concepts(game_name: str) -> dict[str, Concept]:
    """All registered concepts of a game, by name (in registration order)."""
    if game_name not in _CONCEPTS:
        from games.registry import get

        module = getattr(get(game_name), "concepts_module", None)
        if module:
            importlib.import_module(module)
    if game_name not in _CONCEPTS:
        raise ValueError(f"no concepts are registered for game {game_name!r}")
    return dict(_CONCEPTS[game_name])


def select(game_name: str, names: Sequence[str] | None = None, tiers: Sequence[str] | None = None) -> list[Concept]:
    """The concepts with these names (all if None), restricted to `tiers`; unknown names raise."""
    table = concepts(game_name)
    if names is None:
        chosen = list(table.values())
    else:
        unknown = [n for n in names if n not in table]
        if unknown:
            raise ValueError(f"unknown concept(s) {unknown} for {game_name}; known: {', '.join(table)}")
        chosen = [table[n] for n in names]
    if tiers is not None:
        bad = [t for t in tiers if t not in TIERS]
        if bad:
            raise ValueError(f"unknown tier(s) {bad}; tiers are {TIERS}")
        chosen = [c for c in chosen if c.tier in tiers]
    return chosen


def label(game: Any, states: Sequence[Any], names: Sequence[str] | None = None,
          solution_cache: Any = None) -> dict[str, np.ndarray]:
    """Labels of `states` for the chosen concepts: name -> array with one row per state.

    :param solution_cache: path of a SQLite `solver.cache.SolutionCache` that solver-tier
        concepts read exact solutions from and write them to (None: solve everything afresh).
    """
    chosen = select(game.name, names)
    cache: dict = {}
    store = None
    if solution_cache is not None and any(c.tier == "solver" for c in chosen):
        from solver.cache import SolutionCache

        store = SolutionCache(solution_cache)
        cache["solution_cache"] = store
    try:
        return {c.name: np.asarray(c.compute(game, states, cache)) for c in chosen}
    finally:
        if store is not None:
            store.close()