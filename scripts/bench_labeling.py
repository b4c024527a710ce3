"""Concept labelling throughput for Connect Four 7x6: positions labelled per second, by tier.

Positions come from uniformly random games (sampling is not timed), from `--min-ply`
stones on (the exact solver is slow on near-empty boards). Tiers are cumulative: static
concepts, + short-search concepts, + Allis-rule concepts, + solver concepts with a cold
solution cache (a fresh SQLite file and fresh solver tables), + solver concepts again
with the cache warm. One process; JSON under results/.

    python scripts/bench_labeling.py --sizes 10000,100000
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)

RESULTS = Path(__file__).resolve().parents[1] / "results" / "bench_labeling.json"


@app.command()
def main(
    sizes: str = typer.Option("10000,100000", help="numbers of positions"),
    solver_sizes: str = typer.Option("10000", help="sizes at which the solver tier is also measured"),
    min_ply: int = typer.Option(12, help="fewest stones of a sampled position"),
    seed: int = typer.Option(0, help="random seed"),
    out: Path = typer.Option(RESULTS, help="JSON output"),
) -> None:
    from _reporting import machine_info, write_json
    from rich.console import Console

    import games
    from games.concepts import select
    from games.datasets import sample_positions
    from solver.cache import SolutionCache

    console = Console(width=140)
    game = games.get("connect4")
    report = {"machine": machine_info(), "min_ply": min_ply, "results": []}
    for n in (int(x) for x in sizes.split(",")):
        with console.status(f"sampling {n} positions"):
            sampled = sample_positions(game, n, seed=seed, sources={"random": 1.0}, min_ply=min_ply, progress=False)
        states = [p.state for p in sampled]
        tiers = [("static", ["static"]), ("+search", ["static", "search"]), ("+rules", ["static", "search", "rules"])]
        if str(n) in solver_sizes.split(","):
            every = ["static", "search", "rules", "solver"]
            tiers += [("+solver (cold cache)", every), ("+solver (warm cache)", every)]
        with tempfile.TemporaryDirectory() as tmp:
            store = None
            for name, tier_list in tiers:
                concepts = select("connect4", tiers=tier_list)
                cache: dict = {}
                if "solver" in tier_list:
                    if store is None:
                        from solver import default_solver

                        default_solver(7, 6).reset()  # empty solver tables for the cold run
                        store = SolutionCache(Path(tmp) / "solutions.sqlite")
                    cache["solution_cache"] = store
                t0 = time.perf_counter()
                for c in concepts:
                    c.compute(game, states, cache)
                dt = time.perf_counter() - t0
                row = {"n": n, "tiers": name, "concepts": len(concepts), "seconds": dt, "positions_per_s": n / dt}
                report["results"].append(row)
                console.print(f"{n:>7,} positions  {name:22s} {len(concepts):3d} concepts  {dt:9.2f} s  {n / dt:12,.0f} positions/s")
            if store is not None:
                store.close()
    console.print(f"wrote {write_json(out, report)}")


if __name__ == "__main__":
    app()
