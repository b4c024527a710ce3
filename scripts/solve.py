"""Solve Connect Four positions, one per line: ``MOVES`` or ``MOVES SCORE`` (1-based columns).

Prints ``MOVES SCORE NODES MICROSECONDS`` per position, or with --analyze
``MOVES s1 s2 ... sW`` (a full column shown as ``.``). An empty line is the empty board.
Malformed lines (an illegal move string, too many fields) are reported on stderr with
their line number; the run goes on and the exit status is 1 if any line failed. An empty
file, a missing one or a bad option is a one-line error with exit status 2.

    python scripts/solve.py ../shared/data/connect4/Test_L3_R1
    echo 4453 | python scripts/solve.py --analyze
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@app.command()
def main(
    file: Optional[Path] = typer.Argument(None, help="positions file; standard input if omitted", exists=True, dir_okay=False),
    analyze: bool = typer.Option(False, "--analyze", "-a", help="print the score of every column instead"),
    weak: bool = typer.Option(False, "--weak", "-w", help="only win/draw/loss (-1/0/+1): much faster"),
    width: int = typer.Option(7, help="board width (columns)"),
    height: int = typer.Option(6, help="board height (rows)"),
    book: Optional[Path] = typer.Option(None, help="opening book file (default: the shipped or cached one, if any)"),
    no_book: bool = typer.Option(False, "--no-book", help="search every position, even those in a book"),
    tt_log2: int = typer.Option(24, help="log2 of the main transposition table's slots (8 bytes each; 24 = 128 MiB, for long solves such as the empty board; the library's default is 22)"),
) -> None:
    from games.connect4 import Position
    from solver import OpeningBook, Solver, load_default_book

    if file is not None and file.stat().st_size == 0:
        raise ValueError(f"{file} is empty: give one position per line (an empty line is the empty board)")
    solver = Solver(width, height, tt_log2=tt_log2)  # errors reach the user as one line (common.cli.run_app)
    if not no_book:
        solver.use_book(OpeningBook.load(book) if book else load_default_book(width, height))

    stream = file.open() if file else sys.stdin
    failed = 0
    try:
        for lineno, line in enumerate(stream, start=1):
            fields = line.split()
            if len(fields) > 2:
                typer.echo(f"line {lineno}: expected 'MOVES' or 'MOVES SCORE', got {line.strip()!r}", err=True)
                failed += 1
                continue
            moves = fields[0] if fields else ""
            try:
                pos = Position.from_moves(moves, width, height)
                if analyze:
                    scores = solver.analyze(pos, weak=weak)
                    cells = " ".join("." if s is None else str(s) for s in scores)
                    typer.echo(f"{moves} {cells}")
                else:
                    score, stats = solver.solve_many([pos], weak=weak)
                    typer.echo(f"{moves} {score[0]} {stats.nodes[0]} {stats.seconds[0] * 1e6:.0f}")
            except ValueError as exc:
                typer.echo(f"line {lineno}: {exc}", err=True)
                failed += 1
    finally:
        if file:
            stream.close()
    if failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
