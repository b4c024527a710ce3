"""Train the reference network: the agent's architecture, supervised on the exact solver's answers.

The policy head learns the uniform distribution over value-preserving moves, the value
head the game value, from a dataset labelled with the solver concepts ``value`` and
``good_moves``. The run folder looks like an agent's (checkpoints at log-spaced sample
counts, evaluations.jsonl, strength.png), so probe sweeps and reports compare the two.

    python scripts/make_dataset.py --out data/c4_ref --n 30000 --min-ply 10 --sources random:1 \\
        --concepts value,good_moves
    python scripts/train_reference.py --dataset data/c4_ref --out runs/connect4-reference
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@app.command()
def main(
    dataset: Path = typer.Option(..., help="dataset folder labelled with value and good_moves"),
    out: Optional[Path] = typer.Option(None, help="run folder [default: runs/GAME-reference-seedSEED]"),
    game: Optional[str] = typer.Option(None, help="registered game [default: the dataset's, from its manifest]"),
    epochs: int = typer.Option(8, help="passes over the train positions"),
    batch_size: int = typer.Option(256, help="positions per update"),
    learning_rate: float = typer.Option(2e-3, help="AdamW step size (cosine decay to a tenth)"),
    channels: int = typer.Option(32, help="trunk channels (match the agent's)"),
    blocks: int = typer.Option(3, help="residual blocks (match the agent's)"),
    checkpoints: int = typer.Option(10, help="log-spaced checkpoints, the final one included"),
    eval_games: int = typer.Option(100, help="games per ladder opponent at each checkpoint (0: none)"),
    seed: int = typer.Option(0, help="seed of the split, initialisation and batches"),
    threads: int = typer.Option(2, help="torch threads"),
    progress: bool = typer.Option(True, "--progress/--quiet", help="progress bar"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a reference network already in --out"),
) -> None:
    from dataclasses import asdict

    from common.outputs import check_writable
    from agents.network import NetworkConfig
    from agents.reference import ReferenceConfig, train_reference
    from games.datasets import read_manifest

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not (dataset / "positions.parquet").exists():
        raise typer.BadParameter(f"{dataset}/positions.parquet does not exist; build it with scripts/make_dataset.py "
                                 f"--concepts value,good_moves")
    manifest = read_manifest(dataset)
    game = game or manifest["game"]
    game_kwargs = manifest.get("game_kwargs", {}) if game == manifest["game"] else {}
    config = ReferenceConfig(str(dataset), game=game, game_kwargs=game_kwargs,
                             network=asdict(NetworkConfig(channels=channels, blocks=blocks)),
                             epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                             checkpoints=checkpoints, eval_games=eval_games, seed=seed, torch_threads=threads)
    run_dir = out or Path("runs") / f"{game}-reference-seed{seed}"
    if (run_dir / "config.json").exists() and not overwrite:
        raise FileExistsError(f"{run_dir} already holds a trained network; pass --overwrite to replace it, "
                              "or --out another folder")
    check_writable(run_dir / "config.json", "--out")
    final = train_reference(config, run_dir, progress=progress)
    print(f"reference network: {final}")
    from agents.runs import read_evaluations

    last = read_evaluations(run_dir)[-1]
    print("held-out:", {k: round(v, 3) for k, v in last.holdout.to_json().items()})
    for name, q in (last.move_quality or {}).items():
        print(f"{name}: good {q.good_rate:.3f} perfect {q.perfect_rate:.3f}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
