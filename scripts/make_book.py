"""Build an opening book: exact scores of every position with at most DEPTH stones.

Only the deepest level is searched; shallower levels follow by minimax. The deepest
level is split into chunks solved by `--jobs` local processes (`--engine local`, the
default) or Ray actors (`--engine ray`, on a private local instance, or on the cluster at
`--address` / $RAY_ADDRESS). The run merges each finished chunk into a checkpoint and
resumes from it if interrupted (never solving a finished position again); the book is
written atomically, and is the same whatever the engine and the number of workers. What
the build cost (time, nodes, engine) goes to a `.build.json` file next to the book. By
default it goes to the cache folder, where `solver.default_solver` (the solver behind
`solver.solve`/`analyze`, the games' oracle and dataset labelling) finds it; a plain
`Solver()` consults a book only when given one (`book=load_default_book()`).

Cost: positions with few stones take the solver seconds to minutes each on 7x6, and the
cost of each depth is in results/bench_book.json (scripts/bench_book.py) and
docs/datasets.md ("How deep a book"): depth 2 is shipped.

    python scripts/make_book.py --depth 3 --jobs 2   # 7x6, into ~/.cache/solvedlens/books
    python scripts/make_book.py --depth 6 --engine ray --address HEAD:6379 --jobs 64
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
    engine: str = typer.Option("local", help="where the deepest level is solved: local (processes) or ray"),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (--engine ray only; default $RAY_ADDRESS)"),
    jobs: int = typer.Option(2, min=1, help="worker processes (local) or Ray actors (ray)"),
) -> None:
    import time

    from common.atomic import atomic_write_json
    from common.engine import check_engine_options, make_engine
    from common.outputs import check_writable
    from common.provenance import machine_info
    from games.connect4.position import BoardSize
    from common.provenance import cache_dir
    from solver.book import book_filename

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    check_engine_options(engine, address)  # one line, before anything else
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
    from solver.book_building import BuildStats, build_book

    solver = Solver(width, height, tt_log2=tt_log2)  # searches with --jobs 1; else its settings go to the workers
    checkpoint = target.with_suffix(".checkpoint.json")
    stats = BuildStats()
    start = time.perf_counter()
    with make_engine(engine, jobs, address) as runner:
        book = build_book(depth, solver, checkpoint=checkpoint, engine=runner, stats=stats)
        description = runner.describe()
    seconds = time.perf_counter() - start
    book.save(target)
    record = {"width": width, "height": height, "depth": depth, "entries": len(book), "bytes": target.stat().st_size,
              "engine": engine, "jobs": jobs, "where": description, "tt_log2": tt_log2, "wall_seconds": seconds,
              **{k: v for k, v in vars(stats).items() if k != "wall_seconds"}, "machine": machine_info()}
    atomic_write_json(record, target.with_suffix(".build.json"))  # provenance next to the book (find_books reads *.npz)
    checkpoint.unlink(missing_ok=True)
    typer.echo(f"wrote {len(book)} positions (depth {depth}, {width}x{height}) to {target} "
               f"({record['bytes']:,} bytes) in {seconds:.1f} s; searched {stats.searched} of the {stats.positions} "
               f"positions with {depth} stones ({stats.resumed} from the checkpoint): {stats.nodes:,} nodes, "
               f"{stats.solver_seconds:.1f} s of search")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
