"""How strong is the evaluation ladder itself? Scripted and perfect players against each other.

The agent's targets are win rates against the ladder's opponents (e.g. 80% against depth-2
alpha-beta as both colours). This script plays other *searching* players against the
same opponents, under the same protocol as `agents.evaluation` (random two-move openings,
each played once with each colour, ties broken at random), so that a target can be read
against what search achieves: how often does depth-4 alpha-beta, or the perfect player,
beat depth-2?

Players: ``random``, the game's baseline players (Connect Four: ``win-or-block``,
``alphabeta-2``, ``alphabeta-4``), ``alphabeta-N`` for any depth (Connect Four) and
``perfect`` (a value-keeping move from the exact solver, ties at random; slow on early
positions, so give it few games).

    python scripts/bench_ladder.py --players win-or-block,alphabeta-4,alphabeta-6 --opponents alphabeta-2

With ``--postmortem`` every game is also replayed with the exact oracle (`agents.diagnostics`):
how often the measured player held a win, and how often it converted one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)

RESULTS = Path(__file__).resolve().parents[1] / "results"
DEFAULT_PLAYERS = {"connect4": "win-or-block,alphabeta-2,alphabeta-4,alphabeta-6"}


def make_player(game, name: str):
    """A player ``(game, state, rng) -> action`` from its name (clear error on an unknown one)."""
    from games.envs.opponents import make_opponent

    ladder = game.baseline_players()
    if name in ladder:
        return ladder[name]
    if name in ("random", "perfect"):
        return make_opponent(name)
    if name.startswith("alphabeta-") and game.name == "connect4":
        from games.connect4.players import AlphaBetaPlayer

        depth = name.removeprefix("alphabeta-")
        if depth.isdigit():
            return AlphaBetaPlayer(int(depth))
    known = ["random", "perfect", *ladder] + (["alphabeta-N"] if game.name == "connect4" else [])
    raise typer.BadParameter(f"unknown player {name!r} for {game.name}; known: {', '.join(known)}")


@app.command()
def main(
    players: Optional[str] = typer.Option(None, help="comma-separated players measured [default: connect4 "
                                                     f"{DEFAULT_PLAYERS['connect4']}; other games: the ladder, "
                                                     "e.g. random,perfect]"),
    opponents: Optional[str] = typer.Option(None, help="comma-separated opponents they play [default: connect4 "
                                                       "alphabeta-2, other games their strongest, e.g. perfect]"),
    game_name: str = typer.Option("connect4", "--game", help="registered game"),
    n_games: int = typer.Option(200, "--games", help="games per pair (half per colour)"),
    opening_plies: int = typer.Option(2, help="random opening moves, each opening played with both colours"),
    seed: int = typer.Option(0, help="seed of the openings and the tie-breaks"),
    out: Path = typer.Option(None, help="JSON output [default: results/ladder_<game>.json]"),
    postmortem: bool = typer.Option(False, "--postmortem", help="also replay every game with the exact oracle from "
                                    "the game's fast-oracle ply on and record where they slipped "
                                    "(agents.diagnostics; as scripts/analyze_games.py does for an agent)"),
) -> None:
    import games
    from common.atomic import atomic_write_json
    from common.provenance import machine_info
    from rich.console import Console
    from rich.table import Table

    from common.outputs import check_writable
    from agents.diagnostics import where_games_slip
    from agents.evaluation import default_opponent, ladder_opponents, play_games

    game = games.get(game_name)
    if n_games < 2:
        raise typer.BadParameter(f"must be at least 2 (one game per colour), got {n_games}", param_hint="--games")
    if opening_plies < 0:
        raise typer.BadParameter(f"must be >= 0, got {opening_plies}", param_hint="--opening-plies")
    players = players or DEFAULT_PLAYERS.get(game.name) or ",".join(ladder_opponents(game))
    opponents = opponents or default_opponent(game)
    measured = {name: make_player(game, name) for name in players.split(",") if name}
    against = {name: make_player(game, name) for name in opponents.split(",") if name}
    if not measured or not against:
        raise typer.BadParameter("name at least one player and one opponent")
    out = out or RESULTS / f"ladder_{game.name}.json"
    check_writable(out, "--out")
    report = {"machine": machine_info(), "game": repr(game), "games_per_pair": n_games,
              "opening_plies": opening_plies, "seed": seed, "results": []}
    table = Table(title=f"{game.name}: W/D/L of the player, first | second ({n_games} games per pair, "
                        f"{opening_plies}-move random openings)")
    columns = ["player", "opponent", "first", "second", "all wins", "seconds"]
    for column in columns + (["won / held a win: first; second"] if postmortem else []):
        table.add_column(column)
    for name, player in measured.items():
        for opponent_name, opponent in against.items():
            t0 = time.perf_counter()
            result = play_games(game, player, opponent, n_games, seed=seed, opening_plies=opening_plies,
                                keep_moves=postmortem)
            seconds = time.perf_counter() - t0
            if postmortem:
                result["postmortem"] = where_games_slip(game, result.pop("moves"), only_unwon=False)["summary"]
            report["results"].append({"player": name, "opponent": opponent_name, "seconds": seconds, **result})
            f, s = result["as_first"], result["as_second"]
            row = [name, opponent_name, f"{f['win']:.0%}/{f['draw']:.0%}/{f['loss']:.0%}",
                   f"{s['win']:.0%}/{s['draw']:.0%}/{s['loss']:.0%}", f"{result['all']['win']:.1%}", f"{seconds:.1f}"]
            if postmortem:
                held = result["postmortem"]["held_a_win"]
                row.append("; ".join(f"{held[seat]['won']} / {held[seat]['games']}" for seat in ("first", "second")))
            table.add_row(*row)
    Console().print(table)
    path = atomic_write_json(report, out)
    print(f"wrote {path}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
