"""The main job as data: the steps `scripts/pipeline.py` runs, with defaults for every game,
and child processes that die with the pipeline.

`PipelineSettings.resolve` fills every option the user left out from the game
(`GAME_DEFAULTS`: Connect Four 7x6 probes positions from 14 stones on, where the solver is
fast; tic-tac-toe and Nim from the empty board, with as many positions as they have) and
checks the rest; `pipeline_steps` turns the settings into the commands to run, each one of
the project's scripts; `run_step` runs one in its own process group, forwards Ctrl-C and
``kill -TERM`` to the whole group (the step's own worker processes included) and, on Linux,
asks the kernel to stop the step if the pipeline itself is killed outright (``kill -9``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from common.processes import die_with_parent

log = logging.getLogger(__name__)

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@dataclass(frozen=True)
class GameDefaults:
    """What the pipeline does for a game when the user does not say.

    :param min_ply: fewest moves played in a probe position (Connect Four: emptier boards cost
        the exact solver seconds each).
    :param positions: labelled positions for the probes (at most what the game has: tic-tac-toe
        has 627 distinct live positions up to symmetry, Nim(3, 4, 5) 230).
    :param reference_positions: solver-labelled positions for the reference network.
    :param reference_min_ply: fewest moves played in a reference position.
    """

    min_ply: int
    positions: int
    reference_positions: int
    reference_min_ply: int


GAME_DEFAULTS = {
    "connect4": GameDefaults(min_ply=14, positions=4000, reference_positions=20000, reference_min_ply=16),
    "tictactoe": GameDefaults(min_ply=0, positions=300, reference_positions=500, reference_min_ply=0),
    "nim": GameDefaults(min_ply=0, positions=100, reference_positions=200, reference_min_ply=0),
}
REFERENCE_CONCEPTS = ("value", "good_moves")  # what the reference network learns from (agents.reference)
STEP_SCRIPTS = ("train_agent", "make_dataset", "train_reference", "probe_sweep", "probe_report")


def game_defaults(game_name: str) -> GameDefaults:
    """The pipeline's defaults for a registered game (a game added later: its fast-oracle ply
    and a small budget)."""
    import games

    if game_name in GAME_DEFAULTS:
        return GAME_DEFAULTS[game_name]
    game = games.get(game_name)  # an unknown name: a ValueError naming the registered games
    return GameDefaults(game.fast_oracle_ply, 1000, 5000, game.fast_oracle_ply)


@dataclass(frozen=True)
class PipelineSettings:
    """Every option of the pipeline, resolved (see `resolve`)."""

    game: str = "connect4"
    run: Path = Path("runs") / "connect4-seed0"
    timesteps: int | None = None
    positions: int = 4000
    min_ply: int = 14
    reference: bool = False
    reference_positions: int = 20000
    reference_min_ply: int = 16
    jobs: int = 2
    seed: int = 0
    extra: dict = field(default_factory=dict)  # script -> extra arguments (tests: tiny budgets)

    @classmethod
    def resolve(cls, game: str = "connect4", run: Path | None = None, timesteps: int | None = None,
                positions: int | None = None, min_ply: int | None = None, reference: bool = False,
                reference_positions: int | None = None, jobs: int = 2, seed: int = 0) -> "PipelineSettings":
        """Settings with the game's defaults for every option left as None; `ValueError` naming
        the first option that cannot work (before anything runs)."""
        from agents.checkpoints import list_checkpoints
        from agents.runs import game_of_run
        from common.outputs import check_writable
        from games.concepts import concepts

        defaults = game_defaults(game)  # also: unknown game
        run = Path(run) if run is not None else Path("runs") / f"{game}-seed{seed}"
        settings = cls(game, run, timesteps, defaults.positions if positions is None else positions,
                       defaults.min_ply if min_ply is None else min_ply, reference,
                       defaults.reference_positions if reference_positions is None else reference_positions,
                       defaults.reference_min_ply, jobs, seed)
        for name, least in (("positions", 1), ("min_ply", 0), ("reference_positions", 1), ("jobs", 1)):
            if getattr(settings, name) < least:
                option = "--" + name.replace("_", "-")
                raise ValueError(f"{option} must be at least {least}, got {getattr(settings, name)}")
        if timesteps is not None and timesteps < 1:
            raise ValueError(f"--timesteps must be at least 1, got {timesteps}")
        if reference:
            missing = [c for c in REFERENCE_CONCEPTS if c not in concepts(game)]
            if missing:
                raise ValueError(f"--reference needs the solver concepts {list(REFERENCE_CONCEPTS)}; {game} has no "
                                 f"{missing}: run the pipeline without --reference")
        if (run / "config.json").exists() and list_checkpoints(run):
            trained = game_of_run(run)
            if trained.name != game:
                raise ValueError(f"{run} holds a {trained.name} run, not {game}: choose another --run or --game")
        check_writable(run / "config.json", "--run folder")
        return settings

    def with_extra(self, **extra: Sequence[str]) -> "PipelineSettings":
        """The same settings with extra arguments for some scripts (by name without ``.py``)."""
        return replace(self, extra={**self.extra, **{k: list(v) for k, v in extra.items()}})


def parse_step_args(items: Sequence[str]) -> dict[str, list[str]]:
    """``["probe_sweep=--tcav-runs 0", ...]`` as ``{"probe_sweep": ["--tcav-runs", "0"]}`` (shell quoting;
    a script named twice gets both)."""
    import shlex

    out: dict[str, list[str]] = {}
    for item in items:
        name, sep, options = item.partition("=")
        name = name.strip().removesuffix(".py")
        if not sep or name not in STEP_SCRIPTS:
            raise ValueError(f"--step-args expects SCRIPT=OPTIONS with SCRIPT one of {', '.join(STEP_SCRIPTS)}; "
                             f"got {item!r}")
        try:
            out.setdefault(name, []).extend(shlex.split(options))
        except ValueError as exc:
            raise ValueError(f"--step-args {item!r}: {exc}") from exc
    return out


@dataclass(frozen=True)
class Step:
    """One command of the pipeline: a title and the script's arguments (run with this Python)."""

    title: str
    args: list[str]

    @property
    def command(self) -> list[str]:
        return [sys.executable, *self.args]


