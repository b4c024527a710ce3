"""Several seeds of one self-play run, trained in parallel through an execution engine (`common.engine`).

`plan_seeds(config, seeds)` makes one work item per seed, each training into its own run
folder (``runs/GAME-seedS``), and checks them all before any work; `train_seeds(items)` runs
them in parallel on an engine. A work item (`SeedJob`, run by
`train_seed`) is exactly a single run: `agents.selfplay.train` with the config's seed
replaced, so ``train_agent.py --seeds 0,1`` gives the same folders as ``train_agent.py
--seed 0`` and ``--seed 1`` with the same options, bit for bit when ``--threads`` is the same too
(torch's sums differ in the last bits between thread counts; parallel seeds default to one
thread each). Items are idempotent: a worker that dies and is retried continues its run from
its last checkpoint. Run folders are passed as absolute paths, so on a Ray cluster the nodes
must share this file system.

With ``resume=True`` every seed whose folder holds a checkpoint continues from it with its
saved settings; a seed that had not started yet (a multi-seed run killed early) starts with
the settings of the resumed ones.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import torch

from agents.checkpoints import list_checkpoints
from agents.runs import read_evaluations
from agents.selfplay import TrainConfig, resumable_config, train
from common.engine import Engine, make_engine, one_thread_per_worker
from common.outputs import RUNS_DIR, check_writable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeedJob:
    """One seed's training, as an engine work item (picklable).

    :param config: the run's `TrainConfig` as a dict (``dataclasses.asdict``), its seed included.
    :param run_dir: the run folder (absolute, so that any worker's working folder will do).
    :param resume: continue the run in `run_dir` from its last checkpoint.
    :param evaluate: evaluate every checkpoint.
    """

    config: dict
    run_dir: str
    resume: bool = False
    evaluate: bool = True


def parse_seeds(text: str) -> list[int]:
    """Seeds from ``"0,1,2"``: at least two, distinct, non-negative; `ValueError` otherwise."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--seeds expects comma-separated integers such as 0,1,2, got {text!r}") from None
    if any(seed < 0 for seed in seeds):
        raise ValueError(f"--seeds must be non-negative integers, got {text!r}")
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds needs at least two distinct seeds, got {text!r}")
    return seeds


def seed_run_dir(game: str, seed: int, root: str | Path = RUNS_DIR) -> Path:
    """The default run folder of one seed: ``runs/GAME-seedS`` (as a single ``train_agent.py`` run uses)."""
    return Path(root) / f"{game}-seed{seed}"


def headline(run_dir: str | Path) -> dict[str, float]:
    """The headline numbers of a run's last evaluation: good- and perfect-move rates per position set and the
    win rate against each ladder opponent (empty when the run was not evaluated)."""
    records = read_evaluations(run_dir)
    if not records:
        return {}
    last = records[-1]
    numbers: dict[str, float] = {}
    for name, quality in (last.move_quality or {}).items():
        numbers[f"{name}: good moves"] = quality.good_rate
        numbers[f"{name}: perfect moves"] = quality.perfect_rate
    for name, result in (last.games or {}).items():
        numbers[f"vs {name}: wins"] = result.all.win
    return numbers


def train_seed(job: SeedJob) -> dict[str, Any]:
    """Train (or resume) one seed's run; the engine's work function.

    Idempotent: a job that did not ask to resume but whose folder already holds checkpoints (a
    retried item whose worker died) continues them; `agents.selfplay.train` refuses settings
    that differ from the saved ones.

    :returns: ``seed``, ``run_dir``, ``timestep`` (of the final checkpoint), ``checkpoint`` (its
        path), ``headline`` (`headline`: the final evaluation's numbers; empty without evaluation)
        and ``torch_threads`` (the threads the worker trained with).
    """
    config = TrainConfig(**job.config)
    run_dir = Path(job.run_dir)
    resume = job.resume or bool(list_checkpoints(run_dir))
    final = train(config, run_dir, resume=resume, progress_bar=False, evaluate=job.evaluate)
    return {"seed": config.seed, "run_dir": str(run_dir), "timestep": list_checkpoints(run_dir)[-1][0],
            "checkpoint": str(final), "headline": headline(run_dir), "torch_threads": torch.get_num_threads()}


