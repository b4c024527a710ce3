"""Train a MaskablePPO agent by self-play and measure it against the exact solver.

Defaults train Connect Four 7x6 for about 30 minutes on 2 CPU cores (4M learner moves)
into runs/connect4-seed0: log-spaced checkpoints, an evaluation record per checkpoint
(perfect/good-move rates on Pons' test sets and on decisive positions; games against
random, win-or-block and depth-2/4 alpha-beta), strength.png and TensorBoard logs
(`tensorboard --logdir RUN/tb`). Kill it at any time and continue with --resume.

    python scripts/train_agent.py
    python scripts/train_agent.py --game tictactoe
    python scripts/train_agent.py --game connect4 --game-arg width=5 --game-arg height=4
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from agents.selfplay import DEFAULT_RANDOM_OPENING, DEFAULT_TIMESTEPS, TrainConfig

DEFAULTS = TrainConfig()  # the one place the defaults live; the options below show them
app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


def _parse_game_args(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--game-arg expects KEY=VALUE, got {item!r}")
        try:
            out[key] = int(value)
        except ValueError:
            if "," in value:
                out[key] = tuple(int(v) for v in value.split(","))
            else:
                out[key] = value
    return out


@app.command()
def main(
    game: str = typer.Option("connect4", help="registered game: connect4, tictactoe, nim"),
    game_arg: list[str] = typer.Option([], help="game option KEY=VALUE (e.g. width=5, heaps=3,4,5); repeatable"),
    total_timesteps: Optional[int] = typer.Option(None, help="learner moves to train on [default: per game, "
                                                             f"connect4 {DEFAULT_TIMESTEPS['connect4']:,} (~30 min on 2 cores)]"),
    seed: int = typer.Option(0, help="random seed (torch, numpy, envs, opponent pool)"),
    out: Optional[Path] = typer.Option(None, help="run folder [default: runs/GAME-seedSEED]"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out from its last checkpoint, with "
                                                        "its saved settings (--total-timesteps may extend it)"),
    n_envs: int = typer.Option(DEFAULTS.n_envs, help="boards played at once"),
    n_steps: int = typer.Option(DEFAULTS.n_steps, help="learner moves per board per rollout"),
    batch_size: int = typer.Option(DEFAULTS.batch_size, help="PPO minibatch size"),
    n_epochs: int = typer.Option(DEFAULTS.n_epochs, help="PPO passes over each rollout"),
    learning_rate: float = typer.Option(DEFAULTS.learning_rate, help="initial learning rate (decays linearly to 20%)"),
    ent_coef: float = typer.Option(DEFAULTS.ent_coef, help="entropy bonus"),
    gamma: float = typer.Option(DEFAULTS.gamma, help="discount (below 1 prefers quicker wins and later losses; 0.95 beat 0.99 on "
                                           "Pons' sets and against depth-2 at 2.4M steps)"),
    latest_prob: float = typer.Option(DEFAULTS.latest_prob, help="share of games against the live policy (rest: snapshots, random)"),
    random_prob: float = typer.Option(DEFAULTS.random_prob, help="share of games against uniform random moves"),
    scripted_prob: float = typer.Option(DEFAULTS.scripted_prob, help="share of games against the game's scripted "
                                                                     "players (connect4: win-or-block, alpha-beta "
                                                                     "depth 2 and 4)"),
    scripted: Optional[str] = typer.Option(None, help="comma-separated scripted players to use [default: all]"),
    random_opening: Optional[int] = typer.Option(None, help="training games open with 0..N random plies "
                                                            f"[default: per game, connect4 {DEFAULT_RANDOM_OPENING['connect4']}]"),
    channels: int = typer.Option(DEFAULTS.network["channels"], help="trunk width (convolution channels)"),
    blocks: int = typer.Option(DEFAULTS.network["blocks"], help="residual blocks in the trunk"),
    checkpoints: int = typer.Option(DEFAULTS.checkpoints, help="log-spaced checkpoints, the final one included"),
    eval_games: int = typer.Option(DEFAULTS.eval_games, help="games per ladder opponent at each checkpoint (0: none)"),
    evaluate: bool = typer.Option(True, "--eval/--no-eval", help="evaluate every checkpoint (or later, with "
                                                                 "evaluate_agent.py)"),
    threads: int = typer.Option(DEFAULTS.torch_threads, help="torch threads"),
    progress: bool = typer.Option(True, "--progress/--quiet", help="show a progress bar"),
) -> None:
    from rich.console import Console
    from rich.table import Table

    import games
    from agents.evaluation import agent_description, summarise
    from agents.runs import read_evaluations
    from agents.selfplay import resumable_config, train

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = TrainConfig(
            game=game, game_kwargs=_parse_game_args(game_arg), total_timesteps=total_timesteps, seed=seed,
            n_envs=n_envs, n_steps=n_steps, batch_size=batch_size, n_epochs=n_epochs, learning_rate=learning_rate,
            ent_coef=ent_coef, gamma=gamma, latest_prob=latest_prob, random_prob=random_prob,
            random_opening=random_opening, scripted_prob=scripted_prob,
            scripted_players=[name.strip() for name in scripted.split(",")] if scripted else None,
            network={**DEFAULTS.network, "channels": channels, "blocks": blocks},
            checkpoints=checkpoints, eval_games=eval_games, torch_threads=threads,
        )
        config.scripted_opponents(games.get(config.game, **config.game_kwargs))  # unknown game, size or player
    except ValueError as exc:  # a setting out of range: name it, no traceback
        raise typer.BadParameter(str(exc)) from exc
    run_dir = out or Path("runs") / f"{game}-seed{seed}"
    if resume:  # continue with the run's own settings; a folder that holds no run is an error, not a new run
        config = resumable_config(run_dir)
        if total_timesteps is not None:
            config.total_timesteps = total_timesteps
    console = Console()
    what = "resuming" if resume else "training"
    options = f" {config.game_kwargs}" if config.game_kwargs else ""
    console.print(f"{what} {config.game}{options} for {config.total_timesteps:,} timesteps into {run_dir}")
    try:
        final = train(config, run_dir, resume=resume, progress_bar=progress, evaluate=evaluate)
    except FileExistsError as exc:  # --out holds a run and --resume was not given
        raise typer.BadParameter(str(exc)) from exc
    console.print(f"final checkpoint: {final}")
    records = read_evaluations(run_dir)
    if records and records[-1].move_quality is not None:
        table = Table(title=f"strength at {records[-1].timestep:,} timesteps ({agent_description(records[-1])})")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for metric, value in summarise(records[-1]):
            table.add_row(metric, value)
        console.print(table)
        console.print(f"evaluations: {run_dir / 'evaluations.jsonl'}   plot: {run_dir / 'strength.png'}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
