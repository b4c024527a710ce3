"""Where self-play training spends its time: a short run of the default agent, timed by part.

Runs `agents.selfplay.train` with the game's default settings for `--timesteps` learner
moves (evaluation on, checkpoints as the full run would place them are not reproduced:
a short run evaluates at its own log-spaced checkpoints) and times, without a profiler's
overhead, the PPO update (``MaskablePPO.train``), the rollout (``collect_rollouts``) and,
inside it, the environment step with the opponents' moves (``SelfPlayVecEnv.step_wait``,
of which ``OpponentPool.__call__`` is the opponents' network forwards and scripted
moves), and the checkpoints (saving, evaluation against the solver, the plot). The JSON
(results/bench_training.json) gives seconds and shares, the time per learner move of the
update and of the rollout, seconds per checkpoint, and the resulting estimate for the
default budget.

    python scripts/bench_training.py                       # 262,144 moves, about 2.5 minutes on 2 cores
    python scripts/bench_training.py --update-dtype bfloat16 --out results/bench_training_bfloat16.json
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)

RESULTS = Path(__file__).resolve().parents[1] / "results" / "bench_training.json"


class PartTimer:
    """Wall time per named method while installed: inclusive, and exclusive of the other timed
    methods running inside it (a checkpoint runs inside a rollout's callback)."""

    def __init__(self) -> None:
        self.inclusive: dict[str, float] = {}
        self.exclusive: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._active: list[list] = []  # [name, start, seconds of timed calls inside]
        self._patched: list[tuple[type, str, object]] = []

    def wrap(self, owner: type, method: str, name: str) -> None:
        original = getattr(owner, method)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            if any(frame[0] == name for frame in self._active):  # a recursive call: counted once
                return original(*args, **kwargs)
            frame = [name, time.perf_counter(), 0.0]
            self._active.append(frame)
            try:
                return original(*args, **kwargs)
            finally:
                self._active.pop()
                spent = time.perf_counter() - frame[1]
                self.inclusive[name] = self.inclusive.get(name, 0.0) + spent
                self.exclusive[name] = self.exclusive.get(name, 0.0) + spent - frame[2]
                self.calls[name] = self.calls.get(name, 0) + 1
                if self._active:
                    self._active[-1][2] += spent

        setattr(owner, method, timed)
        self._patched.append((owner, method, original))

    def restore(self) -> None:
        for owner, method, original in reversed(self._patched):
            setattr(owner, method, original)
        self._patched.clear()


@app.command()
def main(
    game: str = typer.Option("connect4", help="registered game"),
    timesteps: int = typer.Option(262_144, help="learner moves to train for (a multiple of the rollout is used)"),
    update_dtype: Optional[str] = typer.Option(None, help="trunk precision in the PPO update: bfloat16 or float32 "
                                                          "[default: the training default]"),
    out: Path = typer.Option(RESULTS, help="JSON output"),
) -> None:
    from dataclasses import asdict, replace

    from rich.console import Console
    from sb3_contrib import MaskablePPO

    from agents.pool import OpponentPool
    from agents.selfplay import SelfPlayCallback, TrainConfig, train
    from common.atomic import atomic_write_json
    from common.outputs import check_writable
    from common.provenance import machine_info
    from games.envs.vector import SelfPlayVecEnv

    if timesteps < 1:
        raise typer.BadParameter(f"must be at least 1, got {timesteps}", param_hint="--timesteps")
    check_writable(out)
    console = Console(width=120)
    try:
        defaults = TrainConfig(game=game, **({} if update_dtype is None else {"update_dtype": update_dtype}))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    full_budget = defaults.total_timesteps  # the game's default budget
    config = replace(defaults, total_timesteps=timesteps)
    timer = PartTimer()
    timer.wrap(MaskablePPO, "train", "ppo_update")
    timer.wrap(MaskablePPO, "collect_rollouts", "rollout")
    timer.wrap(SelfPlayVecEnv, "step_wait", "rollout_env_step")
    timer.wrap(OpponentPool, "__call__", "rollout_opponents")
    timer.wrap(SelfPlayCallback, "checkpoint", "checkpoints")
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            train(config, Path(tmp) / "run", progress_bar=False)
    finally:
        timer.restore()
    total = time.perf_counter() - t0
    x = timer.exclusive
    moves = timesteps
    parts = {
        "ppo_update": x.get("ppo_update", 0.0),
        "rollout_learner_forward_and_buffer": x.get("rollout", 0.0),
        "rollout_env_step_game": x.get("rollout_env_step", 0.0),
        "rollout_opponents": x.get("rollout_opponents", 0.0),
        "checkpoints_save_and_evaluate": x.get("checkpoints", 0.0),
    }
    parts["setup_and_other"] = total - sum(parts.values())
    learn = total - parts["checkpoints_save_and_evaluate"] - parts["setup_and_other"]
    per_checkpoint = parts["checkpoints_save_and_evaluate"] / max(1, timer.calls.get("checkpoints", 1))
    report = {
        "machine": machine_info(), "protocol": __doc__.split("\n\n")[1], "game": game, "timesteps": moves,
        "config": asdict(config),
        "seconds": parts, "share": {k: v / total for k, v in parts.items()}, "total_seconds": total,
        "us_per_move": {"ppo_update": 1e6 * parts["ppo_update"] / moves,
                        "rollout": 1e6 * (learn - parts["ppo_update"]) / moves},
        "checkpoints": timer.calls.get("checkpoints", 0), "seconds_per_checkpoint": per_checkpoint,
        "torch_threads": config.torch_threads,
    }
    if full_budget:
        report["estimate_default_budget"] = {
            "timesteps": full_budget, "checkpoints": defaults.checkpoints,
            "minutes": (learn / moves * full_budget + per_checkpoint * defaults.checkpoints) / 60,
        }
    report["machine"]["loadavg_end"] = os.getloadavg()
    for name, sec in parts.items():
        console.print(f"{name:36s} {sec:8.1f} s  {100 * sec / total:5.1f}%")
    console.print(f"{'total':36s} {total:8.1f} s   ({moves:,} learner moves, {report['checkpoints']} checkpoints, "
                  f"{per_checkpoint:.1f} s each)")
    if "estimate_default_budget" in report:
        est = report["estimate_default_budget"]
        console.print(f"estimate for the default {est['timesteps']:,} moves: {est['minutes']:.1f} min")
    console.print(f"wrote {atomic_write_json(report, out)}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