def plan_seeds(config: TrainConfig, seeds: Sequence[int], resume: bool = False, total_timesteps: int | None = None,
               evaluate: bool = True, root: str | Path = RUNS_DIR) -> list[SeedJob]:
    """The work items of a multi-seed run, checked before any training starts.

    :param config: the settings of a new run (its seed is replaced by each seed).
    :param resume: continue every seed whose folder holds a checkpoint with its saved settings
        (`total_timesteps`, if given, extends them); seeds not started yet start with the settings
        of the resumed ones, which must then agree (apart from the seed).
    :param root: the folder of the run folders (``root/GAME-seedS``).
    :raises FileExistsError: a seed's folder already holds a run and `resume` is off.
    :raises FileNotFoundError: `resume` and no seed's folder holds a checkpoint.
    :raises ValueError: a damaged ``config.json``; resumed seeds whose settings disagree.
    """
    folders = {seed: seed_run_dir(config.game, seed, root) for seed in seeds}
    started = {seed: folder for seed, folder in folders.items() if list_checkpoints(folder)}
    if not resume and started:
        named = ", ".join(str(folder) for folder in started.values())
        raise FileExistsError(f"{named} already {'holds a run' if len(started) == 1 else 'hold runs'}; pass --resume "
                              "to continue or choose other --seeds")
    configs = {seed: replace(config, seed=seed) for seed in seeds}
    if resume:
        if not started:
            raise FileNotFoundError(f"cannot resume: none of {', '.join(map(str, folders.values()))} holds a "
                                    "checkpoint (start the seeds without --resume)")
        saved = {seed: resumable_config(folder, total_timesteps) for seed, folder in started.items()}
        fresh = [seed for seed in seeds if seed not in started]
        if fresh:
            shared = {seed: {**asdict(c), "seed": None} for seed, c in saved.items()}
            first = next(iter(shared.values()))
            if any(settings != first for settings in shared.values()):
                raise ValueError(f"cannot start seeds {fresh} with the resumed ones' settings: the runs in "
                                 f"{', '.join(map(str, started.values()))} were trained with different settings")
            template = next(iter(saved.values()))
            for seed in fresh:
                log.info("seed %d has no checkpoint in %s; it starts with the resumed seeds' settings", seed,
                         folders[seed])
                saved[seed] = replace(template, seed=seed)
        configs = {seed: saved[seed] for seed in seeds}
    for folder in folders.values():
        check_writable(folder / "config.json", "run folder file")
    return [SeedJob(asdict(configs[seed]), str(folders[seed].resolve()), resume=seed in started, evaluate=evaluate)
            for seed in seeds]


def train_seeds(items: Sequence[SeedJob], *, engine: str | Engine = "local", jobs: int | None = None,
                address: str | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Train the seeds of `plan_seeds` in parallel on an engine; the per-seed summaries (`train_seed`), in
    the order of `items`, run folders shown relative to the working folder where they lie under it.

    :param engine: ``local``, ``ray`` or an `Engine` (left open: the caller closes it).
    :param jobs: seeds trained at once (default: the number of seeds, at most 2).
    :param address: a Ray cluster address (``ray`` only; default ``$RAY_ADDRESS``).
    :param progress: a progress bar over the seeds.
    """
    from tqdm import tqdm

    jobs = min(len(items), 2) if jobs is None else jobs
    owned = not isinstance(engine, Engine)
    runner = make_engine(engine, jobs, address)
    log.info("training seeds %s on the %s", ", ".join(str(item.config["seed"]) for item in items), runner.describe())
    summaries = []
    try:
        with tqdm(total=len(items), desc="seeds trained", unit="seed", disable=not progress) as bar:
            for summary in runner.map_unordered(train_seed, items, initializer=one_thread_per_worker):
                summary["run_dir"] = str(_shown(Path(summary["run_dir"])))
                log.info("seed %d done: %s at %d timesteps", summary["seed"], summary["run_dir"], summary["timestep"])
                summaries.append(summary)
                bar.update()
    finally:
        if owned:
            runner.close()
    order = [item.config["seed"] for item in items]
    return sorted(summaries, key=lambda summary: order.index(summary["seed"]))


def _shown(path: Path) -> Path:
    """`path` relative to the working folder if it lies under it, else as it is."""
    try:
        return path.relative_to(Path.cwd().resolve())
    except ValueError:
        return path
