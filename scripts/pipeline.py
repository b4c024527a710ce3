"""The whole pipeline on small defaults: train an agent, label positions, sweep probes, write the report.

Each step is one of the project's commands and each resumes, so a killed pipeline picks
up where it stopped:

1. ``train_agent.py`` (self-play MaskablePPO; Connect Four's default budget, about 30
   minutes on 2 cores, evaluated against the solver at every checkpoint);
2. ``make_dataset.py``: positions from random play and from the agent's own self-play,
   labelled with every concept (exact solver labels included; from ``--min-ply`` stones on,
   where the solver is fast);
3. ``probe_sweep.py``: every checkpoint x every named layer x every concept, with the
   control task, shuffled labels, random-weight networks, the raw input, TCAV;
4. ``probe_report.py``: Markdown and PNGs.

With ``--reference`` it also trains the reference network (the same architecture on
solver labels) and sweeps it beside the agent.

    python scripts/pipeline.py                      # what `make demo` runs
    python scripts/pipeline.py --timesteps 200000 --positions 1500   # a quick look
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)

SCRIPTS = Path(__file__).resolve().parent


def _step(title: str, args: list[str]) -> None:
    print(f"\n=== {title}\n$ {' '.join(args)}", flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True)
    print(f"=== {title}: {time.perf_counter() - start:.0f} s", flush=True)


@app.command()
def main(
    run: Path = typer.Option(Path("runs") / "connect4-seed0", help="agent run folder (resumed if it exists)"),
    game: str = typer.Option("connect4", help="registered game"),
    timesteps: Optional[int] = typer.Option(None, help="agent training budget [default: the game's, "
                                                       "connect4 4,000,000]"),
    positions: int = typer.Option(4000, help="labelled positions for the probes"),
    min_ply: int = typer.Option(14, help="fewest stones of a probe position (the solver labels them fast)"),
    reference: bool = typer.Option(False, "--reference", help="also train and sweep the reference network"),
    reference_positions: int = typer.Option(20000, help="solver-labelled positions for the reference network"),
    jobs: int = typer.Option(2, help="processes for labelling and sweeping"),
    seed: int = typer.Option(0, help="seed of every step"),
) -> None:
    s = str
    start = time.perf_counter()
    train = [s(SCRIPTS / "train_agent.py"), "--game", game, "--out", s(run), "--seed", s(seed)]
    if timesteps is not None:
        train += ["--total-timesteps", s(timesteps)]
    if (run / "config.json").exists():
        train.append("--resume")
    _step("1. train the agent", train)
    data = run / f"probe-data-n{positions}"
    _step("2. label positions", [s(SCRIPTS / "make_dataset.py"), "--game", game, "--out", s(data), "--n", s(positions),
                                 "--min-ply", s(min_ply), "--sources", "random:0.5,agent-0:0.5", "--agent", s(run),
                                 "--jobs", s(jobs), "--seed", s(seed)])
    runs = [run]
    if reference:
        ref_data = run.parent / f"reference-data-n{reference_positions}"
        ref_run = run.parent / f"{run.name}-reference"
        _step("2b. label positions for the reference network",
              [s(SCRIPTS / "make_dataset.py"), "--game", game, "--out", s(ref_data), "--n", s(reference_positions), "--min-ply", "16",
               "--sources", "random:1", "--concepts", "value,good_moves", "--jobs", s(jobs), "--seed", s(seed + 1)])
        if not any((ref_run / "checkpoints").glob("step_*.zip")):
            _step("2c. train the reference network", [s(SCRIPTS / "train_reference.py"), "--game", game,
                                                      "--dataset", s(ref_data),
                                                      "--out", s(ref_run), "--seed", s(seed), "--quiet"])
        runs.append(ref_run)
    sweep = run / f"sweep-{data.name}"
    sweep_args = [s(SCRIPTS / "probe_sweep.py"), "--dataset", s(data), "--out", s(sweep), "--max-positions",
                  s(positions), "--jobs", s(jobs), "--seed", s(seed)]
    for r in runs:
        sweep_args += ["--run", s(r)]
    _step("3. probe sweep", sweep_args)
    _step("4. report", [s(SCRIPTS / "probe_report.py"), s(sweep)])
    print(f"\npipeline done in {(time.perf_counter() - start) / 60:.1f} min; report: {sweep / 'report.md'}")


if __name__ == "__main__":
    app()
