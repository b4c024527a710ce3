"""Benchmark the execution engines: labelling throughput, per-item overhead and a simulated multi-node Ray run.

On the same positions and labels, with a fresh solution cache per configuration:

* labelling throughput (positions per second) of the local engine with 1 and 2 processes
  and of the Ray engine with 1 and 2 actors (a private local instance; its start-up time is
  reported apart);
* per-item overhead: no-op items through each engine (microseconds per item, the slope
  between a short and a long run, so that starting workers cancels out);
* what stays in the driver: drawing the sample and, for sweeps, extracting activations;
* a simulated multi-node run: a Ray cluster of one head and one worker node, both on this
  machine (one CPU each), labelling through ``--address``; the nodes each item ran on are
  counted to show that both did work.

Prints a table and writes results/bench_engine.json (with the CPU it ran on).

    python scripts/bench_engine.py
    python scripts/bench_engine.py --positions 200 --skip-cluster
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


def noop(item: int) -> int:
    return item


def node_of(item: int) -> str:
    """The Ray node this item ran on."""
    import ray

    return ray.get_runtime_context().get_node_id()


def _label(engine, jobs: int, positions_file: Path, n: int, out: Path, address: str | None = None) -> dict:
    from games.datasets import build_dataset

    started = time.perf_counter()
    path = build_dataset("connect4", n, out, seed=0, sources="file:1", positions_file=positions_file, min_ply=0,
                         concepts=["value", "good_moves", "win_in_1"], jobs=jobs, batch_size=max(1, n // 32),
                         solution_cache=out.parent / f"{out.name}-solutions.sqlite", progress=False, engine=engine,
                         address=address)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "positions_per_second": round(n / seconds, 1),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16]}


def _positions(game, n: int, min_ply: int, max_ply: int, seed: int) -> list[str]:
    """`n` distinct positions of random games at plies ``min_ply..max_ply`` (move strings)."""
    from games.datasets import draw_sample

    drawn = draw_sample(game, 12 * n, seed=seed, sources={"random": 1.0}, min_ply=min_ply, progress=False)
    chosen = [p.text for p in drawn.positions if p.ply <= max_ply][:n]
    if len(chosen) < n:
        raise typer.BadParameter(f"only {len(chosen)} positions at plies {min_ply}-{max_ply}; lower --positions")
    return chosen


def _driver_steps(game, n: int = 20000) -> dict:
    """What stays in the driver: drawing the sample (positions/s) and, for a sweep, one network's activations
    on 4,000 positions (seconds; the study's seed-0 agent when this checkout has it)."""
    import numpy as np
    import torch

    from games.datasets import draw_sample

    t0 = time.perf_counter()
    drawn = draw_sample(game, n, seed=2, sources={"random": 1.0}, min_ply=12, progress=False)
    out = {"sampling_positions_per_second": round(len(drawn.positions) / (time.perf_counter() - t0), 1)}
    checkpoint = Path("results/study_connect4/seed0/agent/step_002142208.zip")
    if checkpoint.exists():
        from agents.checkpoints import load_agent_for_game
        from agents.network import policy_forward, probe_layers
        from probes.activations import hooked_activations

        torch.set_num_threads(1)
        policy = load_agent_for_game(checkpoint, "connect4").model.policy
        layers = [info.name for info in probe_layers(policy)]
        inputs = np.stack([game.observation(p.state) for p in drawn.positions[:4000]]).astype(np.float32)
        t0 = time.perf_counter()
        hooked_activations(policy, layers, forward=policy_forward)(inputs)
        out["activations_seconds_per_network_4000_positions"] = round(time.perf_counter() - t0, 2)
        out["activation_layers"] = len(layers)
    return out


def _overhead(engine, n: int) -> float:
    """Seconds per no-op item: the slope between n/10 and n items (start-up costs cancel)."""
    times = []
    for count in (max(1, n // 10), n):
        t0 = time.perf_counter()
        done = sum(1 for _ in engine.map_unordered(noop, list(range(count))))
        assert done == count
        times.append(time.perf_counter() - t0)
    return (times[1] - times[0]) / (n - max(1, n // 10))


@app.command()
def main(
    positions: int = typer.Option(160, min=32, help="positions labelled per configuration"),
    min_ply: int = typer.Option(10, min=0, help="earliest ply of the positions (fewer stones cost the solver more)"),
    max_ply: int = typer.Option(13, min=0, help="latest ply of the positions: plies 10-13 cost the solver 0.02-0.5 s "
                                                "each, enough work per batch for steady-state throughput"),
    noop_items: int = typer.Option(2000, min=10, help="no-op items for the overhead measurement"),
    skip_cluster: bool = typer.Option(False, help="skip the simulated multi-node run"),
    out: Path = typer.Option(Path("results/bench_engine.json"), help="JSON output"),
) -> None:
    import games
    from rich.console import Console
    from rich.table import Table

    from common.atomic import atomic_write_text
    from common.engine import LocalEngine, RayEngine
    from common.outputs import check_writable
    from common.provenance import cpu_model
    from games.datasets import forget_worker_games

    logging.basicConfig(level=logging.WARNING)
    check_writable(out, "--out")
    game = games.get("connect4")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        if max_ply < min_ply:
            raise typer.BadParameter(f"--max-ply ({max_ply}) is below --min-ply ({min_ply})")
        chosen = _positions(game, positions, min_ply, max_ply, seed=0)
        positions_file = tmp_path / "positions.txt"
        positions_file.write_text("\n".join(chosen) + "\n")
        n = len(chosen)
        # compile the solver's kernels once, outside every timing, on other positions (no table hits)
        warm_file = tmp_path / "warm.txt"
        warm_file.write_text("\n".join(_positions(game, 32, min_ply, max_ply, seed=1)) + "\n")
        _label("local", 1, warm_file, 32, tmp_path / "warm")
        rows = []
        for name, jobs in (("local", 1), ("local", 2), ("ray", 1), ("ray", 2)):
            forget_worker_games()  # in-process labelling starts with a cold transposition table too
            start_seconds = 0.0
            if name == "ray":
                t0 = time.perf_counter()
                engine = RayEngine(jobs)
                start_seconds = time.perf_counter() - t0
            else:
                engine = LocalEngine(jobs)
            try:
                result = _label(engine, jobs, positions_file, n, tmp_path / f"{name}-{jobs}")
                per_item = _overhead(engine, noop_items)
            finally:
                engine.close()
            rows.append({"engine": name, "workers": jobs, "positions": n, **result,
                         "engine_start_seconds": round(start_seconds, 2),
                         "noop_microseconds_per_item": round(per_item * 1e6, 1)})
        cluster_row = None
        if not skip_cluster:
            from ray.cluster_utils import Cluster

            t0 = time.perf_counter()
            cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
            cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            start_seconds = time.perf_counter() - t0
            engine = RayEngine(2, address=cluster.address)
            try:
                result = _label(engine, 2, positions_file, n, tmp_path / "cluster", address=cluster.address)
                nodes = list(engine.map_unordered(node_of, list(range(40))))
            finally:
                engine.close()
                cluster.shutdown()
            cluster_row = {"engine": "ray, 2 nodes on this machine (1 CPU each)", "workers": 2, "positions": n, **result,
                           "engine_start_seconds": round(start_seconds, 2), "nodes_used": len(set(nodes))}
    driver = _driver_steps(game)
    same = len({r["sha256"] for r in rows + ([cluster_row] if cluster_row else [])}) == 1
    table = Table(title=f"labelling {n} Connect Four positions (plies {min_ply}-{max_ply}; value, good_moves, win_in_1) "
                        f"on {cpu_model()}")
    for column in ("engine", "workers", "positions/s", "seconds", "engine start s", "no-op us/item", "nodes used"):
        table.add_column(column)
    for r in rows + ([cluster_row] if cluster_row else []):
        table.add_row(r["engine"], str(r["workers"]), f"{r['positions_per_second']:.1f}", f"{r['seconds']:.1f}",
                      f"{r['engine_start_seconds']:.1f}", str(r.get("noop_microseconds_per_item", "-")),
                      str(r.get("nodes_used", "-")))
    console = Console()
    console.print(table)
    console.print(f"identical datasets from every engine: {same}")
    console.print("driver-side steps (one process, whatever the engine): " +
                  ", ".join(f"{k} {v}" for k, v in driver.items()))
    record = {"cpu": cpu_model(), "positions": n, "min_ply": min_ply, "max_ply": max_ply, "rows": rows,
              "driver_steps": driver, "cluster": cluster_row,
              "identical_datasets": same, "command": "python scripts/bench_engine.py"}
    atomic_write_text(json.dumps(record, indent=1), out)
    console.print(f"wrote {out}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
