"""Evaluation records as typed objects: one record per checkpoint of a run (``RUN/evaluations.jsonl``).

The dataclasses below are the one definition of a record's fields and of its JSON form
(`EvaluationRecord.from_json` / `EvaluationRecord.to_json`, exact round trip: same keys, same order,
keys this code does not know kept in ``extra``). `agents.runs` writes and reads the file through them.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, ClassVar


def _known(cls: type, data: dict) -> tuple[dict, dict]:
    """`data` split into the entries named by `cls`'s fields (besides ``extra``) and all others."""
    if not isinstance(data, dict):
        raise ValueError(f"a {cls.__name__} is a JSON object, got {type(data).__name__}: {data!r}")
    names = [f.name for f in fields(cls) if f.name != "extra"]
    missing = [f.name for f in fields(cls)
               if f.default is MISSING and f.default_factory is MISSING and f.name not in data]  # required ones
    if missing:
        raise ValueError(f"a {cls.__name__} needs {', '.join(missing)}; got only {', '.join(data) or 'nothing'}")
    return {k: data[k] for k in names if k in data}, {k: v for k, v in data.items() if k not in names}


def _to_json(obj: Any) -> dict:
    """The JSON object of a record part: its fields in order (None fields left out), then ``extra``."""
    out: dict = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.name == "extra" or value is None:
            continue
        if isinstance(value, dict):
            value = {k: v.to_json() if hasattr(v, "to_json") else v for k, v in value.items()}
        elif hasattr(value, "to_json"):
            value = value.to_json()
        out[f.name] = value
    out.update(obj.extra)
    return out


def _mapping(data: dict | None, part: Callable[[dict], Any]) -> dict | None:
    """``{name: part(entry)}`` of a JSON object of parts (None stays None: the record has no such entry)."""
    return None if data is None else {name: part(entry) for name, entry in data.items()}


class _JsonPart:
    """`from_json` / `to_json` of a record part: its fields in order, nested parts read by the
    readers in `_parts` (field name -> reader of that field's JSON), unknown keys kept in ``extra``."""

    _parts: ClassVar[dict[str, Callable[[Any], Any]]] = {}

    @classmethod
    def from_json(cls, data: dict) -> Any:
        """Read the part from its JSON object; `ValueError` names a missing required entry."""
        known, extra = _known(cls, data)
        for name, read in cls._parts.items():
            if known.get(name) is not None:
                known[name] = read(known[name])
        return cls(**known, extra=extra)

    def to_json(self) -> dict:
        """The JSON object, keys in the order written."""
        return _to_json(self)


@dataclass(frozen=True)
class MoveQuality(_JsonPart):
    """How well the agent chose on one labelled position set (`agents.evaluation.move_quality`).

    :param n: positions in the set.
    :param perfect_rate: share of positions where the chosen action has the best exact score.
    :param good_rate: share where it keeps the game value (win stays win, draw stays draw).
    :param errors: value-losing moves counted by kind (`agents.evaluation.ERROR_KINDS`);
        None in records written before errors were counted.
    """

    n: int
    perfect_rate: float
    good_rate: float
    errors: dict[str, int] | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Outcomes(_JsonPart):
    """Shares of games won, drawn and lost, from the agent's side."""

    win: float
    draw: float
    loss: float
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)  # keyword-only: a required field may follow an optional one
class GameResult(_JsonPart):
    """Games against one ladder opponent (`agents.evaluation.play_games`).

    :param games: games played (half with each colour).
    :param opening_plies: random moves each opening starts with (each opening played with both colours);
        None in records written before games started from random openings.
    :param as_first: outcomes when the agent moved first.
    :param as_second: outcomes when it moved second.
    :param all: outcomes over all games.
    """

    games: int
    opening_plies: int | None = None
    as_first: Outcomes
    as_second: Outcomes
    all: Outcomes
    extra: dict = field(default_factory=dict)

    _parts: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "as_first": Outcomes.from_json, "as_second": Outcomes.from_json, "all": Outcomes.from_json}


@dataclass(frozen=True)
class SetDescription(_JsonPart):
    """Which positions a move-quality entry used (`agents.evaluation.LabelledSet.description`).

    :param n: positions in the set.
    :param source: where they come from (the game's fixed set, or how a decisive sample was drawn).
    :param positions_sha256: the first 16 hex digits of the SHA-256 of the positions' texts.
    """

    n: int
    source: str
    positions_sha256: str
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Holdout(_JsonPart):
    """A supervised reference network on its held-out positions (`agents.reference`).

    :param policy_ce: cross-entropy of the policy against its exact targets (good moves, or score-weighted).
    :param value_mse: squared error of the value head against its target (the game value, or the scaled exact
        score of an oracle run: `agents.reference`).
    :param good_move_rate: share of positions where the greedy legal move keeps the game value.
    :param value_sign_accuracy: share of decisive positions whose value sign is right (NaN if none).
    """

    policy_ce: float
    value_mse: float
    good_move_rate: float
    value_sign_accuracy: float
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationRecord(_JsonPart):
    """One checkpoint of a run, measured (one line of ``evaluations.jsonl``).

    Entries a record lacks are None (a run trained without evaluation has only ``timestep``,
    ``checkpoint`` and ``time``; older records lack ``views``, ``sets`` and errors by kind);
    an empty dict means the entry was written empty (e.g. ``games`` with no games per opponent).

    :param timestep: environment steps (self-play) or training samples (reference) at the checkpoint.
    :param checkpoint: the checkpoint's path, relative to the run folder.
    :param time: when the record was made (seconds since the epoch).
    :param holdout: held-out measurements of a supervised reference network.
    :param views: symmetric views the agent averaged its policy over (None: one, as before views existed).
    :param sets: the position sets used, by name.
    :param move_quality: move quality on each position set, by name.
    :param games: games against each ladder opponent, by name.
    :param symmetry_consistency: per set, the share of moves of the network alone that commute with the
        board's symmetries.
    :param eval_seconds: how long the evaluation took (self-play).
    :param extra: entries this code does not know, kept for the round trip.
    """

    timestep: int
    checkpoint: str | None = None
    time: float | None = None
    holdout: Holdout | None = None
    views: int | None = None
    sets: dict[str, SetDescription] | None = None
    move_quality: dict[str, MoveQuality] | None = None
    games: dict[str, GameResult] | None = None
    symmetry_consistency: dict[str, float] | None = None
    eval_seconds: float | None = None
    extra: dict = field(default_factory=dict)

    _parts: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "holdout": Holdout.from_json,
        "sets": lambda data: _mapping(data, SetDescription.from_json),
        "move_quality": lambda data: _mapping(data, MoveQuality.from_json),
        "games": lambda data: _mapping(data, GameResult.from_json),
    }

    @classmethod
    def from_json(cls, data: dict) -> EvaluationRecord:
        """Read a record from its JSON object; `ValueError` names what is missing or malformed."""
        try:
            return super().from_json(data)
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"malformed evaluation record at timestep {data.get('timestep')!r}: {exc}") from exc

    @property
    def agent_views(self) -> int:
        """Symmetric views the agent averaged over (1 for records written before views existed)."""
        return 1 if self.views is None else int(self.views)
