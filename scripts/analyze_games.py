"""Post-mortem of the agent's games against a ladder opponent: where did the games it did not win slip?

Plays the evaluation's games (the network alone, greedy, averaged over the board's symmetric
views unless --single-view; random openings played with both colours, as
`evaluate_agent.py` does), then replays every game the agent did not win with the exact
oracle from --from-ply on (Connect Four: 10 stones, where the solver is fast) and reports:
the agent's game value when the oracle starts looking (was the game already not a win?),
the games in which the agent held a win (or a draw) and let it go, the ply and one-ply kind
of its first slip, and how often the opponent slipped.

    python scripts/analyze_games.py runs/connect4-seed0 --opponent alphabeta-2 --json results/slips.json
    python scripts/analyze_games.py runs/tictactoe-seed0          # against the game's default: perfect
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@app.command()
def main(
    checkpoint: Path = typer.Argument(..., help="a checkpoint .zip or a run folder (its latest checkpoint)"),
    opponent: Optional[str] = typer.Option(None, help="ladder opponent: random or one of the game's baseline "
                                                      "players [default: connect4 alphabeta-2, otherwise the "
                                                      "game's strongest, e.g. perfect]"),
    n_games: int = typer.Option(200, "--games", help="games (half per colour, at least 2)"),
    seed: int = typer.Option(0, help="seed of the openings and the opponent's tie-breaks (as evaluate_agent.py)"),
    opening_plies: int = typer.Option(2, help="random opening moves, each opening played with both colours"),
    from_ply: Optional[int] = typer.Option(None, help="first ply the oracle looks at [default: the game's fast "
                                                      "oracle ply; connect4 10]"),
    all_games: bool = typer.Option(False, "--all-games", help="replay the won games too"),
    symmetrize: bool = typer.Option(True, "--symmetrize/--single-view",
                                    help="average the policy over the game's symmetric views, or use the board "
                                         "as given"),
    game: Optional[str] = typer.Option(None, help="game name, if the checkpoint is outside its run folder"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the summary and every replayed game here"),
) -> None:
    import torch
    from rich.console import Console
    from rich.table import Table

    from agents.checkpoints import load_agent_for_game
    from common.outputs import check_writable
    from agents.diagnostics import where_games_slip
    from agents.evaluation import PolicyPlayer, default_opponent, ladder_opponents, play_games
    from common.atomic import atomic_write_text

    torch.set_num_threads(1)
    if from_ply is not None and from_ply < 0:
        raise typer.BadParameter(f"must be >= 0, got {from_ply}", param_hint="--from-ply")
    if n_games < 2:
        raise typer.BadParameter(f"must be at least 2 (one game per colour), got {n_games}", param_hint="--games")
    if opening_plies < 0:
        raise typer.BadParameter(f"must be >= 0, got {opening_plies}", param_hint="--opening-plies")
    if json_out:
        check_writable(json_out, "--json")
    try:
        loaded = load_agent_for_game(checkpoint, game)
    except (FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="CHECKPOINT") from exc
    the_game = loaded.game
    ladder = ladder_opponents(the_game)
    opponent = opponent or default_opponent(the_game)
    if opponent not in ladder:
        raise typer.BadParameter(f"unknown opponent {opponent!r} for {the_game.name}; known: {', '.join(ladder)}",
                                 param_hint="--opponent")

    player = PolicyPlayer(loaded.model, name=str(loaded.path),
                          symmetries=the_game.symmetries() if symmetrize else None)
    console = Console()
    t0 = time.perf_counter()
    try:
        played = play_games(the_game, player, ladder[opponent], n_games, seed=seed, opening_plies=opening_plies,
                            keep_moves=True)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    report = where_games_slip(the_game, played["moves"], from_ply=from_ply, only_unwon=not all_games)
    seconds = time.perf_counter() - t0
    s = report["summary"]
    views = max(len(player.symmetries), 1)
    which = "every game" if all_games else "the games not won"
    table = Table(title=f"{loaded.path} vs {opponent}: {n_games} games, {views} view(s); {which} replayed with the "
                        f"oracle from ply {s['from_ply']}")
    table.add_column("")
    table.add_column("value", justify="right")
    f, sec = played["as_first"], played["as_second"]
    table.add_row("W/D/L first | second",
                  " | ".join(f"{c['win']:.0%}/{c['draw']:.0%}/{c['loss']:.0%}" for c in (f, sec)))
    table.add_row("replayed: draw / loss / win",
                  f"{s['by_result']['draw']} / {s['by_result']['loss']} / {s['by_result']['win']}")
    e = s["entry_value"]
    table.add_row(f"value at ply {s['from_ply']}: win / draw / loss / over",
                  f"{e['win']} / {e['draw']} / {e['loss']} / {e['ended_before']}")
    if all_games:
        then = s["result_by_entry_value"]["win"]
        table.add_row(f"won at ply {s['from_ply']}: then won / drew / lost",
                      f"{then['win']} / {then['draw']} / {then['loss']}")
        h = s["held_a_win"]
        table.add_row("held a win at some point: won / held, first | second",
                      f"{h['first']['won']} / {h['first']['games']} | {h['second']['won']} / {h['second']['games']}")
    v = s["verdict"]
    table.add_row(f"not won: decided before ply {s['from_ply']} / let a win go / a draw",
                  f"{v['decided_before']} / {v['let_a_win_go']} / {v['let_a_draw_go']}")
    k = s["agent_slip_kinds"]
    table.add_row("slips: allow a win / miss a win / deeper",
                  f"{k['allowed_immediate_loss']} / {k['missed_immediate_win']} / {k['deeper']}")
    q = s["first_slip_ply"]
    if q["n"]:
        table.add_row("first slip's ply: min / q1 / median / q3 / max",
                      f"{q['min']} / {q['q1']:.0f} / {q['median']:.0f} / {q['q3']:.0f} / {q['max']}")
    table.add_row("opponent's slips (in games)", f"{s['opponent_slips']} ({s['games_with_opponent_slip']})")
    table.add_row("seconds", f"{seconds:.0f}")
    console.print(table)
    if json_out:
        record = {"checkpoint": str(loaded.path), "game": repr(the_game), "timestep": int(loaded.model.num_timesteps),
                  "opponent": opponent, "views": views, "seed": seed, "seconds": seconds,
                  "results": {key: played[key] for key in ("games", "opening_plies", "as_first", "as_second", "all")},
                  **report}
        atomic_write_text(json.dumps(record, indent=1), json_out)
        console.print(f"wrote {json_out}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
