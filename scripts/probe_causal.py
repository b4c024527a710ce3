"""Causal tests of a trained agent: steering along concept directions, concept erasure, minimal pairs.

For each concept at one layer of one checkpoint: steer along the probe and mean-difference
directions (against random directions of equal norm), erase the concept with LEACE and
INLP (against random subspaces of the same rank), and play both members of solver-verified
minimal pairs. Writes OUT/causal.json (tidy records), OUT/steering.png and OUT/erasure.png.

    python scripts/probe_causal.py runs/connect4-seed0 --out results/causal_connect4_default
    python scripts/probe_causal.py runs/connect4-seed0/checkpoints/step_002400256.zip --layer features_extractor.blocks.1
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"--alphas must be comma-separated numbers, got {text!r}") from exc


@app.command()
def main(
    checkpoint: Path = typer.Argument(..., help="a checkpoint .zip or a run folder (its latest checkpoint)"),
    layer: Optional[str] = typer.Option(None, help="module name to steer / erase at [default: the last trunk block]"),
    concepts: str = typer.Option("win_in_1,forced_block", help="comma-separated binary concepts"),
    positions: int = typer.Option(1500, help="labelled positions (70 percent of games fit, 30 percent measure)"),
    alphas: str = typer.Option("-8,-4,-2,-1,0,1,2,4,8", help="steering strengths, in sd of activations along the direction"),
    random_controls: int = typer.Option(5, help="random directions / subspaces per intervention"),
    inlp_rank: int = typer.Option(16, help="maximal INLP rank"),
    pairs: int = typer.Option(200, help="minimal pairs per concept (at most)"),
    parents: int = typer.Option(1500, help="random parent positions searched for minimal pairs"),
    out: Optional[Path] = typer.Option(None, help="output folder [default: runs/causal_<run name>; the recorded "
                                                  "results are results/causal_connect4_default]"),
    overwrite: bool = typer.Option(False, "--overwrite", help="write into --out even if it holds a finished result"),
    game: Optional[str] = typer.Option(None, help="game name, if the checkpoint is outside its run folder"),
    seed: int = typer.Option(0, help="seed of positions, splits and random controls"),
) -> None:
    import torch
    from rich.console import Console
    from rich.table import Table

    from agents.causal import plot_erasure, plot_steering, summary_rows
    from agents.connect4.causal import run_causal_suite
    from agents.checkpoints import load_agent_for_game
    from agents.network import probe_layers
    from common.atomic import atomic_write_text
    from games.concepts import select
    from common.provenance import cache_dir

    from common.outputs import prepare_output

    for name, value, least in (("--positions", positions, 1), ("--random-controls", random_controls, 0),
                               ("--inlp-rank", inlp_rank, 1), ("--pairs", pairs, 0), ("--parents", parents, 1)):
        if value < least:
            raise ValueError(f"{name} must be at least {least}, got {value}")
    steering = _floats(alphas)
    if not steering:
        raise ValueError("--alphas needs at least one steering strength")
    if out is not None:  # a named destination is checked before minutes of loading and labelling
        out = prepare_output(out, "", overwrite=overwrite, finished=("causal.json",))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    console = Console()
    try:
        loaded = load_agent_for_game(checkpoint, game)
    except (FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="CHECKPOINT") from exc
    path, model, the_game = loaded.path, loaded.model, loaded.game
    if the_game.name != "connect4":
        raise typer.BadParameter(f"causal tests are implemented for connect4 only, not {the_game!r}")
    policy = model.policy
    names = [info.name for info in probe_layers(policy)]
    if layer is not None and layer not in names:
        raise typer.BadParameter(f"unknown layer {layer!r}; layers: {', '.join(names)}", param_hint="--layer")
    wanted = [c.strip() for c in concepts.split(",") if c.strip()]
    try:
        chosen = select(the_game.name, wanted)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--concepts") from exc
    binary = [c.name for c in select(the_game.name) if c.kind == "binary"]
    bad = [c.name for c in chosen if c.kind != "binary"]
    if bad:
        raise typer.BadParameter(f"{bad} are not binary concepts; binary ones: {', '.join(binary)}", param_hint="--concepts")
    run_name = path.parent.parent.name if path.parent.name == "checkpoints" else path.stem
    out = out or prepare_output(None, f"causal_{run_name}", overwrite=overwrite, finished=("causal.json",))
    start = time.perf_counter()
    result = run_causal_suite(policy, the_game, wanted, layer=layer, n_positions=positions, alphas=steering,
                              n_random=random_controls, inlp_rank=inlp_rank, n_parents=parents, max_pairs=pairs,
                              seed=seed, solution_cache=cache_dir() / "solutions.sqlite")
    result = {"checkpoint": str(path), "timestep": int(model.num_timesteps), "game": repr(the_game),
              "seconds": round(time.perf_counter() - start, 1), **result}
    atomic_write_text(json.dumps(result, indent=1, default=float), out / "causal.json")
    plot_steering(result, out / "steering.png")
    plot_erasure(result, out / "erasure.png")
    table = Table(title=f"causal tests at {result['layer']} of {path} ({model.num_timesteps:,} steps)")
    for column in ("concept", "test", "concept direction / eraser", "random: mean [95% CI]", "unedited"):
        table.add_column(column)
    for row in summary_rows(result):
        table.add_row(*row)
    console.print(table)
    console.print(f"wrote {out / 'causal.json'}, {out / 'steering.png'}, {out / 'erasure.png'} "
                  f"in {result['seconds']:.0f} s")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
