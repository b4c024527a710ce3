"""The main job on defaults: solve the shipped benchmark positions and print a summary.

Checks every exact score against the files (../shared/data/connect4 and data/connect4)
and reports speed. Later stages of the project (agent, labels, probes) join this job.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table


def main() -> int:
    from solver import Solver
    from solver.benchmarks import PONS_SETS, find_set_file, read_set

    console = Console()
    solver = Solver()
    table = Table(title="Exact Connect Four solver on Pascal Pons' benchmark sets (7x6, strong, TT reset per position)")
    for column in ("set", "positions", "agree", "mean time", "mean nodes", "Pons C++ mean time"):
        table.add_column(column, justify="right")
    failures = 0
    for spec in PONS_SETS:
        path = find_set_file(spec.name)
        if path is None:
            continue
        pairs = read_set(path)
        if spec.name == "Test_L1_R2":
            pairs = pairs[:100]  # the whole set takes over a minute
        with console.status(f"solving {spec.label} ({len(pairs)} positions)"):
            scores, stats = solver.solve_many([m for m, _ in pairs], reset_each=True)
        agree = sum(int(s) == e for s, (_, e) in zip(scores, pairs))
        failures += len(pairs) - agree
        table.add_row(
            f"{spec.label} ({spec.name})", str(len(pairs)), f"{agree}/{len(pairs)}",
            _fmt_seconds(stats.seconds.mean()), f"{stats.nodes.mean():,.1f}", _fmt_seconds(spec.pons_mean_us * 1e-6),
        )
    console.print(table)
    if failures:
        console.print(f"[red]{failures} scores disagree with the files[/red]")
        return 1
    console.print("All scores exact. Full benchmark: python scripts/bench_solver.py")
    return 0


def _fmt_seconds(s: float) -> str:
    return f"{s * 1e6:.1f} us" if s < 1e-3 else (f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
