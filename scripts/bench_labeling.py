"""Concept labelling cost for Connect Four: throughput by tier, and seconds per position by ply.

Throughput (default): positions come from uniformly random games (sampling is not timed),
from `--min-ply` stones on. Tiers are cumulative: static concepts, + short-search concepts,
+ Allis-rule concepts, + solver concepts with a cold solution cache (a fresh SQLite file
and fresh solver tables), + solver concepts again with the cache warm. One process.

Per ply (``--per-ply 0-41``): for every number of stones, `--per-ply-n` distinct positions
from random games are labelled one at a time with every concept (the exact score of the
position and of each column, through the process-wide `default_solver`, i.e. with the
shipped opening book, no SQLite cache, solver tables emptied at the start of each ply),
after the oracle call that epsilon-perfect sampling makes at that ply
(`game.optimal_actions`, weak solves of the children). Each ply gets `--budget-s` seconds
in a child process; a position still running when the budget is spent is killed and
recorded as censored (its time is a lower bound). This is what `make_dataset --min-ply`
and `--random-opening` defaults are derived from. JSON under results/.

    python scripts/bench_labeling.py --sizes 10000,100000
    python scripts/bench_labeling.py --per-ply 0-41 --per-ply-n 8 --budget-s 30
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Optional

import typer

HELP = __doc__.replace("\n    python", "\n\b\n    python", 1)
app = typer.Typer(add_completion=False, help=HELP, rich_markup_mode=None)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "bench_labeling.json"
RESULTS_PER_PLY = ROOT / "results" / "bench_labeling_per_ply.json"


def _positions_at_ply(game, ply: int, n: int, seed: int) -> list[str]:
    """`n` distinct live positions with exactly `ply` stones from uniformly random games."""
    from games.datasets import play_game

    rng = random.Random(seed * 1000 + ply)
    found: dict[int, str] = {}
    for _ in range(200 * n):
        states = play_game(game, "random", rng, random_opening=0)
        if len(states) > ply and not game.is_terminal(states[ply]):
            found.setdefault(game.canonical_key(states[ply]), game.to_text(states[ply]))
        if len(found) == n:
            break
    return list(found.values())


def _per_ply_worker(width: int, height: int, jobs: "mp.Queue", results: "mp.Queue") -> None:
    """Child process: compile, then time (ply, texts) items from `jobs`, one message per position."""
    import games
    from games.concepts import label
    from solver import default_solver

    game = games.get("connect4", width=width, height=height)
    label(game, [game.parse("1" * (height - 1))])  # numba compilation, not timed
    results.put(("ready", None))
    while True:
        item = jobs.get()
        if item is None:
            return
        ply, texts = item
        default_solver(width, height).reset()
        for text in texts:
            state = game.parse(text)
            t0 = time.perf_counter()
            game.optimal_actions(state)
            t1 = time.perf_counter()
            label(game, [state])
            t2 = time.perf_counter()
            results.put(("position", {"ply": ply, "moves": text, "oracle_s": t1 - t0, "label_s": t2 - t1}))
        results.put(("ply_done", ply))


def _summary(values: list[float]) -> dict:
    if not values:
        return {"median": None, "mean": None, "max": None}
    return {"median": statistics.median(values), "mean": statistics.fmean(values), "max": max(values)}


def per_ply(plies: list[int], n: int, budget_s: float, seed: int, width: int = 7, height: int = 6,
            echo=print) -> dict:
    """Seconds per position by number of stones (see the module docstring)."""
    import games

    game = games.get("connect4", width=width, height=height)
    ctx = mp.get_context("spawn")
    worker = None
    rows = []
    for ply in plies:
        texts = _positions_at_ply(game, ply, n, seed)
        if worker is None:
            jobs, results = ctx.Queue(), ctx.Queue()
            worker = ctx.Process(target=_per_ply_worker, args=(width, height, jobs, results), daemon=True)
            worker.start()
            results.get(timeout=600)  # "ready": compiled
        jobs.put((ply, texts))
        deadline = time.monotonic() + budget_s
        start = time.monotonic()
        timed: list[dict] = []
        censored = None
        while True:
            try:
                kind, payload = results.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                # the position in progress ran past the budget: its time is a lower bound
                last_end = start + sum(r["oracle_s"] + r["label_s"] for r in timed)
                censored = {"moves": texts[len(timed)], "seconds_at_least": time.monotonic() - last_end}
                worker.kill()
                worker.join()
                worker = None
                break
            if kind == "ply_done":
                break
            timed.append(payload)
        label_s = [r["label_s"] for r in timed]
        oracle_s = [r["oracle_s"] for r in timed]
        row = {"ply": ply, "positions": len(texts), "timed": len(timed), "censored": censored,
               "label_s": _summary(label_s), "oracle_s": _summary(oracle_s), "positions_detail": timed}
        rows.append(row)
        med = row["label_s"]["median"]
        echo(f"ply {ply:2d}: {len(timed)}/{len(texts)} positions timed; label median "
             f"{'-' if med is None else f'{med:.3f}'} s, max {'-' if not label_s else f'{max(label_s):.3f}'} s; "
             f"oracle median {'-' if not oracle_s else f'{statistics.median(oracle_s):.3f}'} s"
             + (f"; 1 censored at >= {censored['seconds_at_least']:.1f} s" if censored else ""))
    if worker is not None:
        jobs.put(None)
        worker.join(timeout=30)
    return {"width": width, "height": height, "per_ply_n": n, "budget_s_per_ply": budget_s, "seed": seed,
            "method": "each position labelled alone with every concept (exact score of it and of each column) through "
                      "default_solver (shipped opening book, no SQLite cache); solver tables emptied at the start of "
                      "each ply, so later positions of a ply may reuse earlier ones' entries, as in a labelling batch; "
                      "oracle_s: game.optimal_actions (what epsilon-perfect sampling calls per move), timed before "
                      "label_s on the same position; a position still running when the ply's budget ran out is "
                      "killed and reported as censored",
            "rows": rows}


@app.command(help=HELP)
def main(
    sizes: str = typer.Option("10000,100000", help="numbers of positions"),
    solver_sizes: str = typer.Option("10000", help="sizes at which the solver tier is also measured"),
    min_ply: int = typer.Option(12, help="fewest stones of a sampled position"),
    seed: int = typer.Option(0, help="random seed"),
    out: Optional[Path] = typer.Option(None, help="JSON output (default: results/bench_labeling.json, "
                                                  "or results/bench_labeling_per_ply.json with --per-ply)"),
    per_ply_spec: Optional[str] = typer.Option(None, "--per-ply", help="measure seconds per position at these plies "
                                                                       "instead, e.g. 0-41"),
    per_ply_n: int = typer.Option(8, min=1, help="positions per ply (--per-ply)"),
    budget_s: float = typer.Option(30.0, min=1.0, help="seconds per ply before the running position is killed (--per-ply)"),
) -> None:
    from common.atomic import atomic_write_json
    from common.cli import parse_int_ranges
    from common.provenance import machine_info
    from rich.console import Console

    console = Console(width=140)
    if per_ply_spec is not None:
        report = {"machine": machine_info()}
        report.update(per_ply(parse_int_ranges(per_ply_spec, "--per-ply"), per_ply_n, budget_s, seed, echo=console.print))
        import os

        report["loadavg_end"] = os.getloadavg()
        console.print(f"wrote {atomic_write_json(report, out or RESULTS_PER_PLY)}")
        return

    import games
    from games.concepts import select
    from games.datasets import sample_positions
    from solver.cache import SolutionCache

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
    console.print(f"wrote {atomic_write_json(report, out or RESULTS)}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
