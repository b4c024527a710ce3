"""Generate look-alikes of Pons' benchmark sets that are not shipped (random openings,
kept when their exact solution has the right length), written as ``MOVES SCORE`` lines.

    python scripts/make_benchmark_positions.py middle-medium --n 1000 --out data/connect4/Gen_L2_R2
    python scripts/make_benchmark_positions.py begin-hard --n 50 --out data/connect4/Gen_L1_R3
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)

KINDS = {
    "end-easy": "Test_L3_R1",
    "middle-easy": "Test_L2_R1",
    "middle-medium": "Test_L2_R2",
    "begin-easy": "Test_L1_R1",
    "begin-medium": "Test_L1_R2",
    "begin-hard": "Test_L1_R3",
}


@app.command()
def main(
    kind: str = typer.Argument(..., help=f"which set to imitate: {', '.join(KINDS)}"),
    out: Path = typer.Option(..., help="output file (MOVES SCORE per line)"),
    n: int = typer.Option(1000, help="number of positions"),
    seed: int = typer.Option(0, help="random seed"),
) -> None:
    from common.outputs import check_writable
    from solver import Solver
    from solver.benchmarks import PONS_SETS, generate_positions, write_set

    if kind not in KINDS:
        raise typer.BadParameter(f"unknown set {kind!r}; choose one of {', '.join(KINDS)}", param_hint="KIND")
    if n < 1:
        raise typer.BadParameter(f"must be at least 1, got {n}", param_hint="--n")
    check_writable(out, "--out")
    spec = next(s for s in PONS_SETS if s.name == KINDS[kind])
    pairs = generate_positions(n, spec.moves, spec.remaining, Solver(), seed=seed)
    write_set(out, pairs)
    typer.echo(f"wrote {len(pairs)} positions to {out}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
