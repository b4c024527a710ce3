"""Train a MaskablePPO agent by self-play and measure it against the exact solver.

Defaults train Connect Four 7x6 for about 30 minutes on 2 CPU cores (4M learner moves)
into runs/connect4-seed0: log-spaced checkpoints, an evaluation record per checkpoint
(perfect/good-move rates on Pons' test sets and on decisive positions; games against
random, win-or-block and depth-2/4 alpha-beta), strength.png and TensorBoard logs
(`tensorboard --logdir RUN/tb`). Kill it at any time and continue with --resume.

    python scripts/train_agent.py
    python scripts/train_agent.py --game tictactoe
    python scripts/train_agent.py --game connect4 --game-arg width=5 --game-arg height=4
    python scripts/train_agent.py --seeds 0,1,2        # one run per seed, 2 at a time (--jobs)
    python scripts/train_agent.py --seeds 0,1,2 --engine ray --address HOST:6379

With --seeds each seed trains into runs/GAME-seedS (as --seed S would) through the local or
Ray engine, one torch thread per agent unless --threads says otherwise; --resume continues
every seed's run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from agents.multiseed import parse_seeds, seed_run_dir
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
    seeds: Optional[str] = typer.Option(None, help="comma-separated seeds (e.g. 0,1,2): one run per seed, each in "
                                                   "runs/GAME-seedS; --seed and --out do not apply"),
    engine: str = typer.Option("local", help="with --seeds: where the seeds train, local (processes) or ray"),
    address: Optional[str] = typer.Option(None, help="with --engine ray: the Ray cluster's address "
                                                     "[default: $RAY_ADDRESS, else a private local instance]"),
    jobs: Optional[int] = typer.Option(None, help="with --seeds: seeds trained at once [default: the number of "
                                                  "seeds, at most 2]"),
    out: Optional[Path] = typer.Option(None, help="run folder [default: runs/GAME-seedSEED]"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out (with --seeds: every seed's "
                                                        "run) from its last checkpoint, with its saved settings "
                                                        "(--total-timesteps may extend it)"),
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
    threads: Optional[int] = typer.Option(None, help=f"torch threads (per agent) [default: {DEFAULTS.torch_threads}"
                                                     "; 1 when --seeds trains several at once]"),
    update_dtype: str = typer.Option(DEFAULTS.update_dtype, help="precision of the trunk's convolutions in the PPO "
                                                                 "update: float32, or bfloat16 (12-24% faster "
                                                                 "updates; see README)"),
    progress: bool = typer.Option(True, "--progress/--quiet", help="show a progress bar"),
) -> None:
    from rich.console import Console
    from rich.table import Table

    import games
    from agents.evaluation import agent_description, summarise
    from agents.runs import read_evaluations
    from agents.selfplay import resumable_config, train

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    seed_list = _check_engine_options(seeds, seed, out, engine, address, jobs)
    if seed_list is not None:
        jobs = min(len(seed_list), 2) if jobs is None else jobs
        if threads is None:
            threads = 1 if jobs > 1 else DEFAULTS.torch_threads
    elif threads is None:
        threads = DEFAULTS.torch_threads
    try:
        config = TrainConfig(
            game=game, game_kwargs=_parse_game_args(game_arg), total_timesteps=total_timesteps, seed=seed,
            n_envs=n_envs, n_steps=n_steps, batch_size=batch_size, n_epochs=n_epochs, learning_rate=learning_rate,
            ent_coef=ent_coef, gamma=gamma, latest_prob=latest_prob, random_prob=random_prob,
            random_opening=random_opening, scripted_prob=scripted_prob,
            scripted_players=[name.strip() for name in scripted.split(",")] if scripted else None,
            network={**DEFAULTS.network, "channels": channels, "blocks": blocks},
            checkpoints=checkpoints, eval_games=eval_games, torch_threads=threads, update_dtype=update_dtype,
        )
        config.scripted_opponents(games.get(config.game, **config.game_kwargs))  # unknown game, size or player
    except ValueError as exc:  # a setting out of range: name it, no traceback
        raise typer.BadParameter(str(exc)) from exc
    console = Console()
    if seed_list is not None:
        _train_seeds(console, config, seed_list, resume, total_timesteps, evaluate, engine, jobs, address, progress)
        return
    run_dir = out or seed_run_dir(game, seed)
    if resume:  # continue with the run's own settings; a folder that holds no run is an error, not a new run
        config = resumable_config(run_dir, total_timesteps)
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


def _check_engine_options(seeds: str | None, seed: int, out: Path | None, engine: str, address: str | None,
                          jobs: int | None) -> list[int] | None:
    """The --seeds list (None without --seeds), after the checks of the options that go with it."""
    from common.engine import check_engine_options

    try:
        check_engine_options(engine, address)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if seeds is None:
        if engine != "local" or address or jobs is not None:
            raise typer.BadParameter("--engine, --address and --jobs apply to --seeds (several runs); "
                                     "a single run trains in this process")
        return None
    try:
        seed_list = parse_seeds(seeds)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if out is not None:
        raise typer.BadParameter("--out names one run; with --seeds each seed trains into runs/GAME-seedS")
    if seed != DEFAULTS.seed:
        raise typer.BadParameter("--seed and --seeds exclude each other; list every seed in --seeds")
    if jobs is not None and jobs < 1:
        raise typer.BadParameter(f"--jobs must be at least 1, got {jobs}")
    return seed_list


def _train_seeds(console, config: TrainConfig, seeds: list[int], resume: bool, total_timesteps: int | None,
                 evaluate: bool, engine: str, jobs: int, address: str | None, progress: bool) -> None:
    """Train one run per seed through the engine, then print a table of the per-seed summaries."""
    from rich.table import Table

    from agents.multiseed import plan_seeds, train_seeds

    try:
        items = plan_seeds(config, seeds, resume=resume, total_timesteps=total_timesteps, evaluate=evaluate)
    except (ValueError, OSError) as exc:  # a folder that holds a run, nothing to resume, unwritable, damaged
        raise typer.BadParameter(str(exc)) from exc
    what = "resuming" if resume else "training"
    options = f" {config.game_kwargs}" if config.game_kwargs else ""
    threads = sorted({item.config["torch_threads"] for item in items})  # resumed runs keep their own
    console.print(f"{what} {config.game}{options} with seeds {', '.join(map(str, seeds))} on the {engine} engine "
                  f"({jobs} at a time, {'/'.join(map(str, threads))} torch thread(s) each)")
    summaries = train_seeds(items, engine=engine, jobs=jobs, address=address, progress=progress)
    table = Table(title=f"{config.game}: {len(summaries)} seeds")
    table.add_column("", no_wrap=True)
    for summary in summaries:
        table.add_column(f"seed {summary['seed']}", justify="right", overflow="fold")
    metrics = list(dict.fromkeys(name for summary in summaries for name in summary["headline"]))
    table.add_row("run folder", *(summary["run_dir"] for summary in summaries))
    table.add_row("timesteps", *(f"{summary['timestep']:,}" for summary in summaries))
    for name in metrics:
        table.add_row(name, *(f"{summary['headline'][name]:.1%}" if name in summary["headline"] else "-"
                              for summary in summaries))
    console.print(table)


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
