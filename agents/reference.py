"""The reference network: the agent's architecture trained on the solver's answers.

"What do optimal features look like in this architecture?" The same `BoardPolicy` as the
self-play agent is trained by supervised learning on exactly labelled positions: the
policy head towards the uniform distribution over the value-preserving moves (solver
concept ``good_moves``), the value head towards the game value (``value``: -1 / 0 / +1 for
the side to move). It is saved as a run folder just like an agent's (``config.json``,
``checkpoints/step_*.zip`` at log-spaced numbers of training samples, ``evaluations.jsonl``
with move quality on the shipped evaluation sets), so `scripts/probe_sweep.py` and the
report treat it as one more run.

Training data is a dataset folder of `games.datasets` labelled with ``value`` and
``good_moves`` (``scripts/make_dataset.py --concepts value,good_moves``); positions are
split by game id into train and a held-out part whose losses and accuracies are logged.
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
from agents.runs import read_evaluations, write_evaluation, write_run_config
from games.datasets import read_dataset

log = logging.getLogger(__name__)

REQUIRED_CONCEPTS = ("value", "good_moves")


@dataclass
class ReferenceConfig:
    """Settings of a reference-network run (saved as ``config.json``; ``kind`` marks it as supervised).

    :param dataset: dataset folder with ``value`` and ``good_moves`` labels.
    :param epochs: passes over the train positions.
    :param batch_size: positions per update.
    :param learning_rate: Adam step size (cosine-decayed to a tenth).
    :param weight_decay: AdamW weight decay.
    :param value_weight: weight of the value loss (mean squared error) beside the policy cross-entropy.
    :param holdout: fraction of games held out for validation.
    :param checkpoints: log-spaced checkpoints over the training samples (the final one included).
    :param eval_positions: positions per shipped evaluation set at each checkpoint (0: all).
    :param eval_games: games against each ladder opponent at each checkpoint (as the agent's).
    :param eval_decisive: size of the sampled decisive set (0: none).
    """

    dataset: str
    game: str = "connect4"
    game_kwargs: dict = field(default_factory=dict)
    network: dict = field(default_factory=lambda: asdict(NetworkConfig(channels=32, blocks=3)))
    epochs: int = 8
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    value_weight: float = 1.0
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
        from agents.evaluation import validate_suite_settings

        validate_suite_settings(self.eval_games, self.eval_decisive, self.eval_positions)
        NetworkConfig(**self.network)


@dataclass
class ReferenceData:
    """Observations, legal masks, policy targets (rows sum to 1) and values, with game ids."""

    obs: np.ndarray
    masks: np.ndarray
    policy: np.ndarray
    value: np.ndarray
    groups: np.ndarray


def load_reference_data(dataset: str | Path, game) -> ReferenceData:
    """Read a labelled dataset folder into training arrays (clear errors for missing labels)."""
    dataset = Path(dataset)
    for need in ("positions.parquet", "manifest.json"):
        if not (dataset / need).exists():
            raise FileNotFoundError(f"{dataset / need} does not exist (build it with scripts/make_dataset.py "
                                    f"--concepts {','.join(REQUIRED_CONCEPTS)})")
    data = read_dataset(dataset)
    if data.game_name != game.name:
        raise ValueError(f"{dataset} is a {data.game_name} dataset, not {game.name}")
    df = data.positions
    missing = [c for c in REQUIRED_CONCEPTS if c not in df]
    if missing:
        raise ValueError(f"{dataset} lacks the solver labels {missing}; rebuild it with "
                         f"--concepts {','.join(REQUIRED_CONCEPTS)}")
    states = [game.parse(t) for t in df["moves"]]
    obs = np.stack([game.observation(s) for s in states]).astype(np.float32)
    masks = np.stack([game.legal_mask(s) for s in states]).astype(bool)
    good = np.stack(df["good_moves"].to_numpy()).astype(np.float32) * masks
    keep = good.sum(axis=1) > 0  # terminal or unlabelled positions carry no policy target
    policy = good[keep] / good[keep].sum(axis=1, keepdims=True)
    value = df["value"].to_numpy().astype(np.float32)[keep]
    return ReferenceData(obs[keep], masks[keep], policy, value, df["game_id"].to_numpy()[keep])


def _evaluate(policy, data: ReferenceData, rows: np.ndarray) -> dict:
    """Held-out losses, good-move rate (greedy legal move is value-preserving) and value-sign accuracy."""
    with torch.no_grad():
        logits, value = policy_forward(policy, torch.as_tensor(data.obs[rows]))
        logits = logits.masked_fill(~torch.as_tensor(data.masks[rows]), -1e9)
        target = torch.as_tensor(data.policy[rows])
        ce = float(-(target * torch.log_softmax(logits, dim=1)).sum(dim=1).mean())
        v = value.reshape(-1).numpy()
        choice = logits.argmax(dim=1).numpy()
    good = data.policy[rows][np.arange(len(rows)), choice] > 0
    decisive = data.value[rows] != 0
    return {"policy_ce": ce, "value_mse": float(np.mean((v - data.value[rows]) ** 2)),
            "good_move_rate": float(good.mean()),
            "value_sign_accuracy": float(np.mean(np.sign(v[decisive]) == data.value[rows][decisive]))
            if decisive.any() else float("nan")}


def train_reference(config: ReferenceConfig, run_dir: str | Path, progress: bool = True) -> Path:
    """Train the reference network into `run_dir`; returns the final checkpoint's path."""
    import games
    from games.envs.vector import SelfPlayVecEnv
    from sb3_contrib import MaskablePPO

    from agents.network import BoardPolicy

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    game = games.get(config.game, **config.game_kwargs)
    data = load_reference_data(config.dataset, game)
    from probes.linear import grouped_split

    train_rows, held_rows = grouped_split(data.groups, test_size=config.holdout, seed=config.seed)
    write_run_config(run_dir, asdict(config), positions={"train": len(train_rows), "holdout": len(held_rows)})
    env = SelfPlayVecEnv(config.game, num_envs=1, seed=config.seed, **config.game_kwargs)
    model = MaskablePPO(BoardPolicy, env, policy_kwargs={"network": dict(config.network)}, seed=config.seed,
                        device="cpu", verbose=0)
    policy = model.policy
    optimizer = torch.optim.AdamW(policy.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = int(np.ceil(len(train_rows) / config.batch_size))
    total = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total, eta_min=config.learning_rate / 10)
    total_samples = total * config.batch_size
    schedule = checkpoint_schedule(total_samples, config.batch_size, config.checkpoints)
    suite = _suite(game, config)
    rng = np.random.default_rng(config.seed)
    obs, masks = torch.as_tensor(data.obs), torch.as_tensor(data.masks)
    policy_t, value_t = torch.as_tensor(data.policy), torch.as_tensor(data.value)

    def checkpoint(samples: int) -> None:
        policy.set_training_mode(False)
        path = checkpoint_path(run_dir, samples)
        atomic_save_model(model, path)
        record = {"timestep": int(samples), "checkpoint": str(path.relative_to(run_dir)), "time": time.time(),
                  "holdout": _evaluate(policy, data, held_rows)}
        if suite is not None:
            record.update(suite.run(policy))
        write_evaluation(run_dir, record)
        log.info("reference checkpoint %s: %s", path, record["holdout"])
        policy.set_training_mode(True)

    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="reference network", unit="batch", disable=not progress)
    samples = 0
    policy.set_training_mode(True)
    for _ in range(config.epochs):
        order = train_rows[rng.permutation(len(train_rows))]
        for start in range(0, len(order), config.batch_size):
            if schedule and samples >= schedule[0]:
                while schedule and schedule[0] <= samples:
                    schedule.pop(0)
                checkpoint(samples)
            batch = torch.as_tensor(order[start:start + config.batch_size])
            logits, value = policy_forward(policy, obs[batch])
            logits = logits.masked_fill(~masks[batch], -1e9)
            policy_loss = -(policy_t[batch] * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
            value_loss = ((value.reshape(-1) - value_t[batch]) ** 2).mean()
            loss = policy_loss + config.value_weight * value_loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            samples += config.batch_size
            bar.update(1)
            bar.set_postfix(policy=f"{policy_loss.item():.3f}", value=f"{value_loss.item():.3f}")
    bar.close()
    checkpoint(samples)
    if suite is not None:
        from agents.plots import plot_strength

        plot_strength(read_evaluations(run_dir), run_dir / "strength.png", title=f"{config.game} reference network")
    return checkpoint_path(run_dir, samples)


def _suite(game, config: ReferenceConfig):
    """The agent's evaluation (move quality on the shipped and decisive sets, games against the ladder)."""
    from agents.evaluation import EvaluationSuite

    try:
        return EvaluationSuite(game, games_per_opponent=config.eval_games, decisive=config.eval_decisive,
                               max_positions=config.eval_positions or None, seed=config.seed)
    except (FileNotFoundError, ValueError) as error:
        log.warning("no evaluation sets for %s: %s", game, error)
        return None
