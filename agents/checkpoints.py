"""Checkpoints of a run folder: log-spaced schedule, atomic writes, loading with clear errors.

Checkpoints live in ``RUN/checkpoints/step_<timestep>.zip`` (SB3 MaskablePPO archives),
with the opponent pool beside them (``step_<timestep>.pool.pt``); the rest of the run folder
(``config.json``, ``evaluations.jsonl``) belongs to `agents.runs`.

Every file is written to a temporary name in the same folder and renamed into place, so a
killed run leaves either the previous file or the new one, never half of one. A file that is
damaged anyway (a full disk, a copy cut short) is moved aside as ``*.corrupt`` when found,
never deleted (`move_aside`); outputs are checked for writability before any work
(`common.outputs.check_writable`), so a read-only folder fails in a second, not after an hour.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.atomic import atomic_target

CHECKPOINT_RE = re.compile(r"^step_(\d+)\.zip$")

log = logging.getLogger(__name__)


def move_aside(path: str | Path) -> Path:
    """Rename a damaged file to ``NAME.corrupt`` (``NAME.corrupt-2``, ... if taken); never deletes."""
    path = Path(path)
    target = path.with_name(path.name + ".corrupt")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{n}")
    os.replace(path, target)
    return target


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """`torch.save` to `path` atomically."""
    with atomic_target(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def atomic_save_model(model: Any, path: str | Path) -> Path:
    """``model.save`` (an SB3 algorithm) to `path` (a ``.zip``) atomically."""
    with atomic_target(path, suffix=".zip") as tmp:  # SB3 appends .zip to names without it
        model.save(tmp)
    return Path(path)


def checkpoint_schedule(total_timesteps: int, rollout_size: int, count: int = 12) -> list[int]:
    """Log-spaced checkpoint timesteps, each at the end of a rollout, always ending at the last one.

    :param total_timesteps: training budget.
    :param rollout_size: timesteps per rollout (n_envs * n_steps); checkpoints fall on multiples.
    :param count: the number of checkpoints wanted (fewer if the budget has fewer rollouts).
    """
    if total_timesteps < 1 or rollout_size < 1 or count < 1:
        raise ValueError("total_timesteps, rollout_size and count must be positive")
    last = max(rollout_size, -(-total_timesteps // rollout_size) * rollout_size)
    points = np.geomspace(rollout_size, last, num=count)
    steps = sorted({int(np.ceil(p / rollout_size - 1e-9)) * rollout_size for p in points} | {last})
    return steps


def checkpoint_path(run_dir: str | Path, timestep: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{timestep:09d}.zip"


def pool_path(checkpoint: str | Path) -> Path:
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".pool.pt")


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(timestep, path)`` of every checkpoint of a run, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_RE.match(p.name))]
    return sorted(found)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or the latest checkpoint of a run folder; a clear error otherwise."""
    path = Path(path)
    if path.is_dir():
        found = list_checkpoints(path)
        if not found:
            raise FileNotFoundError(f"{path} has no checkpoints (expected {path}/checkpoints/step_*.zip)")
        return found[-1][1]
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix != ".zip":
        raise ValueError(f"{path} is not a checkpoint: expected an SB3 .zip archive or a run folder")
    return path


def load_agent(path: str | Path, device: str = "cpu") -> Any:
    """Load a MaskablePPO checkpoint (file or run folder); the error names what is wrong."""
    import zipfile

    from sb3_contrib import MaskablePPO

    checkpoint = resolve_checkpoint(path)
    if not zipfile.is_zipfile(checkpoint):
        raise ValueError(f"{checkpoint} is not a valid checkpoint archive (truncated or not an SB3 save)")
    try:
        return MaskablePPO.load(checkpoint, device=device)
    except Exception as exc:  # SB3 raises many kinds; name the file and the cause
        raise ValueError(f"cannot load checkpoint {checkpoint}: {type(exc).__name__}: {exc}") from exc


@dataclass
class LoadedAgent:
    """A checkpoint loaded for use: its path, the MaskablePPO model and the game it plays."""

    path: Path
    model: Any
    game: Any


def load_agent_for_game(checkpoint: str | Path, game: str | None = None) -> LoadedAgent:
    """Load a checkpoint (file or run folder) and the game it was trained on, checked against each other.

    The game comes from the run folder's ``config.json`` (checkpoint in ``RUN/checkpoints/``)
    or, when `game` is given, from the registry. Raises `FileNotFoundError` or `ValueError`
    naming the problem: no checkpoint, an unreadable one, no run folder and no `game`, or a
    network whose observation shape or action count does not fit the game.
    """
    import games

    from agents.runs import game_of_run

    path = resolve_checkpoint(checkpoint)
    model = load_agent(path)
    if game is not None:
        the_game = games.get(game)
    else:
        try:
            the_game = game_of_run(path.parent.parent)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{exc}; pass the game it plays (--game)") from exc
    obs_shape = tuple(model.observation_space.shape)
    if obs_shape != tuple(the_game.obs_shape) or model.action_space.n != the_game.num_actions:
        raise ValueError(f"{path} was trained on observations {obs_shape} with {model.action_space.n} actions; "
                         f"{the_game!r} has {tuple(the_game.obs_shape)} and {the_game.num_actions}")
    return LoadedAgent(path, model, the_game)

