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

Aliases: the registry keeps one concept per distinct concept. A second name for the same
labels (Connect Four's ``forced_win_in_1`` is ``win_in_1``: a forced win within one ply is
a win at once) is registered as an alias (`register_alias`), not as a concept: `select`
and `label` accept it and resolve it to the kept name (logged at INFO, once per alias),
while `concepts`, which datasets and probe sweeps iterate, lists each concept once.
`aliases` lists a game's aliases. Concepts that coincide only on some boards stay
separate; `games.datasets.near_duplicate_concepts` reports them per dataset.

Every function here takes the game as a registered name (``"connect4"``, default options)
or as a `Game` object (``games.get("connect4", width=5, height=4)``). `label` checks its
states against the game (a 7x6 position given to a 5x4 game is a `ValueError`, not wrong
labels) and accepts move strings, parsed with the game's own text parser (`Game.parse`).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

KINDS = ("binary", "count", "continuous", "categorical", "spatial", "per_column")
TIERS = ("static", "search", "rules", "solver")
PERSPECTIVES = ("me", "opp", "both", "none")

logger = logging.getLogger(__name__)


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
_ALIASES: dict[str, dict[str, tuple[str, str]]] = {}  # game -> alias -> (kept name, why they are the same)
_ALIASES_LOGGED: set[tuple[str, str]] = set()


def register_concept(game_name: str, concept: Concept, *, overwrite: bool = False) -> Concept:
    """Add a concept to a game's registry (a name already taken by an alias is refused)."""
    table = _CONCEPTS.setdefault(game_name, {})
    if concept.name in table and not overwrite:
        raise ValueError(f"{game_name} already has a concept named {concept.name!r}")
    if concept.name in _ALIASES.get(game_name, {}):
        raise ValueError(f"{concept.name!r} is an alias of {game_name}'s {_ALIASES[game_name][concept.name][0]!r}, "
                         "not a concept name")
    table[concept.name] = concept
    return concept


def register_alias(game_name: str, alias: str, canonical: str, reason: str = "") -> None:
    """Register `alias` as a second name of the game's concept `canonical`.

    Use it instead of registering a concept twice under two names: `select` and `label`
    accept the alias and resolve it to `canonical`, `concepts` does not list it (so
    datasets and sweeps label and probe the concept once).

    :param game_name: the game's registered name (as given to `register_concept`).
    :param alias: the second name; it must not be a concept name.
    :param canonical: a concept already registered for the game (not another alias).
    :param reason: why the two names are the same concept (one sentence, logged when the
        alias is resolved).
    """
    table = _CONCEPTS.get(game_name, {})
    if canonical not in table:
        raise ValueError(f"{game_name} has no concept {canonical!r} to alias as {alias!r}")
    if alias in table:
        raise ValueError(f"{alias!r} is a {game_name} concept; an alias must be a new name")
    known = _ALIASES.setdefault(game_name, {})
    if alias in known and known[alias][0] != canonical:
        raise ValueError(f"{alias!r} is already an alias of {game_name}'s {known[alias][0]!r}")
    known[alias] = (canonical, reason)


def _game(game: Any) -> Any:
    """The `Game` object for a registered name or a `Game` (returned as is)."""
    from games.registry import get

    if isinstance(game, str):
        return get(game)
    if not (hasattr(game, "name") and hasattr(game, "initial_state")):
        raise ValueError(f"expected a game name such as 'connect4' or a games.base.Game, got {type(game).__name__} {game!r}")
    return get(game)


def _loaded(game: Any) -> str:
    """The game's registered name, after importing the module that registers its concepts."""
    game_name = game if isinstance(game, str) and game in _CONCEPTS else None
    if game_name is None:
        the_game = _game(game)
        game_name = the_game.name
        module = getattr(the_game, "concepts_module", None)
        if game_name not in _CONCEPTS and module:
            importlib.import_module(module)
    if game_name not in _CONCEPTS:
        raise ValueError(f"no concepts are registered for game {game_name!r}")
    return game_name


def concepts(game: Any) -> dict[str, Concept]:
    """All registered concepts of a game, by name (in registration order), each once:
    aliases (`aliases`) are not listed.

    :param game: a registered game name or a `Game` object.
    """
    return dict(_CONCEPTS[_loaded(game)])


def aliases(game: Any) -> dict[str, str]:
    """The game's concept aliases: alias -> the registered concept it names (e.g.
    ``{"forced_win_in_1": "win_in_1"}`` for Connect Four); empty if it has none.

    An alias is a documented second name of a concept (`register_alias`): `select` and
    `label` accept it, `concepts` does not list it.

    :param game: a registered game name or a `Game` object.
    """
    return {alias: kept for alias, (kept, _) in _ALIASES.get(_loaded(game), {}).items()}