def data_folder(settings: PipelineSettings) -> Path:
    """Where the probe dataset goes (inside the run folder, named by its size)."""
    return settings.run / f"probe-data-n{settings.positions}"


def sweep_folder(settings: PipelineSettings) -> Path:
    """Where the sweep and its report go."""
    return settings.run / f"sweep-{data_folder(settings).name}"


def pipeline_steps(settings: PipelineSettings) -> list[Step]:
    """The commands of the pipeline, in order (a trained agent is resumed, a trained
    reference network kept; every step itself resumes what it finds)."""
    from agents.checkpoints import list_checkpoints

    s, run = str, settings.run

    def script(name: str, *args: str) -> list[str]:
        return [s(SCRIPTS / f"{name}.py"), *args, *settings.extra.get(name, [])]

    train = ["--game", settings.game, "--out", s(run), "--seed", s(settings.seed)]
    if settings.timesteps is not None:
        train += ["--total-timesteps", s(settings.timesteps)]
    if list_checkpoints(run):
        train.append("--resume")
    data = data_folder(settings)
    steps = [Step("1. train the agent", script("train_agent", *train)),
             Step("2. label positions", script("make_dataset", "--game", settings.game, "--out", s(data),
                                               "--n", s(settings.positions), "--min-ply", s(settings.min_ply),
                                               "--sources", "random:0.5,agent-0:0.5", "--agent", s(run),
                                               "--jobs", s(settings.jobs), "--seed", s(settings.seed)))]
    runs = [run]
    if settings.reference:
        ref_data = run.parent / f"reference-data-n{settings.reference_positions}"
        ref_run = run.parent / f"{run.name}-reference"
        steps.append(Step("2b. label positions for the reference network",
                          script("make_dataset", "--game", settings.game, "--out", s(ref_data),
                                 "--n", s(settings.reference_positions), "--min-ply", s(settings.reference_min_ply),
                                 "--sources", "random:1", "--concepts", ",".join(REFERENCE_CONCEPTS),
                                 "--jobs", s(settings.jobs), "--seed", s(settings.seed + 1))))
        if not list_checkpoints(ref_run):
            steps.append(Step("2c. train the reference network",
                              script("train_reference", "--game", settings.game, "--dataset", s(ref_data),
                                     "--out", s(ref_run), "--seed", s(settings.seed), "--quiet")))
        runs.append(ref_run)
    sweep = sweep_folder(settings)
    sweep_args = ["--dataset", s(data), "--out", s(sweep), "--max-positions", s(settings.positions),
                  "--jobs", s(settings.jobs), "--seed", s(settings.seed)]
    for r in runs:
        sweep_args += ["--run", s(r)]
    steps.append(Step("3. probe sweep", script("probe_sweep", *sweep_args)))
    steps.append(Step("4. report", script("probe_report", s(sweep))))
    return steps


# ---------------------------------------------------------------------------- child processes
class StepFailed(RuntimeError):
    """A step exited with a non-zero status (its own error message is already on stderr)."""

    def __init__(self, step: Step, returncode: int) -> None:
        super().__init__(f"step '{step.title}' failed (exit status {returncode}); what it printed above says why. "
                         "Finished steps are kept: rerun the same command to continue")
        self.step, self.returncode = step, returncode


class Stopped(Exception):
    """The pipeline was asked to stop (SIGTERM); the running step was stopped with it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signal.Signals(signum).name}; the running step was stopped too "
                         "(finished work is kept: rerun the same command to continue)")
        self.signum = signum


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone


def run_step(step: Step, grace_s: float = 20.0) -> None:
    """Run one step in its own process group and wait for it.

    Ctrl-C (SIGINT) and SIGTERM received meanwhile go to the step's whole process group (its
    worker processes too), the step gets `grace_s` seconds to stop cleanly (a second signal:
    at once), then the group is killed; afterwards `KeyboardInterrupt` (SIGINT) or `Stopped`
    (SIGTERM) is raised. Processes of the group still alive after the step exits are
    stopped too. `StepFailed` if the step exits with a non-zero status.
    """
    received: list[int] = []
    proc: subprocess.Popen | None = None

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        if proc is not None and proc.poll() is None:
            _signal_group(proc.pid, signum if len(received) == 1 else signal.SIGKILL)

    parent = os.getpid()
    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        proc = subprocess.Popen(step.command, stdin=subprocess.DEVNULL, process_group=0,
                                preexec_fn=lambda: die_with_parent(parent, signal.SIGTERM, watchdog=False))
        if received:  # a signal came while the step was starting
            _signal_group(proc.pid, received[0])
        while True:
            try:
                returncode = proc.wait(timeout=grace_s if received else None)
                break
            except subprocess.TimeoutExpired:
                log.warning("step '%s' did not stop within %.0f s of the signal; killing it", step.title, grace_s)
                _signal_group(proc.pid, signal.SIGKILL)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if proc is not None:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
            _signal_group(proc.pid, signal.SIGTERM)  # workers the step left behind
    if received:
        if received[0] == signal.SIGINT:
            raise KeyboardInterrupt
        raise Stopped(received[0])
    if returncode != 0:
        raise StepFailed(step, returncode)
