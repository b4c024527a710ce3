"""Train a reference network: the agent's architecture, supervised on the exact solver's answers.

The small reference: the policy head learns the uniform distribution over value-preserving
moves, the value head the game value, from a dataset labelled with the solver concepts
``value`` and ``good_moves``::

    python scripts/make_dataset.py --out data/c4_ref --n 30000 --min-ply 10 --sources random:1 \\
        --concepts value,good_moves
    python scripts/train_reference.py --dataset data/c4_ref --out runs/connect4-reference

The oracle network (docs/oracle.md): several large datasets labelled with exact move
scores too (``--concepts value,score,column_scores,good_moves``), per-move score targets,
the exact score as the value target and random board symmetries::

    python scripts/train_reference.py --dataset DATA1 --dataset DATA2 --out runs/connect4-oracle \\
        --policy-target scores --value-target score --symmetries --epochs 12

The run folder looks like an agent's (checkpoints at log-spaced sample counts,
evaluations.jsonl, strength.png), so probe sweeps and reports compare the two. An
interrupted run continues from its last finished epoch with --resume.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional

import typer

from common.cli import help_text

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@app.command(help=help_text(__doc__))
def main(
    dataset: List[Path] = typer.Option(..., help="dataset folder with the solver labels (repeatable: several "
                                                 "folders are trained on together)"),
    out: Optional[Path] = typer.Option(None, help="run folder [default: runs/GAME-reference-seedSEED]"),
    game: Optional[str] = typer.Option(None, help="registered game [default: the dataset's, from its manifest]"),
    epochs: int = typer.Option(8, help="passes over the train positions"),
    batch_size: int = typer.Option(256, help="positions per update"),
    learning_rate: float = typer.Option(2e-3, help="AdamW step size (cosine decay to a tenth)"),
    channels: int = typer.Option(32, help="trunk channels (match the agent's)"),
    blocks: int = typer.Option(3, help="residual blocks (match the agent's)"),
    policy_target: str = typer.Option("good_moves", help="good_moves (uniform over value-preserving moves) or "
                                                         "scores (value-preserving moves weighted by exact score)"),
    value_target: str = typer.Option("value", help="value (-1/0/+1) or score (the exact score, scaled)"),
    score_temperature: float = typer.Option(2.0, help="with --policy-target scores: how sharply the best of the "
                                                      "value-preserving moves is preferred"),
    symmetries: bool = typer.Option(False, "--symmetries/--no-symmetries",
                                    help="show each batch under a random symmetry of the board"),
    checkpoints: int = typer.Option(10, help="log-spaced checkpoints, the final one included"),
    eval_games: int = typer.Option(100, help="games per ladder opponent at each checkpoint (0: none)"),
    eval_positions: int = typer.Option(300, help="positions per evaluation set at each checkpoint (0: all)"),
    seed: int = typer.Option(0, help="seed of the split, initialisation and batches"),
    threads: int = typer.Option(2, help="torch threads"),
    progress: bool = typer.Option(True, "--progress/--quiet", help="progress bar"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run in --out (same options)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a reference network already in --out"),
) -> None:
    from dataclasses import asdict

    from common.outputs import check_writable
    from agents.network import NetworkConfig
    from agents.reference import ReferenceConfig, train_reference
    from games.datasets import read_manifest

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    concepts = "value,good_moves" + (",column_scores" if policy_target == "scores" else "") + \
        (",score" if value_target == "score" else "")
    games_of = set()
    for folder in dataset:
        if not (folder / "positions.parquet").exists():
            raise typer.BadParameter(f"{folder}/positions.parquet does not exist; build it with "
                                     f"scripts/make_dataset.py --concepts {concepts}")
        manifest = read_manifest(folder)
        games_of.add((manifest["game"], repr(sorted(manifest.get("game_kwargs", {}).items()))))
    if len(games_of) > 1:
        raise typer.BadParameter(f"the datasets are of different games or board sizes: {sorted(games_of)}")
    manifest = read_manifest(dataset[0])
    game = game or manifest["game"]
    game_kwargs = manifest.get("game_kwargs", {}) if game == manifest["game"] else {}
    config = ReferenceConfig(str(dataset[0]) if len(dataset) == 1 else [str(d) for d in dataset], game=game,
                             game_kwargs=game_kwargs, network=asdict(NetworkConfig(channels=channels, blocks=blocks)),
                             epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                             policy_target=policy_target, value_target=value_target,
                             score_temperature=score_temperature, symmetries=symmetries,
                             checkpoints=checkpoints, eval_games=eval_games, eval_positions=eval_positions,
                             seed=seed, torch_threads=threads)
    run_dir = out or Path("runs") / f"{game}-reference-seed{seed}"
    if (run_dir / "config.json").exists() and not (overwrite or resume):
        raise FileExistsError(f"{run_dir} already holds a trained network; pass --resume to continue it, "
                              "--overwrite to replace it, or --out another folder")
    check_writable(run_dir / "config.json", "--out")
    final = train_reference(config, run_dir, progress=progress, resume=resume)
    print(f"reference network: {final}")
    from agents.runs import read_evaluations

    last = read_evaluations(run_dir)[-1]
    print("held-out:", {k: round(v, 3) for k, v in last.holdout.to_json().items()})
    for name, q in (last.move_quality or {}).items():
        print(f"{name}: good {q.good_rate:.3f} perfect {q.perfect_rate:.3f}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
