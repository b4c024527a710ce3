"""Run folders: the one module that writes and reads a run's ``config.json`` and ``evaluations.jsonl``.

A run folder (self-play `agents.selfplay.train` or supervised `agents.reference.train_reference`)::

    RUN/config.json                      {"config": trainer settings, "versions": libraries, ...extra}
    RUN/checkpoints/step_000040960.zip   SB3 MaskablePPO archives (`agents.checkpoints`)
    RUN/checkpoints/step_000040960.pool.pt  the opponent pool at that step (self-play, for --resume)
    RUN/evaluations.jsonl                one evaluation record per checkpoint, in timestep order
    RUN/strength.png                     strength against timesteps
    RUN/tb/                              TensorBoard logs (self-play)

Both trainers write through `write_run_config` and `write_evaluation`; everything else reads
through `read_run_config` (a typed `RunInfo`), `game_of_run` and `read_evaluations` (typed
`agents.records.EvaluationRecord` objects).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.records import EvaluationRecord
from common.atomic import atomic_write_text
from common.json_files import read_json
from common.provenance import library_versions

CONFIG_FILE = "config.json"
EVALUATIONS_FILE = "evaluations.jsonl"


@dataclass
class RunInfo:
    """A run folder's ``config.json``, read.

    :param folder: the run folder.
    :param config: the trainer's settings (fields of `agents.selfplay.TrainConfig` or
        `agents.reference.ReferenceConfig`).
    :param versions: library versions of the training process.
    :param extra: the file's other entries (e.g. ``game``: the game's repr; ``positions``: train/holdout sizes).
    """

    folder: Path
    config: dict
    versions: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """``"reference"`` for a supervised reference network, ``"selfplay"`` for a self-play agent."""
        return str(self.config.get("kind", "selfplay"))

    @property
    def game(self) -> Any:
        """The game the run trained on, built from the registry with the saved options."""
        import games

        if "game" not in self.config:
            raise ValueError(f"{self.folder / CONFIG_FILE} names no game")
        return games.get(self.config["game"], **self.config.get("game_kwargs", {}))


def write_run_config(run_dir: str | Path, config: dict, **extra: Any) -> Path:
    """Write ``RUN/config.json`` atomically: the trainer's settings, library versions and `extra` entries.

    :param config: the settings as a dict (``dataclasses.asdict`` of the trainer's config).
    """
    path = Path(run_dir) / CONFIG_FILE
    atomic_write_text(json.dumps({"config": config, "versions": library_versions(), **extra}, indent=1, default=str),
                      path)
    return path


def read_run_config(run_dir: str | Path) -> RunInfo:
    """Read ``RUN/config.json``; errors name the file and what is wrong (missing, damaged, not a config).

    Old files that hold the settings at the top level (no ``"config"`` entry) are read too.
    """
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    data = read_json(path, missing=f"{run_dir} is not a training run folder")
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds no training config")
    if "config" not in data:
        return RunInfo(run_dir, data)
    extra = {k: v for k, v in data.items() if k not in ("config", "versions")}
    return RunInfo(run_dir, dict(data["config"]), dict(data.get("versions", {})), extra)


def game_of_run(run_dir: str | Path) -> Any:
    """The game a run (self-play or reference) was trained on, from its ``config.json`` (clear error if missing)."""
    return read_run_config(run_dir).game


def write_evaluation(run_dir: str | Path, record: EvaluationRecord | dict) -> None:
    """Add a record to ``evaluations.jsonl`` (replacing an older one of the same timestep), atomically.

    :param record: an `EvaluationRecord`, or its JSON object as the trainers build it (at least
        ``timestep``; the trainers add ``checkpoint``, ``time`` and their evaluation: ``move_quality``,
        ``games``, ``holdout``, ...), checked by reading it as a record.
    """
    if not isinstance(record, EvaluationRecord):
        record = EvaluationRecord.from_json(record)
    records = [r for r in read_evaluations(run_dir) if r.timestep != record.timestep] + [record]
    records.sort(key=lambda r: r.timestep)
    atomic_write_text("".join(json.dumps(r.to_json()) + "\n" for r in records), Path(run_dir) / EVALUATIONS_FILE)


def read_evaluations(run_dir: str | Path) -> list[EvaluationRecord]:
    """The evaluation records of a run, in timestep order (empty when none was written)."""
    path = Path(run_dir) / EVALUATIONS_FILE
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path} has a line that is not valid JSON (line {number}: {exc}); it is damaged") from exc
        try:
            records.append(EvaluationRecord.from_json(data))
        except ValueError as exc:
            raise ValueError(f"{path}, line {number}, is not an evaluation record ({exc}); it is damaged") from exc
    return sorted(records, key=lambda r: r.timestep)


def good_move_curves(run_dir: str | Path) -> dict[str, tuple[list[int], list[float]]]:
    """Per evaluation set, the good-move rate over training: ``{set: (timesteps, rates)}`` from the records."""
    records = read_evaluations(run_dir)
    curves: dict[str, tuple[list[int], list[float]]] = {}
    for name in sorted({name for r in records for name in r.move_quality or {}}):
        points = [(r.timestep, r.move_quality[name].good_rate) for r in records
                  if r.move_quality and name in r.move_quality]
        curves[name] = ([int(t) for t, _ in points], [float(v) for _, v in points])
    return curves
