"""Sample positions of a game and label them with its concepts.

Writes DIR/positions.parquet (columns: moves, ply, game_id, source, then one per concept)
and DIR/manifest.json. Interrupted runs (Ctrl-C, SIGTERM, kill -9) keep every finished
batch and resume when started again with the same options; a folder holding a dataset
made with other options is refused unless --overwrite. Progress with an ETA goes to
stderr (--quiet turns it off). At the end it lists the pairs of concept columns that are
identical or near-identical on the dataset (|correlation| >= 0.99; also in the manifest's
near_duplicate_concepts).

Cost: exact labels (the solver concepts) of Connect Four 7x6 positions with few stones
take seconds to minutes each. The default --min-ply is where labels get cheap: 12 on
7x6 (at most 30 empty squares), 0 for tic-tac-toe and Nim; epsilon-perfect sources play
randomly up to ply 10 on 7x6 (--random-opening), where their oracle gets fast. Measured
seconds per 7x6 position by ply (2 busy cores, shipped depth-2 book): COST_TABLE.
Full table: results/bench_labeling_per_ply.json and docs/datasets.md.

    python scripts/make_dataset.py --game connect4 --n 10000 --seed 0 --out data/c4_10k
    python scripts/make_dataset.py --game tictactoe --n 2000 --out data/ttt --concepts win_in_1,value
    python scripts/make_dataset.py --n 20000 --out data/c4_agent --agent runs/connect4-seed0 \\
        --sources random:0.3,epsilon-0.1:0.3,agent-0:0.4     # add self-play games of a checkpoint
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

COST_TABLE = ("plies 2-7: 2 s to over 40 s; ply 8: 1.0 s; ply 10: 0.3 s; ply 12: 0.08 s; "
              "ply 14 on: under 0.01 s (medians)")

HELP = __doc__.replace("COST_TABLE", COST_TABLE).replace("\n    python", "\n\b\n    python", 1)
app = typer.Typer(add_completion=False, help=HELP, rich_markup_mode=None)


@app.command(help=HELP)
def main(
    out: Path = typer.Option(..., help="output folder"),
    game: str = typer.Option("connect4", help="registered game name"),
    n: int = typer.Option(10000, min=1, help="number of distinct positions (fewer, with a warning, if fewer exist)"),
    seed: int = typer.Option(0, help="random seed (sampling is deterministic by seed)"),
    sources: str = typer.Option("random:0.4,epsilon-0.1:0.2,epsilon-0.25:0.2,epsilon-0.5:0.2",
                                help="mixture of sources name:weight (random, epsilon-E, file, agent-K)"),
    agent: list[Path] = typer.Option([], help="agent checkpoint (or run folder) whose self-play is source agent-K, "
                                              "K = 0, 1, ... in the order given; repeatable"),
    positions_file: Optional[Path] = typer.Option(None, help="positions for the 'file' source, one per line "
                                                             "(taken whatever their ply)"),
    concepts: Optional[str] = typer.Option(None, help="comma-separated concept names (default: all)"),
    width: Optional[int] = typer.Option(None, help="board width (connect4)"),
    height: Optional[int] = typer.Option(None, help="board height (connect4)"),
    heaps: Optional[str] = typer.Option(None, help="heap sizes, e.g. 3,4,5 (nim)"),
    jobs: int = typer.Option(2, min=1, help="labelling workers: processes (1: in this process), or Ray actors"),
    engine: str = typer.Option("local", help="where batches are labelled: local (processes on this machine) or ray "
                                             "(a private local Ray instance, or the cluster at --address)"),
    address: Optional[str] = typer.Option(None, help="Ray cluster address for --engine ray (default: $RAY_ADDRESS, "
                                                     "else a local instance)"),
    batch_size: Optional[int] = typer.Option(None, min=1, help="positions per labelled batch and per resume unit "
                                                               "(default: n/32, between 16 and 256)"),
    random_opening: Optional[int] = typer.Option(None, min=0, help="random plies before the sources' own play starts "
                                                                   "(default: 6; connect4 7x6 with an epsilon source: "
                                                                   "10, where the oracle gets fast)"),
    min_ply: Optional[int] = typer.Option(None, min=0, help=f"drop sampled positions with fewer stones/plies (default: "
                                                            f"connect4 7x6 12, i.e. at most 30 empty squares; "
                                                            f"tictactoe, nim 0). Seconds per position: {COST_TABLE}"),
    max_ply: Optional[int] = typer.Option(None, min=0, help="drop sampled positions with more stones/plies "
                                                            "(default: none), e.g. for an early-game dataset"),
    solution_cache: Optional[Path] = typer.Option(None, help="SQLite file of cached exact solutions (default: the cache folder)"),
    rebuild_cache: bool = typer.Option(False, help="if the solution cache is corrupt, move it aside to "
                                                   "FILE.corrupt-<time> and start a new one (default: stop with an error)"),
    book: Optional[Path] = typer.Option(None, help="opening book .npz for the solver (scripts/make_book.py; default: "
                                                   "the deepest shipped or cached one)"),
    overwrite: bool = typer.Option(False, help="replace a dataset made with other options in --out"),
    quiet: bool = typer.Option(False, help="no progress bars, warnings only"),
) -> None:
    from games.datasets import build_dataset
    from games.registry import get

    from common.engine import check_engine_options

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s")
    check_engine_options(engine, address)  # one line, before sampling
    kwargs = {}
    if width is not None:
        kwargs["width"] = width
    if height is not None:
        kwargs["height"] = height
    if heaps is not None:
        try:
            kwargs["heaps"] = tuple(int(h) for h in heaps.split(","))
        except ValueError:
            raise ValueError(f"--heaps must be integers separated by commas, got {heaps!r}") from None
    the_game = get(game, **kwargs)  # unknown game or options: one line, before anything else
    players = {}
    if agent:
        from agents.checkpoints import load_agent_for_game
        from agents.evaluation import PolicyPlayer

        for k, checkpoint in enumerate(agent):
            try:
                loaded = load_agent_for_game(checkpoint, the_game)
            except (FileNotFoundError, ValueError) as exc:
                raise ValueError(f"--agent {checkpoint}: {exc}") from exc
            players[f"agent-{k}"] = PolicyPlayer(loaded.model, name=str(loaded.path))
    path = build_dataset(game, n, out, seed=seed, sources=sources, positions_file=positions_file,
                         concepts=concepts.split(",") if concepts else None, game_kwargs=kwargs, jobs=jobs,
                         batch_size=batch_size, random_opening=random_opening, min_ply=min_ply, max_ply=max_ply,
                         solution_cache=solution_cache, players=players, progress=not quiet, overwrite=overwrite,
                         book=book, rebuild_cache=rebuild_cache, engine=engine, address=address)
    typer.echo(f"wrote {path} and {path.parent / 'manifest.json'}")
    _print_duplicates(path.parent)


def _print_duplicates(folder: Path) -> None:
    """The manifest's identical or near-identical concept column pairs, one per line."""
    from games.datasets import describe_duplicate, read_manifest

    manifest = read_manifest(folder)
    pairs = manifest.get("near_duplicate_concepts") or []
    threshold = manifest.get("near_duplicate_threshold")
    if not pairs:
        typer.echo(f"no two concept columns are identical or near-identical on this dataset (|r| >= {threshold})")
        return
    typer.echo(f"{len(pairs)} pair(s) of concept columns are identical or near-identical on this dataset "
               f"(|r| >= {threshold}; a sweep needs one of an identical pair):")
    for pair in pairs:
        typer.echo(f"  {describe_duplicate(pair)}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
