"""Measure a trained agent (the policy network alone, greedy, no search) against ground truth.

Perfect- and good-move rates on every fixed position set of the game (Pons' three easy
sets for Connect Four 7x6, all 1,000 positions each) and on sampled decisive positions,
then games as both colours against random, win-or-block and depth-2/4 alpha-beta (Connect
Four) or a perfect player (small games), from random two-move openings played once with
each colour. By default the agent averages its policy over the game's symmetric views of
the board (the board and its mirror image for Connect Four: still one network and no
search); --single-view measures the network on the board as given.

    python scripts/evaluate_agent.py runs/connect4-seed0                 # its latest checkpoint
    python scripts/evaluate_agent.py runs/connect4-seed0/checkpoints/step_002400256.zip --json eval.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@app.command()
def main(
    checkpoint: Path = typer.Argument(..., help="a checkpoint .zip or a run folder (its latest checkpoint)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the evaluation record here"),
    game: Optional[str] = typer.Option(None, help="game name, if the checkpoint is outside its run folder"),
    games_per_opponent: int = typer.Option(200, "--games", help="games per ladder opponent, half per colour "
                                                                "(0: none, move quality only)"),
    decisive: int = typer.Option(300, help="sampled decisive positions (0: none)"),
    max_positions: int = typer.Option(0, help="cap per fixed set (0: all)"),
    seed: int = typer.Option(0, help="seed of the decisive sample, the openings and the opponents' tie-breaks"),
    opening_plies: int = typer.Option(2, help="games start from random openings of this many moves, each played "
                                              "with both colours (0: from the empty board)"),
    symmetrize: bool = typer.Option(True, "--symmetrize/--single-view",
                                    help="average the policy over the game's symmetric views of the board, or use "
                                         "the board as given"),
) -> None:
    import torch
    from rich.console import Console
    from rich.table import Table

    from agents.checkpoints import load_agent_for_game
    from common.outputs import check_writable
    from agents.evaluation import EvaluationSuite, agent_description, summarise, validate_suite_settings
    from agents.records import EvaluationRecord
    from common.atomic import atomic_write_text

    torch.set_num_threads(1)
    validate_suite_settings(games_per_opponent, decisive, max_positions, opening_plies)  # before any work
    if json_out:
        check_writable(json_out, "--json")
    try:
        loaded = load_agent_for_game(checkpoint, game)
    except (FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="CHECKPOINT") from exc
    path, model, the_game = loaded.path, loaded.model, loaded.game
    suite = EvaluationSuite(the_game, games_per_opponent=games_per_opponent, decisive=decisive,
                            max_positions=max_positions or None, seed=seed, opening_plies=opening_plies,
                            symmetrize=symmetrize)
    entries = {"checkpoint": str(path), "game": repr(the_game), "timestep": int(model.num_timesteps), **suite.run(model)}
    record = EvaluationRecord.from_json(entries)
    table = Table(title=f"{path} ({model.num_timesteps:,} timesteps): {agent_description(record)}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for metric, value in summarise(record):
        table.add_row(metric, value)
    Console().print(table)
    if json_out:
        atomic_write_text(json.dumps(entries, indent=2), json_out)  # as computed: the checkpoint's path first
        Console().print(f"wrote {json_out}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
