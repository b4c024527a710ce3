"""Benchmark the exact solver on Pascal Pons' six test sets against his C++ solver.

Protocol (his benchmark mode): strong solve, tables zeroed before every position (not
timed), mean time per position = mean of the per-position search times (CPU time-stamp
counter, no Python overhead). Configurations add one idea at a time to his algorithm,
so each row shows what that idea buys; `default` is the solver's default. Sets that are
not shipped (Middle-Medium, Begin-Hard) are our look-alikes from
``scripts/make_benchmark_positions.py``; their difficulty differs from his sets, so the
last column also compares with his time per node scaled to our set's node count under
his algorithm (the pons-part12 configuration).

    python scripts/bench_solver.py                      # everything (about half an hour)
    python scripts/bench_solver.py --limit 100 --hard-limit 5 --no-empty   # a quick look
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)

RESULTS = Path(__file__).resolve().parents[1] / "results" / "bench_solver.json"


def configurations():
    """Cumulative configurations: name -> Solver keyword arguments."""
    from solver import search
    from solver.engine import DEFAULT_ESCALATE_NODES, DEFAULT_FLAGS, DEFAULT_SMALL_TT_LOG2, DEFAULT_TT_LOG2

    big_only = dict(tt_log2=23, small_tt_log2=search.MIN_TT_LOG2, escalate_nodes=0)
    steps = [
        ("pons-part12", dict(big_only, flags=search.PONS_PART12)),
        ("+prefetch", dict(big_only, flags=search.USE_PREFETCH)),
        ("+two-tier", dict(big_only, flags=search.USE_PREFETCH | search.USE_TWO_TIER)),
        ("+tt-2^24", dict(big_only, tt_log2=DEFAULT_TT_LOG2, flags=search.USE_PREFETCH | search.USE_TWO_TIER)),
    ]
    cached = dict(tt_log2=DEFAULT_TT_LOG2, small_tt_log2=DEFAULT_SMALL_TT_LOG2, escalate_nodes=DEFAULT_ESCALATE_NODES)
    flags = search.USE_PREFETCH | search.USE_TWO_TIER
    steps.append(("+small-table", dict(cached, flags=flags)))
    steps.append(("default", dict(cached, flags=DEFAULT_FLAGS)))  # = +tt-move
    # switches that are not in the default, each on top of it
    for name, flag in (("+lazy-etc", search.USE_LAZY_ETC), ("+eager-etc", search.USE_ETC), ("+symmetry", search.USE_SYMMETRY)):
        steps.append((f"default{name}", dict(cached, flags=DEFAULT_FLAGS | flag)))
    return dict(steps)


def run_set(solver_kwargs: dict, pairs: list[tuple[str, int]], repeats: int, book=None) -> dict:
    """Solve the set `repeats` times; return timing, nodes and agreement."""
    from solver import Solver

    solver = Solver(**solver_kwargs, book=book)
    moves = [m for m, _ in pairs]
    expected = [s for _, s in pairs]
    solver.solve_many(moves[:20], reset_each=True)  # warm-up: fault the tables' pages in, untimed
    means, medians, wall = [], [], []
    nodes = agree = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        scores, stats = solver.solve_many(moves, reset_each=True)
        wall.append(time.perf_counter() - t0)
        secs = stats.seconds
        means.append(float(secs.mean()))
        medians.append(float(statistics.median(secs)))
        nodes = stats.nodes
        agree = int(sum(int(a) == b for a, b in zip(scores, expected)))
    return {
        "n": len(pairs),
        "mean_us": statistics.median(means) * 1e6,
        "mean_us_runs": [m * 1e6 for m in means],
        "median_us": statistics.median(medians) * 1e6,
        "mean_nodes": float(nodes.mean()),
        "max_nodes": int(nodes.max()),
        "nodes_per_s": float(nodes.sum() / (statistics.median(means) * len(pairs))),
        "agree": agree,
        "wall_s_runs": wall,
    }


def solve_empty(weak: bool) -> dict:
    from solver import Solver

    solver = Solver()
    t0 = time.perf_counter()
    scores, stats = solver.solve_many([""], weak=weak, reset_each=True)
    return {"score": int(scores[0]), "nodes": int(stats.nodes[0]), "seconds": float(stats.seconds[0]), "wall_s": time.perf_counter() - t0}


def fmt_time(us: float) -> str:
    return f"{us:.2f} us" if us < 1000 else (f"{us / 1000:.2f} ms" if us < 1e6 else f"{us / 1e6:.2f} s")


@app.command()
def main(
    limit: int = typer.Option(0, help="use only the first N positions of each easy/medium set (0: all)"),
    hard_limit: int = typer.Option(20, help="positions of the Begin-Hard set (0: all of the file)"),
    repeats: int = typer.Option(3, help="runs per (set, configuration) for sets under 10 s a run; the median run is reported"),
    configs: str = typer.Option("all", help="comma-separated configuration names, or 'all'"),
    empty: bool = typer.Option(True, help="also solve the empty board, strong and weak (a few minutes)"),
    out: Path = typer.Option(RESULTS, help="JSON output"),
) -> None:
    from rich.console import Console
    from rich.table import Table

    from _reporting import machine_info, write_json

    from solver import load_default_book
    from solver.benchmarks import PONS_SETS, find_set_file, read_set

    console = Console(width=160)
    all_configs = configurations()
    chosen = list(all_configs) if configs == "all" else [c.strip() for c in configs.split(",")]
    unknown = [c for c in chosen if c not in all_configs]
    if unknown:
        console.print(f"[red]unknown configuration(s) {unknown}; known: {list(all_configs)}[/red]")
        raise typer.Exit(2)
    book = load_default_book(7, 6)
    report = {"machine": machine_info(), "protocol": __doc__.split("\n\n")[1], "configs": {}, "sets": {}}
    for name in chosen:
        report["configs"][name] = {k: v for k, v in all_configs[name].items()}

    table = Table(title="Mean time per position (strong, tables zeroed before each position)")
    for col in ("set", "n", "config", "mean", "median", "mean nodes", "Mnodes/s", "agree", "Pons C++ mean", "speed-up",
                "est. on set"):
        table.add_column(col, justify="right")
    for spec in PONS_SETS:
        fname = spec.name if find_set_file(spec.name) else spec.generated_name
        path = find_set_file(fname) if fname else None
        if path is None:
            console.print(f"skipping {spec.label}: neither {spec.name} nor {spec.generated_name} found")
            continue
        pairs = read_set(path)
        hard = spec.name == "Test_L1_R3"
        n = hard_limit if hard else limit
        if n:
            pairs = pairs[:n]
        runs = ["pons-part12", "default"] if hard else chosen
        runs = [c for c in runs if c in chosen]
        entry = {"file": fname, "label": spec.label, "pons_mean_us": spec.pons_mean_us, "pons_mean_nodes": spec.pons_mean_nodes,
                 "generated": fname != spec.name, "results": {}}
        for cname in runs + (["default+book"] if book is not None and "default" in runs else []):
            kwargs = all_configs["default" if cname == "default+book" else cname]
            slow_set = hard or spec.pons_mean_us * len(pairs) > 10e6
            with console.status(f"{spec.label}: {cname} on {len(pairs)} positions"):
                res = run_set(kwargs, pairs, 1 if slow_set else repeats, book=book if cname == "default+book" else None)
            res["speedup_vs_pons"] = spec.pons_mean_us / res["mean_us"]
            reference = entry["results"].get("pons-part12")
            if entry["generated"] and reference:
                # our look-alike set is not his: scale his time per node by our set's
                # node count under his algorithm (the pons-part12 configuration)
                est = spec.pons_mean_us / spec.pons_mean_nodes * reference["mean_nodes"]
                entry["pons_estimated_mean_us_on_this_set"] = est
                res["speedup_vs_pons_estimated"] = est / res["mean_us"]
            entry["results"][cname] = res
            table.add_row(spec.label, str(res["n"]), cname, fmt_time(res["mean_us"]), fmt_time(res["median_us"]),
                          f"{res['mean_nodes']:,.1f}", f"{res['nodes_per_s'] / 1e6:.1f}", f"{res['agree']}/{res['n']}",
                          fmt_time(spec.pons_mean_us), f"{res['speedup_vs_pons']:.2f}x",
                          f"{res['speedup_vs_pons_estimated']:.2f}x" if "speedup_vs_pons_estimated" in res else "")
            console.print(f"{spec.label:13s} {cname:12s} mean {fmt_time(res['mean_us']):>10s}  nodes {res['mean_nodes']:>14,.1f}  agree {res['agree']}/{res['n']}")
        report["sets"][spec.name] = entry
    console.print(table)
    if empty:
        for weak in (True, False):
            with console.status(f"empty board, {'weak' if weak else 'strong'}"):
                res = solve_empty(weak)
            report[f"empty_board_{'weak' if weak else 'strong'}"] = res
            console.print(f"empty 7x6 board, {'weak' if weak else 'strong'}: score {res['score']:+d}, {res['nodes']:,} nodes, {res['seconds']:.1f} s")
    report["machine"]["loadavg_end"] = os.getloadavg()
    console.print(f"wrote {write_json(out, report)}")


if __name__ == "__main__":
    app()
