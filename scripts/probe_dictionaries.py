"""Sparse dictionaries on the networks' layers, scored against exact concepts and judged by the solver.

For every network (by default the final agent of each seed of a recorded study, plus any
--network such as the reference network) and each layer: a sparse autoencoder on the layer's
activations (per square on spatial layers, whole vector on flat ones), its fidelity (variance
explained; good-move / perfect-move / value-sign rates with the reconstruction spliced in,
against the clean network and the mean-ablated layer), its coverage of every concept (best
feature, best small set, linear probe; paired against the dictionary of a random-weight network
of the same architecture on the same positions), the features that match no concept (with the
solver's view of their top positions), and ablations of the features matched to move concepts
(against random features and random squares); on flat layers also a transcoder (the layer's input
to its output) spliced in place of the layer. See agents/dictionaries.py and docs/dictionaries.md.

Writes OUT/NETWORK/LAYER.json and LAYER.sae.pt (LAYER.transcoder.json/.pt on flat layers) (an interrupted run resumes from them),
OUT/report.md, OUT/coverage.csv, OUT/features.csv, figures (PNG) and OUT/timing.json.

    python scripts/probe_dictionaries.py --study results/study_connect4 --network results/reference_connect4_20k \\
        --out results/dictionaries_connect4
    python scripts/probe_dictionaries.py --network runs/connect4-seed0 --network-dataset DATA --out runs/dicts
    python scripts/probe_dictionaries.py --report-only --out results/dictionaries_connect4   # tables and figures again
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _notes(results: dict[str, dict[str, dict]]) -> list[str]:
    """The report's opening notes, from the records themselves (so --report-only writes the same report)."""
    first = {name: next(iter(layers.values())) for name, layers in results.items() if layers}
    described = [f"{name} ({r.get('role')}, {r.get('checkpoint') or 'random weights, control of ' + str(r.get('control_of'))}"
                 f", measured on {r.get('dataset')})" for name, r in first.items()]
    settings = next(iter(first.values()))["settings"] if first else {}
    return [f"Networks: {'; '.join(described)}. Random-weight controls: the agents' architecture with fresh weights, "
            "one per dataset and architecture.",
            "Positions: each dataset split by game as in the study (60/20/20); dictionaries are trained on the train "
            "games' rows plus unlabelled positions (half random play, half the first network's own play; none of them "
            "a validation or test position; `n_fit_rows` below); every score is on the test games.",
            f"Settings: {settings}."]


def _write_report(game, results: dict, roles: dict, transcoders: dict, out: Path, usage: Optional[Path]) -> Path:
    """The report, tables and figures (boards drawn by `game`), after a run or from the results on disk."""
    from probes.dictionary_report import write_dictionary_report

    return write_dictionary_report(results, roles, out, usage, picture=lambda text: game.render_rgb(game.parse(text)),
                                   grid=(game.height, game.width), notes=_notes(results), transcoders=transcoders)


