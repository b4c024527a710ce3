"""Measure the solver's cold start: the first solve in a fresh process with an empty numba cache, then warm.

Each measurement is a new Python process (``from solver import Solver; Solver().solve(POSITION)``)
with ``NUMBA_CACHE_DIR`` pointing at a fresh temporary folder: the first process compiles
the kernels (cold), the next ones load them from that folder (warm). The child reports
its import, kernel (compile or cache load) and solve times; the parent records the wall
time and whether the first-run message was shown. JSON in results/bench_coldstart.json.

    python scripts/bench_coldstart.py                 # one cold and two warm processes (about 2 minutes)
    python scripts/bench_coldstart.py --warm 5 --out runs/coldstart.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results" / "bench_coldstart.json"

CHILD = """
import json, sys, time
t0 = time.perf_counter()
from solver import Solver
t1 = time.perf_counter()
solver = Solver()
t2 = time.perf_counter()
score = solver.solve(sys.argv[1])
t3 = time.perf_counter()
print(json.dumps({"score": score, "import_s": t1 - t0, "kernel_s": t2 - t1, "solve_s": t3 - t2}))
"""

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


def measure(position: str, cache_dir: str, timeout_s: float) -> dict:
    """One child process: its own timings, its wall time and whether it printed the compile message."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, position], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=timeout_s)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"the measuring process failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    return {**row, "wall_s": wall, "compile_message": "compiling the" in done.stderr}


@app.command()
def main(
    position: str = typer.Option("4453", help="the position solved (move string)"),
    warm: int = typer.Option(2, help="warm processes after the cold one (same cache folder)"),
    timeout_s: float = typer.Option(600.0, help="give up on a process after this many seconds"),
    out: Path = typer.Option(RESULTS, help="JSON output"),
) -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    from common.atomic import atomic_write_json
    from common.provenance import machine_info

    from games.connect4 import Position

    if warm < 0:
        raise ValueError(f"--warm must be 0 or more, got {warm}")
    Position.from_moves(position)  # a bad move string fails here, before minutes of compiling
    out.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(out.parent, os.W_OK):
        raise PermissionError(f"cannot write to {out.parent}; pass --out somewhere writable")
    report = {"machine": machine_info(), "position": position, "protocol": __doc__.split("\n\n")[1]}
    with tempfile.TemporaryDirectory(prefix="numba-cold-") as cache_dir:
        typer.echo(f"cold process (empty NUMBA_CACHE_DIR {cache_dir}) ...", err=True)
        report["cold"] = measure(position, cache_dir, timeout_s)
        report["warm"] = []
        for i in range(warm):
            typer.echo(f"warm process {i + 1}/{warm} ...", err=True)
            report["warm"].append(measure(position, cache_dir, timeout_s))
    report["machine"]["loadavg_end"] = os.getloadavg()
    for name, row in [("cold", report["cold"])] + [(f"warm {i + 1}", r) for i, r in enumerate(report["warm"])]:
        typer.echo(f"{name:7s} wall {row['wall_s']:6.1f} s = import {row['import_s']:.1f} + kernel {row['kernel_s']:.1f}"
                   f" + solve {row['solve_s']:.1f} (+ interpreter start); message shown: {row['compile_message']}")
    typer.echo(f"wrote {atomic_write_json(report, out)}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
