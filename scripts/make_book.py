"""Build an opening book: exact scores of every position with at most DEPTH stones.

Only the deepest level is searched; shallower levels follow by minimax. The run saves
its progress to a checkpoint and resumes from it if interrupted; the book is written
atomically. By default it goes to the cache folder where `Solver`s find it.

    python scripts/make_book.py --depth 4            # 7x6, into ~/.cache/solvedlens/books
    python scripts/make_book.py --width 5 --height 4 --depth 6 --out book.npz
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@app.command()
def main(
    depth: int = typer.Option(..., help="book depth: positions with at most this many stones"),
    width: int = typer.Option(7, help="board width"),
    height: int = typer.Option(6, help="board height"),
    out: Optional[Path] = typer.Option(None, help="output .npz (default: the cache folder's books/)"),
    tt_log2: int = typer.Option(24, help="log2 of the solver's main table size"),
) -> None:
    from solver import Solver
    from solver.book import book_filename, build_book, cache_dir

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        solver = Solver(width, height, tt_log2=tt_log2)
        target = out or cache_dir() / "books" / book_filename(width, height, depth)
        checkpoint = target.with_suffix(".checkpoint.json")
        book = build_book(depth, solver, checkpoint=checkpoint)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    book.save(target)
    checkpoint.unlink(missing_ok=True)
    typer.echo(f"wrote {len(book)} positions (depth {depth}, {width}x{height}) to {target}; {solver.nodes:,} nodes searched")


if __name__ == "__main__":
    app()
