"""Sample positions of a game and label them with its concepts.

Writes DIR/positions.parquet (columns: moves, ply, game_id, source, then one per concept)
and DIR/manifest.json. Interrupted runs resume when started again with the same options.

    python scripts/make_dataset.py --game connect4 --n 100000 --seed 0 --out data/c4_100k
    python scripts/make_dataset.py --game tictactoe --n 2000 --out data/ttt --concepts win_in_1,value
    python scripts/make_dataset.py --n 20000 --out data/c4_agent --agent runs/connect4-seed0 \
        --sources random:0.3,epsilon-0.1:0.3,agent-0:0.4     # add self-play games of a checkpoint
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@app.command()
def main(
    out: Path = typer.Option(..., help="output folder"),
    game: str = typer.Option("connect4", help="registered game name"),
    n: int = typer.Option(10000, help="number of distinct positions"),
    seed: int = typer.Option(0, help="random seed (sampling is deterministic by seed)"),
    sources: str = typer.Option("random:0.4,epsilon-0.1:0.2,epsilon-0.25:0.2,epsilon-0.5:0.2",
                                help="mixture of sources name:weight (random, epsilon-E, file, agent-K)"),
    agent: list[Path] = typer.Option([], help="agent checkpoint (or run folder) whose self-play is source agent-K, "
                                              "K = 0, 1, ... in the order given; repeatable"),
    positions_file: Optional[Path] = typer.Option(None, help="positions for the 'file' source, one per line"),
    concepts: Optional[str] = typer.Option(None, help="comma-separated concept names (default: all)"),
    width: Optional[int] = typer.Option(None, help="board width (connect4)"),
    height: Optional[int] = typer.Option(None, help="board height (connect4)"),
    heaps: Optional[str] = typer.Option(None, help="heap sizes, e.g. 3,4,5 (nim)"),
    jobs: int = typer.Option(2, help="labelling processes"),
    batch_size: int = typer.Option(256, help="positions per labelled batch (and per resume unit)"),
    random_opening: int = typer.Option(6, help="random plies before epsilon-perfect play starts"),
    min_ply: int = typer.Option(0, help="drop positions with fewer stones/plies"),
    solution_cache: Optional[Path] = typer.Option(None, help="SQLite file of cached exact solutions (default: the cache folder)"),
) -> None:
    from games.datasets import build_dataset

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    kwargs = {}
    if width is not None:
        kwargs["width"] = width
    if height is not None:
        kwargs["height"] = height
    if heaps is not None:
        try:
            kwargs["heaps"] = tuple(int(h) for h in heaps.split(","))
        except ValueError:
            typer.echo(f"error: --heaps must be integers separated by commas, got {heaps!r}", err=True)
            raise typer.Exit(2)
    players = {}
    if agent:
        from agents.checkpoints import load_agent, resolve_checkpoint
        from agents.evaluation import PolicyPlayer

        for k, checkpoint in enumerate(agent):
            try:
                path = resolve_checkpoint(checkpoint)
                players[f"agent-{k}"] = PolicyPlayer(load_agent(path), name=str(path))
            except (FileNotFoundError, ValueError) as exc:
                typer.echo(f"error: --agent {checkpoint}: {exc}", err=True)
                raise typer.Exit(2)
    try:
        path = build_dataset(game, n, out, seed=seed, sources=sources, positions_file=positions_file,
                             concepts=concepts.split(",") if concepts else None, game_kwargs=kwargs, jobs=jobs,
                             batch_size=batch_size, random_opening=random_opening, min_ply=min_ply,
                             solution_cache=solution_cache, players=players)
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(f"wrote {path} and {path.parent / 'manifest.json'}")


if __name__ == "__main__":
    app()
