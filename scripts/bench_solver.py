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
import resource
import statistics
import time
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)

RESULTS = Path(__file__).resolve().parents[1] / "results" / "bench_solver.json"


def configurations():
    """Cumulative configurations: name -> Solver keyword arguments.

    Each one runs on a kernel compiled for its own switches (`Solver(specialise=True)`), so
    a row differs from the one above it by one idea; ``default-runtime-switches`` is the
    default on the kernel that reads its switches at run time (what specialising buys).
    """
    from solver import search
    from solver.engine import DEFAULT_ESCALATE_NODES, DEFAULT_FLAGS, DEFAULT_SMALL_TT_LOG2, DEFAULT_TT_LOG2

    big_only = dict(tt_log2=23, small_tt_log2=search.MIN_TT_LOG2, escalate_nodes=0)
    cached = dict(tt_log2=DEFAULT_TT_LOG2, small_tt_log2=DEFAULT_SMALL_TT_LOG2, escalate_nodes=DEFAULT_ESCALATE_NODES)
    steps = [
        ("pons-part12", dict(big_only, flags=search.PONS_PART12)),
        ("+prefetch", dict(big_only, flags=search.USE_PREFETCH)),
        ("+two-tier", dict(big_only, flags=search.USE_PREFETCH | search.USE_TWO_TIER)),
        ("+small-table", dict(cached, flags=search.USE_PREFETCH | search.USE_TWO_TIER)),
        ("default", dict(cached, flags=DEFAULT_FLAGS)),  # = +tt-move
        ("default-runtime-switches", dict(cached, flags=DEFAULT_FLAGS, specialise=False)),
    ]
    # switches that are not in the default, each on top of it
    for name, flag in (("+lazy-etc", search.USE_LAZY_ETC), ("+eager-etc", search.USE_ETC),
                       ("+symmetry", search.USE_SYMMETRY)):
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


def pons_reference(figure, spec, fname: str, n_run: int, n_file: int) -> tuple[float | None, str]:
    """Pons' mean time to compare a run with: (microseconds or None, how it was obtained / why none).

    Direct when his figure was measured on the same file and the same first positions;
    ``node-scaled`` when it was measured on his own file of a set we only have a look-alike of
    (filled in later from the pons-part12 node count); None otherwise.
    """
    if figure is None:
        return None, "no anchor figure for this set"
    same_rows = (figure.positions or n_file) == n_run
    if figure.file == fname:
        if same_rows:
            return figure.mean_us, "measured"
        return None, f"anchor: first {figure.positions or n_file}, run: {n_run}"
    if figure.file == spec.name:
        return None, "node-scaled"
    return None, f"anchor: {figure.file}, run: {fname}"


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

    from common.atomic import atomic_write_json
    from common.provenance import cpu_model, machine_info
    from solver import load_default_book
    from solver.benchmarks import PONS_ANCHORS, anchor_for, read_set, sets_on_disk

    if limit < 0 or hard_limit < 0:
        raise ValueError(f"--limit and --hard-limit must be 0 (all) or more, got {limit} and {hard_limit}")
    if repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {repeats}")
    console = Console(width=160)
    all_configs = configurations()
    chosen = list(all_configs) if configs == "all" else [c.strip() for c in configs.split(",")]
    unknown = [c for c in chosen if c not in all_configs]
    if unknown:
        raise ValueError(f"unknown configuration(s) {unknown}; known: {list(all_configs)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(out.parent, os.W_OK):  # fail now, not after half an hour of solving
        raise PermissionError(f"cannot write to {out.parent}; pass --out somewhere writable")
    cpu = cpu_model()
    anchor = anchor_for(cpu)
    if anchor is None:
        console.print(f"CPU: {cpu}: no anchor for this CPU (Pons' C++ figures exist for "
                      f"{', '.join(a.cpu_model for a in PONS_ANCHORS)}); no ratios against his solver are shown")
    else:
        console.print(f"CPU: {cpu}; Pons' C++ figures measured on {anchor.cpu_model}: {anchor.source}")
    book = load_default_book(7, 6)
    report = {"machine": machine_info(), "protocol": __doc__.split("\n\n")[1], "configs": {}, "sets": {},
              "pons_anchor": None if anchor is None else {"cpu_model": anchor.cpu_model, "source": anchor.source}}
    for name in chosen:
        report["configs"][name] = {k: v for k, v in all_configs[name].items()}

    table = Table(title=f"Mean time per position (strong, tables zeroed before each position) on {cpu}")
    for col in ("set", "n", "config", "mean", "median", "mean nodes", "Mnodes/s", "agree", "Pons C++ mean", "speed-up"):
        table.add_column(col, justify="right")
    for spec, path in sets_on_disk():
        fname = path.name
        pairs = read_set(path)
        n_file = len(pairs)
        hard = spec.name == "Test_L1_R3"
        n = hard_limit if hard else limit
        if n:
            pairs = pairs[:n]
        figure = anchor.figures.get(spec.name) if anchor else None
        pons_us, how = pons_reference(figure, spec, fname, len(pairs), n_file) if anchor else (None, "no anchor for this CPU")
        runs = ["pons-part12", "default"] if hard else chosen
        runs = [c for c in runs if c in chosen]
        entry = {"file": fname, "label": spec.label, "n_file": n_file, "pons_mean_nodes": spec.pons_mean_nodes,
                 "pons_figure": None if figure is None else {"mean_us": figure.mean_us, "file": figure.file,
                                                              "positions": figure.positions},
                 "pons_comparison": how, "generated": fname != spec.name, "results": {}}
        for cname in runs + (["default+book"] if book is not None and "default" in runs else []):
            kwargs = all_configs["default" if cname == "default+book" else cname]
            slow_set = hard or spec.pons_mean_nodes * len(pairs) > 1e8  # over ~10 s a run: one run only
            with console.status(f"{spec.label}: {cname} on {len(pairs)} positions"):
                res = run_set(kwargs, pairs, 1 if slow_set else repeats, book=book if cname == "default+book" else None)
            reference = entry["results"].get("pons-part12")
            if how == "node-scaled" and reference:
                # his figure is on his own file, ours on a look-alike: scale his time per node by
                # our set's node count under his algorithm (the pons-part12 configuration)
                pons_us = figure.mean_us / spec.pons_mean_nodes * reference["mean_nodes"]
                entry["pons_estimated_mean_us_on_this_set"] = pons_us
            if pons_us is not None:
                res["speedup_vs_pons"] = pons_us / res["mean_us"]
            entry["results"][cname] = res
            ratio = f"{res['speedup_vs_pons']:.2f}x" if "speedup_vs_pons" in res else "-"
            table.add_row(spec.label, str(res["n"]), cname, fmt_time(res["mean_us"]), fmt_time(res["median_us"]),
                          f"{res['mean_nodes']:,.1f}", f"{res['nodes_per_s'] / 1e6:.1f}", f"{res['agree']}/{res['n']}",
                          fmt_time(pons_us) + (" (est.)" if how == "node-scaled" else "") if pons_us else how, ratio)
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
    # the whole benchmark process: every configuration's tables (one solver alive at a time) and the
    # compilation of one kernel per configuration, which dominates; bench_vs_pons.py measures a solve alone
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report["peak_rss_note"] = "this benchmark process, compiling one kernel per configuration included"
    console.print(f"peak memory of this process (kernel compiles included): {report['peak_rss_mb']:.0f} MiB")
    console.print(f"wrote {atomic_write_json(report, out)}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
