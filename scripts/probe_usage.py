"""Does the agent use what it represents? Interventions where each concept lives, judged by the solver.

For every network (by default the final agent of each seed of a recorded study) and every
concept that names moves (default win_in_1 and forced_block; lost_in_1 also names columns,
but in a lost position every move loses, so the solver cannot judge its moves): erase and steer the concept
per square at each spatial layer and along a whole-board direction at each flat layer,
against random directions and random squares of equal size; patch each layer, and each
square, from the member of solver-verified minimal pairs with the concept into the member
without it. Effects are measured on the study's held-out test games (good-move rate,
perfect-move rate, P(concept move), value sign) with 95% bootstrap intervals, and joined
with the study's deltas into a represented-vs-used table per network.

Writes OUT/NETWORK/CONCEPT.json (one per network and concept; an interrupted run resumes
from them), OUT/report.md, OUT/usage.csv, OUT/usage-grid.png, OUT/erasure.png and
OUT/patching-maps.png and OUT/patching-regions.png.

    python scripts/probe_usage.py --study results/study_connect4 --out results/usage_connect4
    python scripts/probe_usage.py --study results/study_connect4 --network runs/connect4-reference \\
        --network-dataset results/study_connect4/seed0/dataset --out results/usage_connect4
    python scripts/probe_usage.py --network runs/connect4-seed0 --network-dataset DATA --out runs/usage
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)

DEFAULT_CONCEPTS = "win_in_1,forced_block"


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"--alphas must be comma-separated numbers, got {text!r}") from exc


@app.command()
def main(
    out: Path = typer.Option(..., help="output folder (resumes from the results already there)"),
    study: Optional[Path] = typer.Option(None, help="a recorded study folder (seedS/agent, seedS/dataset, "
                                                    "seedS/sweep, deltas.csv.gz): its final agents are tested"),
    network: List[Path] = typer.Option([], help="another checkpoint or run folder to test (repeatable), e.g. the "
                                                "reference network"),
    network_dataset: Optional[Path] = typer.Option(None, help="labelled dataset the --network checkpoints are measured "
                                                              "on [default: the study's first seed's]"),
    concepts: str = typer.Option(DEFAULT_CONCEPTS, help="comma-separated binary concepts that name moves"),
    alphas: str = typer.Option("-4,-2,2,4", help="steering strengths, in sd of the activations along the direction"),
    random_controls: int = typer.Option(5, help="random directions and random-square draws per intervention"),
    n_boot: int = typer.Option(1000, help="bootstrap replicates per interval"),
    parents: int = typer.Option(3000, help="random parent positions searched for minimal pairs"),
    pairs: int = typer.Option(200, help="minimal pairs kept per concept (those where the optimal move changes)"),
    effect: float = typer.Option(0.02, help="'used': erasure's excess drop in P(concept move) or value-sign accuracy"),
    restored: float = typer.Option(0.2, help="'used': fraction restored by patching the concept's squares beyond random"),
    seed: int = typer.Option(0, help="seed of the split (the study's), controls, pairs and bootstrap"),
    progress: bool = typer.Option(True, "--progress/--quiet", help="progress bars"),
) -> None:
    import pandas as pd
    import torch
    from rich.console import Console

    from agents.checkpoints import load_agent_for_game
    from agents.connect4.usage import concept_columns, judged_positions, minimal_pair_batch
    from agents.usage import UsageInputs, UsageSettings, chosen_networks, run_usage
    from common.atomic import atomic_write_json
    from common.outputs import prepare_output
    from common.provenance import cache_dir, cpu_model
    from games.datasets import read_dataset
    from probes.interventions import UsageThresholds
    from probes.usage_report import write_usage_report

    try:
        settings = UsageSettings(alphas=tuple(_floats(alphas)), n_random=random_controls, n_boot=n_boot, seed=seed,
                                 n_parents=parents, max_pairs=pairs)
        thresholds = UsageThresholds(effect=effect, restored=restored)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if study is None and not network:
        raise typer.BadParameter("name a --study folder, or --network checkpoints with a --network-dataset")
    try:
        networks = chosen_networks(study, network, network_dataset)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--study / --network / --network-dataset") from exc
    out = prepare_output(out, "", overwrite=True)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    console = Console()
    wanted = [c.strip() for c in concepts.split(",") if c.strip()]
    deltas = None
    if study is not None and (study / "deltas.csv.gz").exists():
        deltas = pd.read_csv(study / "deltas.csv.gz")
    started = time.perf_counter()
    pair_cache: dict[str, tuple] = {}
    datasets: dict[Path, object] = {}
    results: dict[str, dict] = {}
    timing = []
    for spec in networks:
        try:
            loaded = load_agent_for_game(spec.checkpoint, "connect4")
        except (FileNotFoundError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--network / --study") from exc
        game = loaded.game
        for concept in wanted:
            try:
                concept_columns(game, concept)
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="--concepts") from exc
        if spec.dataset not in datasets:
            try:
                datasets[spec.dataset] = read_dataset(spec.dataset)
            except (FileNotFoundError, ValueError) as exc:
                raise typer.BadParameter(str(exc), param_hint="--network-dataset") from exc
        dataset = datasets[spec.dataset]

        def make_inputs(concept: str, dataset=dataset, game=game) -> UsageInputs:
            if concept not in pair_cache:
                pair_cache[concept] = minimal_pair_batch(game, concept, settings.n_parents, settings.max_pairs, seed,
                                                         solution_cache=cache_dir() / "solutions.sqlite")
            batch, records = pair_cache[concept]
            return UsageInputs(judged_positions(game, dataset.positions, concept), batch, records)

        tick = time.perf_counter()
        meta = {"checkpoint": str(loaded.path), "timestep": int(loaded.model.num_timesteps), "role": spec.role,
                "dataset": str(spec.dataset), "run": spec.run}
        try:
            results[spec.name] = run_usage(loaded.model.policy, spec.name, wanted, make_inputs, out, settings, meta,
                                           progress)
        except ValueError as exc:
            raise typer.BadParameter(f"{spec.name}: {exc}") from exc
        done = results[spec.name].values()
        timing.append({"network": spec.name, "seconds_this_call": round(time.perf_counter() - tick, 1),
                       "tests_seconds": round(sum(r.get("seconds", 0.0) for r in done), 1),
                       "inputs_seconds": round(sum(r.get("inputs_seconds", 0.0) for r in done), 1)})
        console.print(f"{spec.name}: done in {timing[-1]['seconds_this_call']:.0f} s (tests {timing[-1]['tests_seconds']:.0f} s "
                      f"and inputs {timing[-1]['inputs_seconds']:.0f} s when computed)")
    seeds = [s.name for s in networks if s.role == "agent" and s.run is not None]
    notes = [f"Networks: {', '.join(f'{s.name} ({s.role}, {s.checkpoint})' for s in networks)}.",
             "Positions: each network's labelled dataset, split by game as in the study (60/20/20); erasers and "
             "directions are fitted on the train games, effects measured on the test games where the concept holds.",
             f"Minimal pairs: sibling positions one disc apart from {settings.n_parents} random parents (ply >= 11), "
             "the concept flipping with the other tactical concepts unchanged and the optimal move changing; "
             f"at most {settings.max_pairs} per concept."]
    report = write_usage_report(results, out, deltas, {s.name: s.run for s in networks}, seeds, thresholds,
                                notes=notes)
    atomic_write_json({"seconds_this_call": round(time.perf_counter() - started, 1),
                       "compute_seconds": round(sum(t["tests_seconds"] + t["inputs_seconds"] for t in timing), 1),
                       "cpu": cpu_model(), "networks": timing, "settings": settings.to_dict(),
                       "thresholds": vars(thresholds)}, out / "timing.json")
    console.print(f"wrote {report} (and usage.csv, figures) in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