@app.command()
def main(
    out: Path = typer.Option(..., help="output folder (resumes from the results already there)"),
    study: Optional[Path] = typer.Option(None, help="a recorded study folder (seedS/agent, seedS/dataset): its final "
                                                    "agents are studied"),
    network: List[Path] = typer.Option([], help="another checkpoint or run folder (repeatable), e.g. the reference "
                                                "network"),
    network_dataset: Optional[Path] = typer.Option(None, help="labelled dataset the --network checkpoints are measured "
                                                              "on [default: the study's first seed's]"),
    layers: str = typer.Option(",".join(("features_extractor.stem", "features_extractor.blocks.0",
                                         "features_extractor.blocks.1", "features_extractor.blocks.2",
                                         "mlp_extractor.policy_net.fc", "mlp_extractor.value_net.fc")),
                               help="comma-separated layers"),
    architecture: str = typer.Option("topk", help="topk or relu (L1) dictionaries"),
    square_expansion: int = typer.Option(8, help="features per channel on spatial layers"),
    flat_expansion: int = typer.Option(4, help="features per unit on flat layers"),
    square_k: int = typer.Option(8, help="active features per square (topk)"),
    flat_k: int = typer.Option(16, help="active features per position on flat layers (topk)"),
    l1: float = typer.Option(2.0, help="sparsity penalty (relu)"),
    steps: int = typer.Option(3000, help="optimiser steps per dictionary"),
    extra_positions: int = typer.Option(5000, help="unlabelled positions added to each dictionary's training rows "
                                                   "(half random play, half the network's own play)"),
    match_precision: float = typer.Option(0.9, help="a feature matches a concept when the concept holds on this "
                                                    "fraction of the rows where it fires"),
    random_controls: int = typer.Option(5, help="random-feature and random-square draws per ablation"),
    n_boot: int = typer.Option(200, help="bootstrap replicates per interval"),
    seed: int = typer.Option(0, help="seed of the split (the study's), dictionaries, controls and bootstrap"),
    usage: Optional[Path] = typer.Option(None, help="the usage suite's folder (scripts/probe_usage.py), whose "
                                                    "probe-direction erasures the report sets beside the ablations"),
    report_only: bool = typer.Option(False, "--report-only", help="only rewrite the report from the results under "
                                                                  "--out (no network, dataset or dictionary needed)"),
    progress: bool = typer.Option(True, "--progress/--quiet", help="progress bars"),
) -> None:
    import torch
    from rich.console import Console

    from agents.checkpoints import load_agent_for_game
    from agents.connect4.dictionaries import dictionary_inputs
    from agents.dictionaries import (
        DictionarySettings,
        dictionary_layers,
        run_dictionaries,
        run_transcoders,
    )
    from agents.evaluation import PolicyPlayer
    from agents.network import random_weight_network
    from agents.usage import chosen_networks
    from common.atomic import atomic_write_json
    from common.outputs import prepare_output
    from common.provenance import cpu_model
    from games.datasets import read_dataset

    if usage is not None and not usage.is_dir():
        raise typer.BadParameter(f"{usage} is not a folder", param_hint="--usage")
    if report_only:
        import games
        from probes.dictionary_report import read_results, read_transcoders

        found, found_roles = read_results(out)
        if not found:
            raise typer.BadParameter(f"{out} holds no dictionary results (OUT/NETWORK/LAYER.json)", param_hint="--out")
        report = _write_report(games.get("connect4"), found, found_roles, read_transcoders(out), out, usage)
        Console().print(f"wrote {report}")
        return
    try:
        settings = DictionarySettings(architecture=architecture, square_expansion=square_expansion,
                                      flat_expansion=flat_expansion, square_k=square_k, flat_k=flat_k,
                                      l1_coefficient=l1, n_steps=steps, match_precision=match_precision,
                                      n_random=random_controls, n_boot=n_boot, seed=seed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if extra_positions < 0:
        raise typer.BadParameter(f"--extra-positions must be >= 0, got {extra_positions}")
    if study is None and not network:
        raise typer.BadParameter("name a --study folder, or --network checkpoints with a --network-dataset")
    try:
        networks = chosen_networks(study, network, network_dataset)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--study / --network / --network-dataset") from exc
    wanted = _names(layers)
    if not wanted:
        raise typer.BadParameter("--layers names no layer")

    # load and check everything before any work
    loaded = {}
    for spec in networks:
        try:
            loaded[spec.name] = load_agent_for_game(spec.checkpoint, "connect4")
            dictionary_layers(loaded[spec.name].model.policy, wanted)
        except (FileNotFoundError, ValueError) as exc:
            raise typer.BadParameter(f"{spec.name}: {exc}", param_hint="--network / --study / --layers") from exc
    datasets = {}
    for spec in networks:
        if spec.dataset not in datasets:
            try:
                datasets[spec.dataset] = read_dataset(spec.dataset)
            except (FileNotFoundError, ValueError) as exc:
                raise typer.BadParameter(str(exc), param_hint="--network-dataset / --study") from exc

    out = prepare_output(out, "", overwrite=True)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    console = Console()
    started = time.perf_counter()
    inputs_of: dict[Path, object] = {}
    controls: dict[tuple, tuple[str, object]] = {}
    results: dict[str, dict] = {}
    roles: dict[str, str] = {}
    transcoders: dict[str, dict] = {}
    timing = []
    for spec in networks:
        agent = loaded[spec.name]
        policy = agent.model.policy
        tick = time.perf_counter()
        if spec.dataset not in inputs_of:
            # extra training rows: random play and the first network measured on this dataset
            inputs_of[spec.dataset], skipped = dictionary_inputs(
                agent.game, datasets[spec.dataset], seed, extra_positions, {spec.name: PolicyPlayer(agent.model)},
                progress=progress)
            if skipped:
                logging.getLogger(__name__).info("concepts left out: %s", skipped)
        inputs = inputs_of[spec.dataset]
        inputs_seconds = time.perf_counter() - tick
        meta = {"checkpoint": str(agent.path), "timestep": int(agent.model.num_timesteps), "role": spec.role,
                "dataset": str(spec.dataset)}
        # the control: a random-weight network of the same architecture, one per (dataset, architecture)
        params = policy._get_constructor_parameters()
        key = (spec.dataset, repr(params.get("network")), repr(params.get("net_arch")))
        if key not in controls:
            controls[key] = (f"random-{len(controls)}", random_weight_network(policy, seed + len(controls)))
        control_name, control_policy = controls[key]
        if control_name not in results:
            results[control_name] = run_dictionaries(control_policy, control_name, inputs, out, settings, wanted,
                                                     meta={**meta, "role": "random-weights", "checkpoint": None,
                                                           "timestep": 0, "control_of": spec.name},
                                                     progress=progress)
            roles[control_name] = "random-weights"
        results[spec.name] = run_dictionaries(policy, spec.name, inputs, out, settings, wanted,
                                              control=(control_name, control_policy), meta=meta, progress=progress)
        roles[spec.name] = spec.role
        transcoders[spec.name] = run_transcoders(policy, spec.name, inputs, out, settings, wanted, meta=meta)
        timing.append({"network": spec.name, "control": control_name,
                       "seconds_this_call": round(time.perf_counter() - tick, 1),
                       "inputs_seconds": round(inputs_seconds, 1)})
        console.print(f"{spec.name} (and {control_name}): done in {timing[-1]['seconds_this_call']:.0f} s")
    report = _write_report(next(iter(loaded.values())).game, results, roles, transcoders, out, usage)
    layer_seconds = {f"{name}/{layer}": {"total": r["seconds"], "dictionary_training": r["train_seconds"]}
                     for name, by_layer in results.items() for layer, r in by_layer.items()}
    atomic_write_json({"seconds_this_call": round(time.perf_counter() - started, 1),
                       "compute_seconds": round(sum(v["total"] for v in layer_seconds.values())
                                                + sum(t["inputs_seconds"] for t in timing), 1),
                       "layer_seconds": layer_seconds,
                       "cpu": cpu_model(), "torch_threads": torch.get_num_threads(), "networks": timing,
                       "settings": settings.to_dict()}, out / "timing.json")
    console.print(f"wrote {report} (and coverage.csv, features.csv, figures) in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
