"""The reference network: the agent's architecture trained on the solver's answers.

"What do optimal features look like in this architecture?" The same `BoardPolicy` as the
self-play agent is trained by supervised learning on exactly labelled positions. It is
saved as a run folder just like an agent's (``config.json``, ``checkpoints/step_*.zip`` at
log-spaced numbers of training samples, ``evaluations.jsonl`` with move quality on the
shipped evaluation sets and games against the ladder), so `scripts/probe_sweep.py` and the
reports treat it as one more run.

Two recipes, one trainer (`ReferenceConfig`):

* the small reference of the first round: one dataset labelled with ``value`` and
  ``good_moves``; the policy learns the uniform distribution over value-preserving moves
  (``policy_target="good_moves"``), the value head the game value (``value_target="value"``);
* the **oracle network** (docs/oracle.md): several large datasets (``dataset`` may be a
  list) labelled with ``score`` and ``column_scores`` as well; the policy learns every
  legal move's exact score (``policy_target="scores"``: all the mass on value-preserving
  moves, shared among them in proportion to ``exp((score - best) / score_temperature)``,
  so faster wins and slower losses get more), the value head the exact score
  (``value_target="score"``: ``sign(s) * (1 + |s| / S) / 2``, wins in (0.5, 1], draws 0,
  losses mirrored, S the largest score the board allows, ``(squares + 1) // 2``), and each
  batch is shown under a random symmetry of the board (``symmetries=True``).

Positions are split by game (per dataset) into train and a held-out part whose losses and
accuracies are logged at each checkpoint. With ``resume=True`` a run continues from the
state saved atomically at the end of every epoch (weights, optimiser, schedule, random
generators), and ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from agents.checkpoints import atomic_save_model, checkpoint_path, checkpoint_schedule
from agents.network import NetworkConfig, policy_forward
from agents.runs import read_evaluations, read_run_config, write_evaluation, write_run_config
from common.atomic import atomic_target
from games.datasets import read_dataset

log = logging.getLogger(__name__)

POLICY_TARGETS = ("good_moves", "scores")
VALUE_TARGETS = ("value", "score")
RESUME_FILE = "resume.pt"


@dataclass
class ReferenceConfig:
    """Settings of a reference-network run (saved as ``config.json``; ``kind`` marks it as supervised).

    :param dataset: dataset folder, or a list of them, labelled with the concepts the targets need
        (`required_concepts`).
    :param epochs: passes over the train positions.
    :param batch_size: positions per update.
    :param learning_rate: AdamW step size (cosine-decayed to a tenth).
    :param weight_decay: AdamW weight decay.
    :param value_weight: weight of the value loss (mean squared error) beside the policy cross-entropy.
    :param policy_target: ``good_moves`` (uniform over value-preserving moves) or ``scores`` (value-preserving
        moves weighted by their exact scores; see the module docstring).
    :param value_target: ``value`` (-1 / 0 / +1) or ``score`` (the exact score, scaled; module docstring).
    :param score_temperature: how sharply ``scores`` prefers the best of the value-preserving moves.
    :param symmetries: show each batch under a random symmetry of the board (the game's `symmetries`).
    :param holdout: fraction of games held out for validation.
    :param checkpoints: log-spaced checkpoints over the training samples (the final one included).
    :param eval_positions: positions per shipped evaluation set at each checkpoint (0: all).
    :param eval_games: games against each ladder opponent at each checkpoint (as the agent's).
    :param eval_decisive: size of the sampled decisive set (0: none).
    """

    dataset: str | list[str]
    game: str = "connect4"
    game_kwargs: dict = field(default_factory=dict)
    network: dict = field(default_factory=lambda: asdict(NetworkConfig(channels=32, blocks=3)))
    epochs: int = 8
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    value_weight: float = 1.0
    policy_target: str = "good_moves"
    value_target: str = "value"
    score_temperature: float = 2.0
    symmetries: bool = False
    holdout: float = 0.1
    checkpoints: int = 10
    eval_positions: int = 300
    eval_games: int = 100
    eval_decisive: int = 300
    seed: int = 0
    torch_threads: int = 2
    kind: str = "reference"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "checkpoints", "torch_threads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.holdout < 1:
            raise ValueError(f"holdout must be in (0, 1), got {self.holdout}")
        if self.policy_target not in POLICY_TARGETS:
            raise ValueError(f"policy_target must be one of {POLICY_TARGETS}, got {self.policy_target!r}")
        if self.value_target not in VALUE_TARGETS:
            raise ValueError(f"value_target must be one of {VALUE_TARGETS}, got {self.value_target!r}")
        if not self.score_temperature > 0:
            raise ValueError(f"score_temperature must be > 0, got {self.score_temperature}")
        if not self.datasets:
            raise ValueError("at least one dataset folder is needed")
        from agents.evaluation import validate_suite_settings

        validate_suite_settings(self.eval_games, self.eval_decisive, self.eval_positions)
        NetworkConfig(**self.network)

    @property
    def datasets(self) -> list[str]:
        """The dataset folders, as a list."""
        return [self.dataset] if isinstance(self.dataset, (str, Path)) else [str(d) for d in self.dataset]

    @property
    def required_concepts(self) -> tuple[str, ...]:
        """The solver labels these targets need in every dataset."""
        need = ["value", "good_moves"]
        if self.policy_target == "scores":
            need.append("column_scores")
        if self.value_target == "score":
            need.append("score")
        return tuple(need)


@dataclass
class ReferenceData:
    """Observations, legal masks, policy targets (rows sum to 1) and values, with game ids.

    `value` is the game value (-1 / 0 / +1, what the held-out value-sign accuracy checks);
    `value_target` what the value head learns (the value itself, or the scaled exact score).
    """

    obs: np.ndarray
    masks: np.ndarray
    policy: np.ndarray
    value: np.ndarray
    groups: np.ndarray
    value_target: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.value_target is None:
            self.value_target = self.value

    def __len__(self) -> int:
        return len(self.value)


def score_value_target(scores: np.ndarray, n_squares: int) -> np.ndarray:
    """The exact score scaled for the value head: ``sign(s) * (1 + |s| / S) / 2``, S = ``(n_squares + 1) // 2``.

    Wins map into (0.5, 1] (faster wins higher), draws to 0, losses into [-1, -0.5), so the
    sign is the game value and the magnitude its distance.
    """
    scale = (n_squares + 1) // 2
    scores = np.asarray(scores, dtype=np.float64)
    return (np.sign(scores) * (1 + np.abs(scores) / scale) / 2).astype(np.float32)


def score_policy_target(good: np.ndarray, column_scores: np.ndarray, temperature: float) -> np.ndarray:
    """Policy targets from exact move scores: mass only on value-preserving moves (`good`), shared in
    proportion to ``exp((score - best) / temperature)``; rows without a good move are all zero."""
    scores = np.where(good, np.nan_to_num(column_scores, nan=0.0), -np.inf)
    best = scores.max(axis=1, keepdims=True)
    weights = np.where(good, np.exp((scores - np.where(np.isfinite(best), best, 0.0)) / temperature), 0.0)
    total = weights.sum(axis=1, keepdims=True)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total > 0).astype(np.float32)


def load_reference_data(dataset: str | Path | list, game, config: ReferenceConfig | None = None) -> ReferenceData:
    """Read labelled dataset folder(s) into training arrays (clear errors for missing labels).

    :param dataset: one folder or a list of them (their games are kept apart: game ids are per folder).
    :param config: the targets to build (default: `ReferenceConfig`'s, uniform over good moves and the value).
    """
    folders = [dataset] if isinstance(dataset, (str, Path)) else list(dataset)
    config = config or ReferenceConfig(str(folders[0]))
    need = config.required_concepts
    parts = []
    for index, folder in enumerate(folders):
        folder = Path(folder)
        for name in ("positions.parquet", "manifest.json"):
            if not (folder / name).exists():
                raise FileNotFoundError(f"{folder / name} does not exist (build it with scripts/make_dataset.py "
                                        f"--concepts {','.join(need)})")
        data = read_dataset(folder)
        if data.game_name != game.name:
            raise ValueError(f"{folder} is a {data.game_name} dataset, not {game.name}")
        df = data.positions
        missing = [c for c in need if c not in df]
        if missing:
            raise ValueError(f"{folder} lacks the solver labels {missing}; rebuild it with --concepts {','.join(need)}")
        parts.append(_arrays(df, game, config, index))
    return ReferenceData(*(np.concatenate([getattr(p, name) for p in parts])
                           for name in ("obs", "masks", "policy", "value", "groups", "value_target")))


def _arrays(df, game, config: ReferenceConfig, index: int) -> ReferenceData:
    """One dataset's positions as training arrays (terminal or unlabelled positions dropped)."""
    from tqdm.auto import tqdm

    states = [game.parse(t) for t in tqdm(df["moves"], desc="reading positions", unit="pos", leave=False,
                                           disable=len(df) < 50_000)]
    obs = np.stack([game.observation(s) for s in states]).astype(np.float32)
    masks = np.stack([game.legal_mask(s) for s in states]).astype(bool)
    good = np.stack(df["good_moves"].to_numpy()).astype(bool) & masks
    keep = good.any(axis=1)
    if config.policy_target == "scores":
        columns = np.stack(df["column_scores"].to_numpy()).astype(np.float64)
        policy = score_policy_target(good[keep], columns[keep], config.score_temperature)
    else:
        policy = good[keep] / good[keep].sum(axis=1, keepdims=True)
    value = df["value"].to_numpy().astype(np.float32)[keep]
    if config.value_target == "score":
        target = score_value_target(df["score"].to_numpy()[keep], obs.shape[-1] * obs.shape[-2])
    else:
        target = value
    groups = df["game_id"].to_numpy().astype(np.int64)[keep] + (index << 40)  # games of different folders differ
    return ReferenceData(obs[keep], masks[keep], policy.astype(np.float32), value, groups, target)


def _evaluate(policy, data: ReferenceData, rows: np.ndarray, batch_size: int = 8192) -> dict:
    """Held-out losses, good-move rate (greedy legal move is value-preserving) and value-sign accuracy."""
    ce, v, choice = [], [], []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            part = rows[start:start + batch_size]
            logits, value = policy_forward(policy, torch.as_tensor(data.obs[part]))
            logits = logits.masked_fill(~torch.as_tensor(data.masks[part]), -1e9)
            target = torch.as_tensor(data.policy[part])
            ce.append((-(target * torch.log_softmax(logits, dim=1)).sum(dim=1)).numpy())
            v.append(value.reshape(-1).numpy())
            choice.append(logits.argmax(dim=1).numpy())
    v, choice = np.concatenate(v), np.concatenate(choice)
    good = data.policy[rows][np.arange(len(rows)), choice] > 0
    decisive = data.value[rows] != 0
    return {"policy_ce": float(np.concatenate(ce).mean()),
            "value_mse": float(np.mean((v - data.value_target[rows]) ** 2)),
            "good_move_rate": float(good.mean()),
            "value_sign_accuracy": float(np.mean(np.sign(v[decisive]) == data.value[rows][decisive]))
            if decisive.any() else float("nan")}


def _symmetry_tables(game, obs_shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per symmetry: the square permutation of the planes and the action permutation's inverse (targets)."""
    squares, actions = [], []
    for sym in game.symmetries():
        squares.append(np.asarray(sym.square_perm, dtype=np.int64))
        inverse = np.empty(len(sym.action_perm), dtype=np.int64)
        inverse[np.asarray(sym.action_perm)] = np.arange(len(sym.action_perm))  # out[perm[a]] = in[a]
        actions.append(inverse)
    if not squares:
        n = obs_shape[-1] * obs_shape[-2]
        squares, actions = [np.arange(n)], [np.arange(game.num_actions)]
    return torch.as_tensor(np.stack(squares)), torch.as_tensor(np.stack(actions))


def _transform(obs: torch.Tensor, per_action: list[torch.Tensor], square_perm: torch.Tensor,
               action_gather: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A batch seen under one symmetry: planes re-indexed by square, per-action arrays by action."""
    shape = obs.shape
    flat = obs.reshape(*shape[:-2], shape[-2] * shape[-1])[..., square_perm].reshape(shape)
    return flat, [a[:, action_gather] for a in per_action]


def train_reference(config: ReferenceConfig, run_dir: str | Path, progress: bool = True, resume: bool = False,
                    ) -> Path:
    """Train the reference network into `run_dir`; returns the final checkpoint's path.

    :param resume: continue a run in `run_dir` made with the same settings from its last finished epoch
        (`FileNotFoundError` if it has no saved state, `ValueError` if its settings differ).
    """
    import games
    from games.envs.vector import SelfPlayVecEnv
    from sb3_contrib import MaskablePPO

    from agents.network import BoardPolicy
    from probes.linear import grouped_split

    run_dir = Path(run_dir)
    state_file = run_dir / RESUME_FILE
    if resume:
        _check_resumable(run_dir, config)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    game = games.get(config.game, **config.game_kwargs)
    started = time.perf_counter()
    data = load_reference_data(config.datasets, game, config)
    load_seconds = time.perf_counter() - started
    train_rows, held_rows = grouped_split(data.groups, test_size=config.holdout, seed=config.seed)
    if not resume:
        _clear_run(run_dir)
        write_run_config(run_dir, asdict(config), positions={"train": len(train_rows), "holdout": len(held_rows)},
                         load_seconds=round(load_seconds, 1))
    env = SelfPlayVecEnv(config.game, num_envs=1, seed=config.seed, **config.game_kwargs)
    model = MaskablePPO(BoardPolicy, env, policy_kwargs={"network": dict(config.network)}, seed=config.seed,
                        device="cpu", verbose=0)
    policy = model.policy
    optimizer = torch.optim.AdamW(policy.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = int(np.ceil(len(train_rows) / config.batch_size))
    total = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total, eta_min=config.learning_rate / 10)
    schedule = checkpoint_schedule(total * config.batch_size, config.batch_size, config.checkpoints)
    suite = _suite(game, config)
    rng = np.random.default_rng(config.seed)
    sym_rng = np.random.default_rng(config.seed + 1)
    square_perms, action_gathers = _symmetry_tables(game, data.obs.shape[1:])
    obs, masks = torch.as_tensor(data.obs), torch.as_tensor(data.masks)
    policy_t, value_t = torch.as_tensor(data.policy), torch.as_tensor(data.value_target)
    samples, first_epoch, train_seconds = 0, 0, 0.0
    if resume:
        saved = torch.load(state_file, weights_only=False)
        policy.load_state_dict(saved["policy"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        rng.bit_generator.state, sym_rng.bit_generator.state = saved["rng"], saved["sym_rng"]
        torch.set_rng_state(saved["torch_rng"])
        samples, first_epoch, train_seconds = saved["samples"], saved["epoch"], saved["train_seconds"]
        done = {r.timestep for r in read_evaluations(run_dir)}
        schedule = [s for s in schedule if s >= samples and s not in done]
        log.info("resuming %s at epoch %d (%d samples)", run_dir, first_epoch, samples)

    def checkpoint(at: int) -> None:
        policy.set_training_mode(False)
        path = checkpoint_path(run_dir, at)
        atomic_save_model(model, path)
        t0 = time.perf_counter()
        record = {"timestep": int(at), "checkpoint": str(path.relative_to(run_dir)), "time": time.time(),
                  "holdout": _evaluate(policy, data, held_rows)}
        if suite is not None:
            record.update(suite.run(policy))
        record["eval_seconds"] = round(time.perf_counter() - t0, 2)
        record["train_seconds"] = round(train_seconds, 2)
        write_evaluation(run_dir, record)
        log.info("reference checkpoint %s: %s", path, record["holdout"])
        policy.set_training_mode(True)

    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=first_epoch * steps_per_epoch, desc="reference network", unit="batch",
               disable=not progress)
    policy.set_training_mode(True)
    for epoch in range(first_epoch, config.epochs):
        order = train_rows[rng.permutation(len(train_rows))]
        tick = time.perf_counter()
        for start in range(0, len(order), config.batch_size):
            if schedule and samples >= schedule[0]:
                while schedule and schedule[0] <= samples:
                    schedule.pop(0)
                train_seconds += time.perf_counter() - tick
                checkpoint(samples)
                tick = time.perf_counter()
            batch = torch.as_tensor(order[start:start + config.batch_size])
            x, (m, target) = obs[batch], (masks[batch], policy_t[batch])
            if config.symmetries:
                k = int(sym_rng.integers(len(square_perms)))
                x, (m, target) = _transform(x, [m, target], square_perms[k], action_gathers[k])
            logits, value = policy_forward(policy, x)
            logits = logits.masked_fill(~m, -1e9)
            policy_loss = -(target * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
            value_loss = ((value.reshape(-1) - value_t[batch]) ** 2).mean()
            loss = policy_loss + config.value_weight * value_loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            samples += config.batch_size
            bar.update(1)
            bar.set_postfix(policy=f"{policy_loss.item():.3f}", value=f"{value_loss.item():.3f}")
        train_seconds += time.perf_counter() - tick
        _save_state(state_file, policy, optimizer, scheduler, rng, sym_rng, samples, epoch + 1, train_seconds)
    bar.close()
    checkpoint(samples)
    if suite is not None:
        from agents.plots import plot_strength

        plot_strength(read_evaluations(run_dir), run_dir / "strength.png", title=f"{config.game} reference network")
    return checkpoint_path(run_dir, samples)


def _clear_run(run_dir: Path) -> None:
    """Remove what an earlier run left in `run_dir` (records, checkpoints, saved state) before a fresh start."""
    for stale in [run_dir / RESUME_FILE, run_dir / "evaluations.jsonl", *run_dir.glob("checkpoints/step_*.zip")]:
        stale.unlink(missing_ok=True)


def _save_state(path: Path, policy, optimizer, scheduler, rng, sym_rng, samples: int, epoch: int,
                train_seconds: float) -> None:
    """Everything a resumed run needs, written atomically."""
    state = {"policy": policy.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "rng": rng.bit_generator.state, "sym_rng": sym_rng.bit_generator.state,
             "torch_rng": torch.get_rng_state(), "samples": samples, "epoch": epoch, "train_seconds": train_seconds}
    with atomic_target(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def _check_resumable(run_dir: Path, config: ReferenceConfig) -> None:
    """A clear error unless `run_dir` holds a resumable run made with the same settings."""
    if not (run_dir / RESUME_FILE).exists():
        raise FileNotFoundError(f"{run_dir} has no {RESUME_FILE} to resume from (no epoch of it finished, or it "
                                "is not a reference run); start it without --resume")
    saved = read_run_config(run_dir).config
    wanted = asdict(config)
    differ = sorted(k for k in set(saved) | set(wanted)
                    if k not in ("torch_threads",) and _normal(saved.get(k)) != _normal(wanted.get(k)))
    if differ:
        raise ValueError(f"{run_dir} was trained with other settings ({', '.join(differ)}); resume it with the "
                         "same options, or start a new run folder")


def _normal(value):
    """Settings compared across a JSON round trip (tuples and lists alike)."""
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value


def _suite(game, config: ReferenceConfig):
    """The agent's evaluation (move quality on the shipped and decisive sets, games against the ladder)."""
    from agents.evaluation import EvaluationSuite

    try:
        return EvaluationSuite(game, games_per_opponent=config.eval_games, decisive=config.eval_decisive,
                               max_positions=config.eval_positions or None, seed=config.seed)
    except (FileNotFoundError, ValueError) as error:
        log.warning("no evaluation sets for %s: %s", game, error)
        return None
