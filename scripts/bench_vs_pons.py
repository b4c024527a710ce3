"""Our solver and Pascal Pons' C++ solver side by side, on this machine, on the same positions.

Protocol: both solvers strong, no book, transposition tables reset before every position
(untimed), each timing its own search (ours: CPU time-stamp counter; his: gettimeofday,
as his ``main.cpp`` does). Per set, the two run interleaved for `--rounds` rounds (the
order alternating) and each keeps the minimum over rounds of its mean time per position;
every score is checked against the file's and the other solver's. Sets: Pons' six 7x6
sets (Middle-Medium and Begin-Hard are this project's look-alikes, ``data/connect4``),
then random positions on other board sizes (solved by both; his solver rebuilt per size).
Peak memory (max resident set size) of each solver's process on Begin-Medium is measured
in fresh processes. The JSON (results/bench_vs_pons.json) records the CPU, and the ratios
are only ever for this CPU; `solver.benchmarks.PONS_ANCHORS` keeps per-CPU figures.

Pons' solver is not shipped: clone it and check out tag part12, then

    python scripts/bench_vs_pons.py --pons-source ~/src/connect4            # about 10 minutes
    python scripts/bench_vs_pons.py --pons-source ~/src/connect4 --rounds 1 --sizes '' --limit 100   # a quick look
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "bench_vs_pons.json"
DEFAULT_BUILD = Path.home() / ".cache" / "solvedlens" / "pons-part12"
SET_LIMITS = {"Test_L1_R2": 100, "Test_L1_R3": 10}  # the protocol: first 100 Begin-Medium, first 10 Begin-Hard


def random_positions(n: int, width: int, height: int, seed: int) -> list[str]:
    """`n` distinct random openings on a W x H board with 2 to W*H - 6 stones, the game not over and
    no immediate win for the side to move (like Pons' sets). Deterministic by seed."""
    from solver.benchmarks import random_opening

    rng = random.Random(seed)
    kept: list[str] = []
    seen: set[int] = set()
    for _ in range(200 * n):
        if len(kept) == n:
            break
        pos = random_opening(rng, rng.randint(2, width * height - 6), width, height)
        if pos is None or pos.is_terminal() or pos.can_win_next() or pos.key() in seen:
            continue
        seen.add(pos.key())
        kept.append(pos.history)
    if len(kept) < n:
        raise RuntimeError(f"found only {len(kept)} of {n} random {width}x{height} positions")
    return kept


# Linux keeps the highest resident size of a process across fork and exec, so a child of
# this (big) process would report at least our own peak: a small fresh interpreter starts
# the measured command and reports the command's own peak from wait4.
RSS_WRAPPER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(proc.pid, 0)
sys.stderr.write(f"\\nPEAK_RSS_KB={usage.ru_maxrss} EXIT={os.waitstatus_to_exitcode(status)}\\n")
"""


def peak_rss_mb(cmd: list[str], stdin_text: str = "") -> float:
    """Run `cmd` to completion; its own peak resident set size in MiB."""
    done = subprocess.run([sys.executable, "-c", RSS_WRAPPER, *cmd], input=stdin_text, capture_output=True, text=True)
    marker = done.stderr.rsplit("PEAK_RSS_KB=", 1)
    if len(marker) != 2:
        raise RuntimeError(f"{' '.join(cmd[:3])} could not be measured: {done.stderr[-800:]}")
    kb, code = marker[1].split()
    if code != "EXIT=0":
        raise RuntimeError(f"{' '.join(cmd[:3])} failed ({code}): {marker[0][-800:]}")
    return int(kb) / 1024


OUR_MEMORY_CHILD = """
import sys
from solver import Solver
moves = sys.stdin.read().split()
solver = Solver({width}, {height})
if moves:
    solver.solve_many(moves, reset_each=True)
"""


def compare(solver, binary: Path, moves: list[str], expected: list[int] | None, rounds: int) -> dict:
    """Interleaved rounds of both solvers on `moves`; min over rounds of each one's mean time per position."""
    from solver.peer import run_pons

    ours_means, pons_means = [], []
    ours_scores = pons_scores = ours_nodes = pons_nodes = None
    solver.solve_many(moves[:max(1, min(20, len(moves) // 10))], reset_each=True)  # untimed warm-up: pages faulted in
    for r in range(rounds):
        for who in (("ours", "pons") if r % 2 == 0 else ("pons", "ours")):
            if who == "ours":
                scores, stats = solver.solve_many(moves, reset_each=True)
                ours_means.append(float(stats.seconds.mean()) * 1e6)
                ours_scores, ours_nodes = scores, stats.nodes
            else:
                run = run_pons(binary, moves)
                pons_means.append(float(run.micros.mean()))
                pons_scores, pons_nodes = run.scores, run.nodes
    disagree = [m for m, a, b in zip(moves, ours_scores, pons_scores) if a != b]
    if disagree:
        raise RuntimeError(f"the solvers disagree on {len(disagree)} positions, e.g. {disagree[:3]}")
    wrong = 0 if expected is None else sum(int(a) != b for a, b in zip(ours_scores, expected))
    ours, pons = min(ours_means), min(pons_means)
    return {
        "n": len(moves), "rounds": rounds, "ours_mean_us": ours, "pons_mean_us": pons, "speedup": pons / ours,
        "ours_mean_us_rounds": ours_means, "pons_mean_us_rounds": pons_means,
        "ours_mean_nodes": float(ours_nodes.mean()), "pons_mean_nodes": float(pons_nodes.mean()),
        "agree_with_each_other": len(moves), "wrong_vs_file": wrong,
    }


def fmt_time(us: float) -> str:
    return f"{us:.2f} us" if us < 1000 else (f"{us / 1000:.2f} ms" if us < 1e6 else f"{us / 1e6:.2f} s")


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            w, h = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise typer.BadParameter(f"board sizes are WxH separated by commas (e.g. 6x5,5x4), got {part!r}",
                                     param_hint="--sizes") from None
        if w < 4 and h < 4 or w >= 10 or w * (h + 1) > 64 or min(w, h) < 1:
            raise typer.BadParameter(f"{part}: both solvers need width < 10, W*(H+1) <= 64 and room for four in a row",
                                     param_hint="--sizes")
        sizes.append((w, h))
    return sizes


@app.command()
def main(
    pons_source: Path = typer.Option(..., help="Pons' solver sources at git tag part12 (github.com/PascalPons/connect4)"),
    rounds: int = typer.Option(5, help="interleaved rounds per set (min over rounds is kept); Begin-Hard runs one"),
    limit: int = typer.Option(0, help="use only the first N positions of each 7x6 set (0: the issue's protocol)"),
    sizes: str = typer.Option("6x5,5x4,6x4", help="other board sizes, WxH comma-separated ('' for none)"),
    size_positions: int = typer.Option(300, help="random positions per other board size"),
    build_dir: Path = typer.Option(DEFAULT_BUILD, help="where Pons' solver is built (one binary per board size)"),
    out: Path = typer.Option(RESULTS, help="JSON output"),
) -> None:
    from rich.console import Console
    from rich.table import Table

    from common.atomic import atomic_write_json
    from common.outputs import check_writable
    from common.provenance import cpu_model, machine_info
    from solver import Solver
    from solver.benchmarks import find_set_file, read_set, sets_on_disk
    from solver.peer import PONS_CXXFLAGS, build_pons, check_pons_source

    if rounds < 1:
        raise typer.BadParameter(f"must be at least 1, got {rounds}", param_hint="--rounds")
    if limit < 0 or size_positions < 1:
        raise typer.BadParameter("--limit must be >= 0 and --size-positions >= 1")
    board_sizes = parse_sizes(sizes)
    check_pons_source(pons_source)
    check_writable(out)
    console = Console(width=150)
    cpu = cpu_model()
    console.print(f"CPU: {cpu} ({os.cpu_count()} cores); Pons' solver from {pons_source}, g++ {' '.join(PONS_CXXFLAGS)}")
    report = {"machine": machine_info(), "protocol": __doc__.split("\n\n")[1], "pons_source": str(pons_source),
              "pons_cxxflags": list(PONS_CXXFLAGS), "sets": {}, "sizes": {}, "memory": {}}
    table = Table(title=f"Mean time per position, min over rounds (strong, no book, tables reset) on {cpu}")
    for col in ("set", "n", "ours", "Pons C++", "Pons / ours", "nodes ours", "nodes Pons"):
        table.add_column(col, justify="right")

    def add_row(label: str, res: dict) -> None:
        table.add_row(label, str(res["n"]), fmt_time(res["ours_mean_us"]), fmt_time(res["pons_mean_us"]),
                      f"{res['speedup']:.2f}x", f"{res['ours_mean_nodes']:,.0f}", f"{res['pons_mean_nodes']:,.0f}")
        console.print(f"{label:22s} ours {fmt_time(res['ours_mean_us']):>10s}  Pons {fmt_time(res['pons_mean_us']):>10s}"
                      f"  {res['speedup']:.2f}x")

    binary = build_pons(pons_source, 7, 6, build_dir)
    solver = Solver(7, 6)
    for spec, path in sets_on_disk():
        fname = path.name
        pairs = read_set(path)
        n = limit or SET_LIMITS.get(spec.name, len(pairs))
        pairs = pairs[:n]
        moves = [m for m, _ in pairs]
        set_rounds = 1 if spec.name == "Test_L1_R3" else rounds
        with console.status(f"{spec.label}: {len(moves)} positions x {set_rounds} rounds"):
            res = compare(solver, binary, moves, [s for _, s in pairs], set_rounds)
        res.update(file=fname, label=spec.label)
        report["sets"][spec.name] = res
        add_row(f"{spec.label} ({fname})", res)
    for width, height in board_sizes:
        with console.status(f"{width}x{height}: building Pons' solver, drawing {size_positions} positions"):
            sized_binary = build_pons(pons_source, width, height, build_dir)
            moves = random_positions(size_positions, width, height, seed=0)
        with console.status(f"{width}x{height}: {len(moves)} positions x {rounds} rounds"):
            res = compare(Solver(width, height), sized_binary, moves, None, rounds)
        res["positions"] = f"{size_positions} random openings with 2..{width * height - 6} stones (seed 0)"
        report["sizes"][f"{width}x{height}"] = res
        add_row(f"{width}x{height} random", res)
    console.print(table)

    medium = [m for m, _ in read_set(find_set_file("Test_L1_R2"))[:SET_LIMITS["Test_L1_R2"]]]
    with console.status("peak memory: fresh processes on Begin-Medium"):
        child = [sys.executable, "-c", OUR_MEMORY_CHILD.format(width=7, height=6)]
        env_note = "python -c 'Solver(7, 6).solve_many(moves, reset_each=True)'"
        ours_idle = peak_rss_mb(child, "")
        ours_peak = peak_rss_mb(child, "\n".join(medium))
        pons_peak = peak_rss_mb([str(binary)], "".join(m + "\n" for m in medium))
    report["memory"] = {"positions": f"Test_L1_R2, first {len(medium)}", "ours_process": env_note,
                        "ours_peak_mb": ours_peak, "ours_idle_peak_mb": ours_idle, "pons_peak_mb": pons_peak,
                        "ours_tables_mb": sum(t.nbytes for t in solver._tables) / 2**20}
    console.print(f"peak memory on Begin-Medium: ours {ours_peak:.0f} MB (the same process solving nothing: "
                  f"{ours_idle:.0f} MB), Pons {pons_peak:.0f} MB")
    report["machine"]["loadavg_end"] = os.getloadavg()
    report["date_end"] = time.strftime("%Y-%m-%d %H:%M:%S")
    console.print(f"wrote {atomic_write_json(report, out)}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