def resolve(game: Any, name: str) -> str:
    """The registered concept name that `name` means: `name` itself, or the concept an alias
    names (logged at INFO the first time each alias is resolved). Unknown names are returned
    as they are (`select` rejects them).

    :param game: a registered game name or a `Game` object.
    """
    game_name = _loaded(game)
    entry = _ALIASES.get(game_name, {}).get(name)
    if entry is None:
        return name
    kept, reason = entry
    if (game_name, name) not in _ALIASES_LOGGED:
        _ALIASES_LOGGED.add((game_name, name))
        why = f" ({reason})" if reason else ""
        logger.info("%s concept %r is an alias of %r%s; labelled as %r", game_name, name, kept, why, kept)
    return kept


def select(game: Any, names: Sequence[str] | None = None, tiers: Sequence[str] | None = None) -> list[Concept]:
    """The concepts with these names (all if None), restricted to `tiers`; unknown names raise.

    Aliases are resolved (`resolve`) and each concept comes back once, in the order first
    named (``["win_in_1", "forced_win_in_1"]`` gives Connect Four's ``win_in_1`` once).

    :param game: a registered game name or a `Game` object.
    """
    table = concepts(game)
    game_name = game if isinstance(game, str) else game.name
    if names is None:
        chosen = list(table.values())
    else:
        resolved = [resolve(game_name, n) for n in names]
        unknown = [n for n, r in zip(names, resolved) if r not in table]
        if unknown:
            known_aliases = aliases(game_name)
            also = f"; aliases: {', '.join(f'{a} -> {k}' for a, k in known_aliases.items())}" if known_aliases else ""
            raise ValueError(f"unknown concept(s) {unknown} for {game_name}; known: {', '.join(table)}{also}")
        chosen = [table[n] for n in dict.fromkeys(resolved)]
    if tiers is not None:
        bad = [t for t in tiers if t not in TIERS]
        if bad:
            raise ValueError(f"unknown tier(s) {bad}; tiers are {TIERS}")
        chosen = [c for c in chosen if c.tier in tiers]
    return chosen


def check_states(game: Any, states: Sequence[Any]) -> list[Any]:
    """`states` as states of `game`: move strings are parsed with `game.parse`; a state of
    another type or another board (size, heaps) raises a `ValueError` naming its index.

    :param game: a `Game` object.
    """
    if isinstance(states, (str, bytes)):
        raise ValueError(f"states must be a sequence of positions, got one string {states!r}; wrap it in a list")
    proto = game.initial_state()
    own_check = getattr(game, "check_state", None)
    out = []
    for i, state in enumerate(states):
        if isinstance(state, str):
            try:
                state = game.parse(state)
            except ValueError as exc:
                raise ValueError(f"state {i}: {state!r} is not a {game!r} position: {exc}") from exc
        elif type(state) is not type(proto):
            raise ValueError(f"state {i} is a {type(state).__name__}; {game!r} positions are "
                             f"{type(proto).__name__} objects or move strings")
        else:
            problem = _mismatch(game, proto, state)
            if problem:
                raise ValueError(f"state {i} does not belong to {game!r}: {problem}")
        if callable(own_check):
            own_check(state)
        out.append(state)
    return out


def _mismatch(game: Any, proto: Any, state: Any) -> str | None:
    """Why a state of the right type is not a state of this game (board size, heaps), or None."""
    size = getattr(proto, "size", None)
    if size is not None and getattr(state, "size", None) != size:
        return f"it is a {state.size} position, the game is {size}"
    heaps = getattr(game, "heaps", None)
    state_heaps = getattr(state, "heaps", None)
    if heaps is not None and state_heaps is not None:
        if len(state_heaps) != len(heaps) or any(h < 0 or h > top for h, top in zip(state_heaps, heaps)):
            return f"heaps {tuple(state_heaps)} do not fit the starting heaps {tuple(heaps)}"
    return None


def label(game: Any, states: Sequence[Any], names: Sequence[str] | None = None,
          solution_cache: Any = None) -> dict[str, np.ndarray]:
    """Labels of `states` for the chosen concepts: name -> array with one row per state.

    The keys are the names as asked for (all registered concepts if `names` is None): an
    alias (`aliases`) is labelled as the concept it names, once, and keyed by the alias (a
    concept asked for under two names is computed once and both keys hold the same array).

    :param game: a registered game name (default options) or a `Game` object.
    :param states: the game's states, or move strings in its text form (parsed with
        `game.parse`); states of another game or board size raise `ValueError`.
    :param solution_cache: path of the game's store of exact solutions (`Game.solution_cache`;
        Connect Four: a SQLite `solver.cache.SolutionCache`) that solver-tier concepts read
        from and write to (None, or a game that keeps none: solve everything afresh).
    """
    game = _game(game)
    states = check_states(game, states)
    chosen = select(game, names)
    cache: dict = {}
    store = None
    if solution_cache is not None and any(c.tier == "solver" for c in chosen):
        store = game.solution_cache(solution_cache)  # None if the game's oracle keeps no cache
        if store is not None:
            cache["solution_cache"] = store
    try:
        values = {c.name: np.asarray(c.compute(game, states, cache)) for c in chosen}
    finally:
        if store is not None:
            store.close()
    if names is None:
        return values
    return {n: values[resolve(game, n)] for n in names}