"""Build an opening book: exact scores of every position with at most DEPTH stones.

Only the deepest level is searched; shallower levels follow by minimax. The run saves
its progress to a checkpoint and resumes from it if interrupted; the book is written
atomically. By default it goes to the cache folder, where `solver.default_solver` (the
solver behind `solver.solve`/`analyze`, the games' oracle and dataset labelling) finds
it; a plain `Solver()` consults a book only when given one (`book=load_default_book()`).

Cost: the deepest level is solved position by position, and positions with few stones
take the solver seconds to minutes each on 7x6 (results/bench_labeling_per_ply.json):
depth 2 is shipped; depth 4 means solving every 4-stone position.

    python scripts/make_book.py --depth 4            # 7x6, into ~/.cache/solvedlens/books
    python scripts/make_book.py --width 5 --height 4 --depth 6 --out book.npz
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

HELP = __doc__.replace("\n    python", "\n\b\n    python", 1)
app = typer.Typer(add_completion=False, help=HELP, rich_markup_mode=None)


@app.command(help=HELP)
def main(
    depth: int = typer.Option(..., min=0, help="book depth: positions with at most this many stones"),
    width: int = typer.Option(7, min=4, help="board width"),
    height: int = typer.Option(6, min=4, help="board height"),
    out: Optional[Path] = typer.Option(None, help="output .npz (default: the cache folder's books/)"),
    tt_log2: int = typer.Option(24, help="log2 of the solver's main table size"),
    overwrite: bool = typer.Option(False, help="replace an existing book file at the output path"),
) -> None:
    from common.outputs import check_writable
    from games.connect4.position import BoardSize
    from common.provenance import cache_dir
    from solver.book import book_filename

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    size = BoardSize(width, height)  # ValueError names a board the bitboard cannot hold
    if depth >= size.n_squares:
        raise ValueError(f"--depth must be in 0..{size.n_squares - 1} for a {width}x{height} board, got {depth}")
    target = out or cache_dir() / "books" / book_filename(width, height, depth)
    if target.exists() and not overwrite:
        raise ValueError(f"{target} already exists; pass --overwrite to rebuild it, or choose another --out")
    if target.is_dir():
        raise ValueError(f"--out {target} is a folder; give a file name ending in .npz")
    check_writable(target, "--out")  # before any search, not after it
    from solver import Solver
    from solver.book_building import build_book

    solver = Solver(width, height, tt_log2=tt_log2)
    checkpoint = target.with_suffix(".checkpoint.json")
    book = build_book(depth, solver, checkpoint=checkpoint)
    book.save(target)
    checkpoint.unlink(missing_ok=True)
    typer.echo(f"wrote {len(book)} positions (depth {depth}, {width}x{height}) to {target}; {solver.nodes:,} nodes searched")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
