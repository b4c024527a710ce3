"""The whole pipeline on small defaults: train an agent, label positions, sweep probes, write the report.

Each step is one of the project's commands and each resumes, so a killed pipeline picks
up where it stopped:

1. ``train_agent.py`` (self-play MaskablePPO; Connect Four's default budget, 33-38
   minutes on 2 cores, evaluated against the solver at every checkpoint);
2. ``make_dataset.py``: positions from random play and from the agent's own self-play,
   labelled with every concept (exact solver labels included; from ``--min-ply`` stones on,
   where the solver is fast);
3. ``probe_sweep.py``: every checkpoint x every named layer x every concept, with the
   control task, shuffled labels, random-weight networks, the raw input, TCAV;
4. ``probe_report.py``: Markdown and PNGs.

With ``--reference`` it also trains the reference network (the same architecture on
solver labels) and sweeps it beside the agent. Every default depends on the game
(`agents.pipeline.GAME_DEFAULTS`): Connect Four labels positions from 14 stones on,
tic-tac-toe and Nim from the empty board. Ctrl-C or ``kill`` stops the running step with
its worker processes; rerun the same command to continue.

    python scripts/pipeline.py                      # what `make demo` runs
    python scripts/pipeline.py --timesteps 200000 --positions 1500   # a quick look
    python scripts/pipeline.py --game tictactoe     # a few minutes
    python scripts/pipeline.py --seeds 0,1,2        # the three-seed study (runs/study-connect4/report.md)

With ``--seeds`` the pipeline runs once per seed (runs/GAME-seedS) and then writes the study
across the seeds (``probe_report.py SWEEPS... --out``): a concept counts as represented beyond
the controls only when it is in every seed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer

from agents.pipeline import GAME_DEFAULTS, STEP_SCRIPTS

C4 = GAME_DEFAULTS["connect4"]
app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@app.command()
def main(
    run: Optional[Path] = typer.Option(None, help="agent run folder, resumed if it holds checkpoints "
                                                  "[default: runs/GAME-seedSEED]"),
    game: str = typer.Option("connect4", help="registered game: connect4, tictactoe, nim"),
    timesteps: Optional[int] = typer.Option(None, help="agent training budget [default: the game's, "
                                                       "connect4 4,000,000]"),
    positions: Optional[int] = typer.Option(None, help=f"labelled positions for the probes [default: per game, "
                                                       f"connect4 {C4.positions}, tictactoe "
                                                       f"{GAME_DEFAULTS['tictactoe'].positions}]"),
    min_ply: Optional[int] = typer.Option(None, help=f"fewest moves played in a probe position [default: per game, "
                                                     f"connect4 {C4.min_ply} (the solver labels them fast), "
                                                     f"tictactoe and nim 0]"),
    reference: bool = typer.Option(False, "--reference", help="also train and sweep the reference network"),
    reference_positions: Optional[int] = typer.Option(None, help="solver-labelled positions for the reference "
                                                                 f"network [default: per game, connect4 "
                                                                 f"{C4.reference_positions}]"),
    jobs: int = typer.Option(2, help="processes for labelling and sweeping"),
    seed: int = typer.Option(0, help="seed of every step"),
    seeds: Optional[str] = typer.Option(None, help="comma-separated seeds (e.g. 0,1,2): one pipeline per seed, then "
                                                   "the study across them; --run and --seed do not apply"),
    study_out: Optional[Path] = typer.Option(None, help="folder of the study across --seeds "
                                                        "[default: runs/study-GAME]"),
    step_args: list[str] = typer.Option([], help="extra options for one step's script, SCRIPT=OPTIONS, e.g. "
                                                 "'probe_sweep=--tcav-runs 0' or 'train_agent=--eval-games 20'; "
                                                 f"scripts: {', '.join(STEP_SCRIPTS)}; repeatable"),
) -> None:
    from common.cli import fail

    from agents.pipeline import PipelineSettings, StepFailed, Stopped, parse_step_args, pipeline_steps, run_step
    from agents.pipeline import sweep_folder

    seed_list = _parse_seeds(seeds) if seeds is not None else [seed]
    if seeds is not None and run is not None:
        raise typer.BadParameter("--run names one agent's folder; with --seeds each seed gets runs/GAME-seedS")
    every = [PipelineSettings.resolve(game, run, timesteps, positions, min_ply, reference, reference_positions, jobs,
                                      s).with_extra(**parse_step_args(step_args)) for s in seed_list]
    study = Path(study_out) if study_out is not None else Path("runs") / f"study-{game}"
    if seeds is not None:
        from common.outputs import check_writable

        check_writable(study / "report.md", "--study-out")
    start = time.perf_counter()
    timing: list[dict] = []
    for settings in every:
        prefix = f"[seed {settings.seed}] " if seeds is not None else ""
        for step in pipeline_steps(settings):
            print(f"\n=== {prefix}{step.title}\n$ {' '.join(step.args)}", flush=True)
            t0 = time.perf_counter()
            try:
                run_step(step)
            except StepFailed as exc:
                fail(str(exc))
            except Stopped as exc:
                fail(str(exc), code=128 + exc.signum)
            timing.append({"seed": settings.seed, "step": step.title, "seconds": round(time.perf_counter() - t0, 1)})
            print(f"=== {prefix}{step.title}: {time.perf_counter() - t0:.0f} s", flush=True)
    if seeds is None:
        report = sweep_folder(every[0]) / "report.md"
    else:
        from agents.probing import report_study

        print(f"\n=== the study across seeds {', '.join(map(str, seed_list))}", flush=True)
        t0 = time.perf_counter()
        report = report_study([sweep_folder(s) for s in every], study)
        timing.append({"seed": None, "step": "study across seeds", "seconds": round(time.perf_counter() - t0, 1)})
    _write_timing(report.parent / "timing.json", timing, time.perf_counter() - start)
    print(f"\npipeline done in {(time.perf_counter() - start) / 60:.1f} min; report: {report}")


def _write_timing(path: Path, steps: list[dict], total: float) -> None:
    """Seconds per step of this invocation (steps that resumed finished work take seconds), beside the report."""
    from common.atomic import atomic_write_json
    from common.provenance import machine_info

    atomic_write_json({"command": "python scripts/pipeline.py " + " ".join(sys.argv[1:]), "steps": steps,
                       "total_seconds": round(total, 1), "machine": machine_info()}, path)


def _parse_seeds(text: str) -> list[int]:
    from agents.multiseed import parse_seeds

    try:
        return parse_seeds(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
