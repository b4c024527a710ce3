"""Solve Pascal Pons' benchmark positions shipped with the project and check every score.

Each set file (``data/connect4``, and ``../shared/data/connect4`` where present) is solved
with tables reset per position; every exact score is compared with the file, and the mean
time is shown next to Pons' C++ figure measured on this CPU model, where the project has
one (`solver.benchmarks.PONS_ANCHORS`). Exit status 1 if any score disagrees.

    python scripts/demo.py                        # about a minute once the solver is compiled
    python scripts/demo.py --sets Test_L3_R1,Test_L2_R1 --positions 200
"""

from __future__ import annotations

from typing import Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


def _fmt_seconds(s: float) -> str:
    return f"{s * 1e6:.1f} us" if s < 1e-3 else (f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s")


@app.command()
def main(
    sets: Optional[str] = typer.Option(None, help="comma-separated set names (e.g. Test_L3_R1); default: every set found"),
    positions: int = typer.Option(0, help="solve only the first N positions of each set (0: all)"),
    begin_medium: int = typer.Option(100, help="positions of Begin-Medium (Test_L1_R2) unless --positions is given "
                                               "(the whole set takes minutes)"),
) -> None:
    from rich.console import Console
    from rich.table import Table

    from solver import Solver
    from common.provenance import cpu_model
    from solver.benchmarks import PONS_SETS, anchor_for, find_set_file, read_set

    if positions < 0 or begin_medium < 1:
        raise ValueError(f"--positions must be 0 (all) or more and --begin-medium at least 1, got {positions} "
                         f"and {begin_medium}")
    known = [s.name for s in PONS_SETS]
    wanted = known if sets is None else [s.strip() for s in sets.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in known]
    if unknown or not wanted:
        raise ValueError(f"unknown set(s) {unknown or sets!r}; sets: {', '.join(known)}")
    console = Console()
    cpu = cpu_model()
    anchor = anchor_for(cpu)
    solver = Solver()
    table = Table(title=f"Exact Connect Four solver on Pascal Pons' benchmark sets (7x6, strong, TT reset per "
                        f"position) on {cpu}")
    for column in ("set", "positions", "agree", "mean time", "mean nodes", "Pons C++ mean time"):
        table.add_column(column, justify="right")
    failures = solved = 0
    for spec in PONS_SETS:
        if spec.name not in wanted:
            continue
        path = find_set_file(spec.name)
        if path is None:
            console.print(f"{spec.label} ({spec.name}): not shipped here, skipped")
            continue
        pairs = read_set(path)
        n = positions or (begin_medium if spec.name == "Test_L1_R2" else 0)
        subset = pairs[:n] if n else pairs
        with console.status(f"solving {spec.label} ({len(subset)} positions)"):
            scores, stats = solver.solve_many([m for m, _ in subset], reset_each=True)
        agree = sum(int(s) == e for s, (_, e) in zip(scores, subset))
        failures += len(subset) - agree
        solved += len(subset)
        figure = anchor.figures.get(spec.name) if anchor else None
        same = figure is not None and figure.file == spec.name and (figure.positions or len(pairs)) == len(subset)
        pons = _fmt_seconds(figure.mean_us * 1e-6) if same else ("no anchor for this CPU" if anchor is None else
                                                                  "not measured on these positions")
        table.add_row(f"{spec.label} ({spec.name})", str(len(subset)), f"{agree}/{len(subset)}",
                      _fmt_seconds(stats.seconds.mean()), f"{stats.nodes.mean():,.1f}", pons)
    console.print(table)
    if not solved:
        raise ValueError(f"none of the sets {wanted} is shipped in data/connect4 or ../shared/data/connect4")
    if failures:
        console.print(f"[red]{failures} scores disagree with the files[/red]")
        raise typer.Exit(1)
    console.print("All scores exact. Full benchmark: python scripts/bench_solver.py")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
