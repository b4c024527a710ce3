"""Self-play training of sb3-contrib's MaskablePPO for any registered game.

One shared policy plays both seats. The learner's transitions come from
`games.envs.vector.SelfPlayVecEnv` in opponent mode: every env step is a learner move
followed by the reply of the other seat, so the learner always sees its own position
(player-relative planes), receives +1 / 0 / -1 on the transition that ends the game
(including when the reply wins), and alternates colours game by game. The other seat
is filled by the `OpponentPool`: the live policy itself (self-play proper), past
snapshots of it, and optionally uniform random play.

`train(config)` handles the run folder (see `agents.runs`): resolved config and
library versions, log-spaced checkpoints with the opponent pool beside them, an
evaluation record per checkpoint (`agents.evaluation`), a strength plot, TensorBoard logs,
a progress bar, and ``resume=True`` to continue from the last checkpoint.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from sb3_contrib import MaskablePPO
from stable_baselines3.common.callbacks import BaseCallback

from agents.checkpoints import (
    atomic_save_model,
    checkpoint_path,
    checkpoint_schedule,
    list_checkpoints,
    move_aside,
    pool_path,
)
from agents.network import BoardPolicy, NetworkConfig
from agents.pool import OpponentPool
from agents.records import EvaluationRecord
from agents.runs import read_evaluations, read_run_config, write_evaluation, write_run_config

log = logging.getLogger(__name__)

# Per-game budgets for "train with the defaults" (Connect Four: about 30 minutes on 2 cores).
DEFAULT_TIMESTEPS = {"connect4": 4_000_000, "tictactoe": 300_000, "nim": 200_000}
# Most random plies that open a training game (drawn uniformly from 0 to this, per game):
# self-play games end early, so without deep openings the network rarely sees crowded boards.
DEFAULT_RANDOM_OPENING = {"connect4": 24, "tictactoe": 4, "nim": 0}


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json`` in the run folder).

    :param game: registered game name; ``game_kwargs`` are its options (e.g. board size).
    :param total_timesteps: learner moves to train on (None: the game's default budget).
    :param seed: seeds torch, numpy, the envs and the opponent pool.
    :param n_envs: boards played at once.
    :param n_steps: learner moves per board per rollout (rollout = n_envs * n_steps).
    :param batch_size: PPO minibatch size.
    :param n_epochs: PPO passes over each rollout.
    :param learning_rate: initial Adam step size, decayed linearly to ``lr_final_fraction`` of it.
    :param gamma: discount (below 1 prefers quicker wins and later losses).
    :param gae_lambda: GAE lambda.
    :param clip_range: PPO clip.
    :param ent_coef: entropy bonus.
    :param vf_coef: value-loss weight.
    :param network: `NetworkConfig` fields.
    :param pool_size: past snapshots kept as opponents.
    :param snapshot_every: timesteps between snapshots added to the pool.
    :param latest_prob: share of games against the live policy (the rest: random + snapshots).
    :param random_prob: share of games against uniform random moves.
    :param scripted_prob: share of games against the game's scripted players (its
        ``baseline_players()``, e.g. win-or-block and depth-2/4 alpha-beta for Connect Four).
    :param scripted_players: which of them (None: all).
    :param random_opening: each training game opens with 0 to this many uniformly random
        plies (None: the game's default), for variety of positions.
    :param checkpoints: number of log-spaced checkpoints (the final one included).
    :param eval_games: games per ladder opponent at each checkpoint (0: none).
    :param eval_positions: positions used from each fixed set at each checkpoint (0: all).
    :param eval_decisive: size of the sampled decisive set (0: none).
    :param torch_threads: torch intra-op threads (2 measured ~1.6x faster than 1 on 2 cores).
    :param update_dtype: precision of the trunk's convolutions in the PPO update: ``float32``
        or ``bfloat16`` (autocast, opt-in: 12-24% less update time, see `SelfPlayPPO`).
        Rollouts, heads, losses, weights and optimiser state are float32 either way.
    """

    game: str = "connect4"
    game_kwargs: dict = field(default_factory=dict)
    total_timesteps: int | None = None
    seed: int = 0
    n_envs: int = 64
    n_steps: int = 64
    batch_size: int = 256
    n_epochs: int = 3
    learning_rate: float = 5e-4
    lr_final_fraction: float = 0.2
    gamma: float = 0.95
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    network: dict = field(default_factory=lambda: asdict(NetworkConfig(channels=32, blocks=3)))
    pool_size: int = 16
    snapshot_every: int = 100_000
    latest_prob: float = 0.5
    random_prob: float = 0.05
    scripted_prob: float = 0.0
    scripted_players: list[str] | None = None
    random_opening: int | None = None
    checkpoints: int = 12
    eval_games: int = 100
    eval_positions: int = 300
    eval_decisive: int = 300
    torch_threads: int = 2
    update_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.total_timesteps is None:
            self.total_timesteps = DEFAULT_TIMESTEPS.get(self.game, 500_000)
        if self.random_opening is None:
            self.random_opening = DEFAULT_RANDOM_OPENING.get(self.game, 0)
        positive = ("total_timesteps", "n_envs", "n_steps", "batch_size", "n_epochs", "checkpoints", "torch_threads",
                    "snapshot_every")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.update_dtype not in UPDATE_DTYPES:
            raise ValueError(f"update_dtype must be one of {list(UPDATE_DTYPES)}, got {self.update_dtype!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        shares = {"latest_prob": self.latest_prob, "random_prob": self.random_prob, "scripted_prob": self.scripted_prob}
        if any(not 0 <= p <= 1 for p in shares.values()) or sum(shares.values()) > 1 + 1e-9:
            raise ValueError(f"opponent shares must each be in [0, 1] and sum to at most 1; got {shares}")
        from agents.evaluation import validate_suite_settings

        validate_suite_settings(self.eval_games, self.eval_decisive, self.eval_positions)
        NetworkConfig(**self.network)  # validates

    def scripted_opponents(self, game: Any) -> dict[str, Any]:
        """The scripted players this run trains against (clear error on an unknown name)."""
        available = game.baseline_players()
        if self.scripted_players is None:
            return available
        unknown = sorted(set(self.scripted_players) - set(available))
        if unknown:
            raise ValueError(f"unknown scripted players {unknown} for {game.name}; available: {sorted(available)}")
        return {name: available[name] for name in self.scripted_players}

    @property
    def rollout_size(self) -> int:
        return self.n_envs * self.n_steps

    @classmethod
    def from_json(cls, path: str | Path) -> "TrainConfig":
        """The config saved in a run folder's ``config.json`` (`agents.runs.read_run_config`; errors name the file)."""
        path = Path(path)
        saved = read_run_config(path.parent).config
        unknown = set(saved) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown config fields {sorted(unknown)}")
        return cls(**saved)


UPDATE_DTYPES = {"float32": None, "bfloat16": torch.bfloat16}


class SelfPlayPPO(MaskablePPO):
    """MaskablePPO whose updates may run the policy trunk's convolutions in bfloat16.

    The update (three epochs of forward and backward passes over each rollout) is ~60% of
    training time and most of it is the trunk's 3x3 convolutions. Under bf16 autocast a bare
    forward + backward pass of the trunk took ~40% less time on this project's 2-core AMD EPYC
    (AVX512-BF16) and the whole update 12-24% less in side-by-side training runs
    (`scripts/bench_training.py --update-dtype`). Only the update is affected: the policy's
    weights, heads, losses and Adam state stay float32, and the rollouts, evaluations and
    every later use of a checkpoint run the float32 network. Opt-in: one 4M-step agent
    trained so played within the float32 seeds' spread in games but 1-3 points lower on
    position sets (`results/pipeline_demo_bfloat16/README.md`). `train` sets ``update_dtype``
    from `TrainConfig.update_dtype` once the model is built or loaded.
    """

    update_dtype: str = "float32"

    def train(self) -> None:
        """One PPO update (sb3-contrib's), the trunk autocast to `update_dtype`."""
        self.policy.trunk_dtype = UPDATE_DTYPES[self.update_dtype]
        try:
            super().train()
        finally:
            self.policy.trunk_dtype = None


class LinearSchedule:
    """Learning rate from `start` down to ``start * final_fraction`` over training (picklable)."""

    def __init__(self, start: float, final_fraction: float) -> None:
        self.start, self.final_fraction = start, final_fraction

    def __call__(self, progress_remaining: float) -> float:
        return self.start * (self.final_fraction + (1 - self.final_fraction) * progress_remaining)


class SelfPlayCallback(BaseCallback):
    """Adds snapshots to the pool, writes checkpoints and evaluates them, on schedule.

    Checkpoints are taken at the start of a rollout (after the previous update), so a
    checkpoint at step T holds the policy trained on exactly T learner moves; a new run also
    saves its untrained network as step 0 (the "same network before training" control).
    """

    def __init__(self, run_dir: Path, config: TrainConfig, pool: OpponentPool, suite: Any) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.config = config
        self.pool = pool
        self.suite = suite
        self.schedule = checkpoint_schedule(config.total_timesteps, config.rollout_size, config.checkpoints)
        self.next_snapshot = config.snapshot_every

    def _on_step(self) -> bool:
        return True

    def _on_training_start(self) -> None:
        if self.model.num_timesteps == 0:  # the untrained network: the study's step-0 control
            self.checkpoint(0)

    def _on_rollout_start(self) -> None:
        t = self.model.num_timesteps
        if t >= self.next_snapshot:
            self.pool.add_snapshot(t)
            self.next_snapshot = (t // self.config.snapshot_every + 1) * self.config.snapshot_every
        if self.schedule and t >= self.schedule[0]:
            self.checkpoint(t)

    def checkpoint(self, timestep: int) -> None:
        """Save the model and the pool, then evaluate and record (unless already done for `timestep`)."""
        while self.schedule and self.schedule[0] <= timestep:
            self.schedule.pop(0)
        path = checkpoint_path(self.run_dir, timestep)
        if path.exists() and any(r.timestep == timestep for r in read_evaluations(self.run_dir)):
            return  # saved and recorded before (a resumed run)
        if not path.exists():
            self.pool.save(pool_path(path))
            atomic_save_model(self.model, path)  # written last: its presence means the pair is complete
        entries = {"timestep": int(timestep), "checkpoint": str(path.relative_to(self.run_dir)), "time": time.time()}
        if self.suite is not None:
            t0 = time.perf_counter()
            entries.update(self.suite.run(self.model.policy))
            entries["eval_seconds"] = time.perf_counter() - t0
            self.model.policy.set_training_mode(False)
        record = EvaluationRecord.from_json(entries)
        for name, q in (record.move_quality or {}).items():
            self.logger.record(f"eval/good_{name}", q.good_rate)
            self.logger.record(f"eval/perfect_{name}", q.perfect_rate)
        for name, g in (record.games or {}).items():
            self.logger.record(f"eval/win_vs_{name}", g.all.win)
        write_evaluation(self.run_dir, record)
        if self.suite is not None:
            from agents.plots import plot_strength

            plot_strength(read_evaluations(self.run_dir), self.run_dir / "strength.png", title=self.config.game)
        log.info("checkpoint %s", path)


def resumable_config(run_dir: str | Path, total_timesteps: int | None = None) -> TrainConfig:
    """The saved settings of a run that ``resume=True`` can continue; a clear error otherwise.

    A run can be resumed when its folder holds ``config.json`` and at least one checkpoint
    (a run killed before its first checkpoint is started again, without resuming).

    :param total_timesteps: if given, replaces the saved budget (the one setting a resumed run may change).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"cannot resume {run_dir}: the folder does not exist (start a new run without "
                                "--resume, or check --out)")
    config = TrainConfig.from_json(run_dir / "config.json")
    if not list_checkpoints(run_dir):
        raise FileNotFoundError(f"cannot resume {run_dir}: it holds no checkpoint (expected "
                                f"{run_dir / 'checkpoints'}/step_*.zip); start it again without --resume")
    if total_timesteps is not None:
        config = replace(config, total_timesteps=total_timesteps)
    return config


def _load_for_resume(run_dir: Path, existing: list[tuple[int, Path]], env: Any, pool: OpponentPool) -> Any:
    """The latest checkpoint (and its opponent pool) that loads; damaged ones are moved aside.

    A checkpoint that cannot be read (truncated archive, damaged pool file) is renamed to
    ``*.corrupt`` with a warning naming it, and the one before it is tried: the run then
    re-trains from there, as if killed earlier.
    """
    import zipfile

    for step, path in reversed(existing):
        try:
            if not zipfile.is_zipfile(path):
                raise ValueError("not a zip archive (truncated, or not an SB3 save)")
            model = SelfPlayPPO.load(path, env=env, device="cpu")
            pool.policy = model.policy
            if pool_path(path).exists():
                pool.load(pool_path(path))
        except Exception as exc:  # noqa: BLE001 - SB3 and torch raise many kinds on a damaged file
            moved = [str(move_aside(p)) for p in (path, pool_path(path)) if p.exists()]
            log.warning("checkpoint %s cannot be loaded (%s: %s); moved aside to %s; trying the one before it",
                        path, type(exc).__name__, exc, ", ".join(moved))
            continue
        log.info("resuming from %s", path)
        model.tensorboard_log = str(run_dir / "tb")
        return model
    raise ValueError(f"cannot resume {run_dir}: none of its {len(existing)} checkpoints can be loaded (each moved "
                     "aside as *.corrupt); start it again without --resume")


def _build(config: TrainConfig, game: Any, scripted: dict[str, Any], run_dir: Path) -> tuple[Any, Any, OpponentPool]:
    from games.envs.vector import SelfPlayVecEnv

    pool = OpponentPool(None, config.n_envs, max_size=config.pool_size, latest_prob=config.latest_prob,
                        random_prob=config.random_prob, seed=config.seed, scripted=scripted,
                        scripted_prob=config.scripted_prob, game=game)
    env = SelfPlayVecEnv(game, num_envs=config.n_envs, opponent=pool, seed=config.seed,
                         random_opening=config.random_opening)
    pool.bind_states(env.state)
    model = SelfPlayPPO(
        BoardPolicy, env,
        learning_rate=LinearSchedule(config.learning_rate, config.lr_final_fraction),
        n_steps=config.n_steps, batch_size=config.batch_size, n_epochs=config.n_epochs, gamma=config.gamma,
        gae_lambda=config.gae_lambda, clip_range=config.clip_range, ent_coef=config.ent_coef, vf_coef=config.vf_coef,
        policy_kwargs={"network": dict(config.network)}, tensorboard_log=str(run_dir / "tb"), seed=config.seed,
        device="cpu", verbose=0,
    )
    pool.policy = model.policy
    return model, env, pool


def train(config: TrainConfig, run_dir: str | Path, resume: bool = False, progress_bar: bool = True,
          evaluate: bool = True) -> Path:
    """Train (or resume) a self-play run in `run_dir`; returns the final checkpoint's path.

    :param config: the run's settings (on resume they must match the saved ones, except
        ``total_timesteps``, which may extend the run).
    :param run_dir: the run folder (created if missing).
    :param resume: continue from the last checkpoint in `run_dir` that loads (damaged ones
        are moved aside as ``*.corrupt``); `run_dir` must hold ``config.json`` and a checkpoint.
    :param progress_bar: show SB3's progress bar.
    :param evaluate: evaluate every checkpoint (turn off for quick tests).
    """
    import games
    from common.outputs import check_writable
    from agents.evaluation import EvaluationSuite

    run_dir = Path(run_dir)
    game = games.get(config.game, **config.game_kwargs)  # fails early on an unknown game or bad size
    scripted = config.scripted_opponents(game)  # fails early on an unknown scripted player
    config_file = run_dir / "config.json"
    existing = list_checkpoints(run_dir)
    if existing and not resume:
        raise FileExistsError(f"{run_dir} already holds a run ({len(existing)} checkpoints); "
                              "pass --resume to continue it or choose another --out")
    if resume:
        saved, given = asdict(resumable_config(run_dir)), asdict(config)  # else a clear error
        diff = {k: (v, given[k]) for k, v in saved.items() if given[k] != v and k != "total_timesteps"}
        if diff:
            raise ValueError(f"--resume with settings that differ from the run's config.json: {diff} (saved, given); "
                             "only total_timesteps may change")
    check_writable(config_file, "run folder file")
    torch.set_num_threads(config.torch_threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_run_config(run_dir, asdict(config), game=repr(game))

    model, env, pool = _build(config, game, scripted if config.scripted_prob > 0 else {}, run_dir)
    if resume:
        try:
            model = _load_for_resume(run_dir, existing, env, pool)
        except ValueError:
            env.close()
            raise
    model.update_dtype = config.update_dtype
    suite = None
    if evaluate:
        suite = EvaluationSuite(game, games_per_opponent=config.eval_games, decisive=config.eval_decisive,
                                max_positions=config.eval_positions or None, seed=config.seed)
    callback = SelfPlayCallback(run_dir, config, pool, suite)
    remaining = config.total_timesteps - model.num_timesteps
    if remaining > 0:
        model.learn(remaining, callback=callback, reset_num_timesteps=not resume,
                    tb_log_name="selfplay", progress_bar=progress_bar)
        callback.checkpoint(model.num_timesteps)
    env.close()
    return checkpoint_path(run_dir, model.num_timesteps)
