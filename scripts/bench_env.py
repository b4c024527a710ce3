"""Environment throughput: random legal moves per second, resets included, in one run.

Compares PettingZoo's own ``connect_four_v3`` (``env()`` and ``raw_env()``), our
PettingZoo env, our gymnasium env (each step is a learner move plus a random opponent
reply, both counted), our vectorised self-play env at several N (observations and masks
for all N boards computed every step) and OpenSpiel's C++ ``connect_four`` when
``open_spiel`` is installed. Moves per run: max(20,000, 200 N); median of the runs.

    python scripts/bench_env.py
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

import numpy as np
import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)

RESULTS = Path(__file__).resolve().parents[1] / "results" / "bench_env.json"


def run_aec(env, moves: int, seed: int) -> float:
    """Moves per second of a PettingZoo AEC env driven with agent_iter/last."""
    rng = random.Random(seed)
    env.reset(seed=seed)
    done = 0
    t0 = time.perf_counter()
    while done < moves:
        obs, reward, term, trunc, info = env.last()
        if term or trunc:
            env.reset()
            continue
        mask = obs["action_mask"]
        env.step(rng.choice([i for i in range(len(mask)) if mask[i]]))
        done += 1
    return done / (time.perf_counter() - t0)


def run_gym(env, moves: int, seed: int) -> float:
    rng = random.Random(seed)
    env.reset(seed=seed)
    done = 0
    t0 = time.perf_counter()
    while done < moves:
        mask = env.action_masks()
        before = env.state.moves
        _, _, term, trunc, info = env.step(rng.choice([i for i in range(len(mask)) if mask[i]]))
        done += env.state.moves - before  # the learner's move and the opponent's reply
        if term or trunc:
            env.reset()
    return done / (time.perf_counter() - t0)


def run_vec(n: int, moves: int, seed: int) -> float:
    from games.envs.vector import SelfPlayVecEnv

    env = SelfPlayVecEnv("connect4", num_envs=n, seed=seed)
    env.reset()
    rng = np.random.default_rng(seed)
    steps = max(1, moves // n)
    env.step((rng.random(env.masks.shape) * env.masks).argmax(axis=1))  # warm-up (compilation)
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step((rng.random(env.masks.shape) * env.masks).argmax(axis=1))
    return steps * n / (time.perf_counter() - t0)


def run_openspiel(moves: int, seed: int) -> float:
    import pyspiel

    rng = random.Random(seed)
    game = pyspiel.load_game("connect_four")
    state = game.new_initial_state()
    done = 0
    t0 = time.perf_counter()
    while done < moves:
        if state.is_terminal():
            state = game.new_initial_state()
            continue
        state.apply_action(rng.choice(state.legal_actions()))
        done += 1
    return done / (time.perf_counter() - t0)


@app.command()
def main(
    runs: int = typer.Option(5, help="runs per environment; the median is reported"),
    sizes: str = typer.Option("1,64,1024", help="numbers of boards of the vectorised env"),
    out: Path = typer.Option(RESULTS, help="JSON output"),
) -> None:
    from common.atomic import atomic_write_json
    from common.provenance import machine_info
    from pettingzoo.classic import connect_four_v3
    from rich.console import Console
    from rich.table import Table

    from games.envs.aec import pettingzoo_env
    from games.envs.single_agent import SolvedGameEnv

    console = Console(width=140)
    cases: list[tuple[str, object]] = [
        ("PettingZoo connect_four_v3.env()", lambda m, s: run_aec(connect_four_v3.env(), m, s)),
        ("PettingZoo connect_four_v3.raw_env()", lambda m, s: run_aec(connect_four_v3.raw_env(), m, s)),
        ("ours: PettingZoo AEC (games.pettingzoo_env)", lambda m, s: run_aec(pettingzoo_env("connect4"), m, s)),
        ("ours: gymnasium env vs random opponent", lambda m, s: run_gym(SolvedGameEnv("connect4", learner="first"), m, s)),
    ]
    for n in (int(x) for x in sizes.split(",")):
        cases.append((f"ours: vectorised self-play env, N={n}", lambda m, s, n=n: run_vec(n, max(m, 200 * n), s)))
    try:
        import pyspiel  # noqa: F401

        cases.append(("OpenSpiel connect_four (C++)", run_openspiel))
    except ImportError:
        console.print("open_spiel is not installed: its row is skipped (pip install open_spiel to add it)")
    results = {}
    for name, fn in cases:
        rates = [fn(20_000, seed) for seed in range(runs)]
        results[name] = {"moves_per_s": statistics.median(rates), "runs": rates}
        console.print(f"{name:48s} {statistics.median(rates):>14,.0f} moves/s")
    base = results["PettingZoo connect_four_v3.env()"]["moves_per_s"]
    table = Table(title="Connect Four 7x6, random legal moves per second (median of runs)")
    for col in ("environment", "moves/s", "vs PettingZoo env()"):
        table.add_column(col, justify="right")
    for name, r in results.items():
        r["ratio_vs_pettingzoo_env"] = r["moves_per_s"] / base
        table.add_row(name, f"{r['moves_per_s']:,.0f}", f"{r['ratio_vs_pettingzoo_env']:.1f}x")
    console.print(table)
    report = {"machine": machine_info(), "runs": runs, "results": results}
    console.print(f"wrote {atomic_write_json(report, out)}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
