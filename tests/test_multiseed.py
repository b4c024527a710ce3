"""Multi-seed training through the execution engine (`agents.multiseed`, ``train_agent.py --seeds``): one run
folder per seed, the same weights on the local and the Ray engine as a plain single run, resumable, and
one-line errors for options that do not go together."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from agents.checkpoints import list_checkpoints
from agents.multiseed import SeedJob, parse_seeds, plan_seeds, train_seed, train_seeds
from agents.selfplay import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_agent.py"
# two rollouts of tic-tac-toe with a tiny network: seconds per seed
TINY = ["--game", "tictactoe", "--total-timesteps", "1024", "--n-envs", "16", "--n-steps", "32", "--batch-size", "256",
        "--checkpoints", "2", "--channels", "8", "--blocks", "1", "--no-eval", "--quiet"]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**env, "COLUMNS": "200", "SOLVEDLENS_DEBUG": ""})


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The policy's parameters saved in an SB3 checkpoint archive."""
    with zipfile.ZipFile(checkpoint) as archive:
        return torch.load(io.BytesIO(archive.read("policy.pth")), map_location="cpu")


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _final(run_dir: Path) -> tuple[int, Path]:
    return list_checkpoints(run_dir)[-1]


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory):
    """``train_agent.py --seeds 0,1 --jobs 2`` (local engine) in a fresh working folder."""
    cwd = tmp_path_factory.mktemp("local")
    done = _run(["--seeds", "0,1", "--jobs", "2", *TINY], cwd)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return cwd, done.stdout


def test_local_engine_trains_one_run_per_seed(local_runs):
    cwd, stdout = local_runs
    runs = {seed: cwd / "runs" / f"tictactoe-seed{seed}" for seed in (0, 1)}
    assert sorted(p.name for p in (cwd / "runs").iterdir()) == ["tictactoe-seed0", "tictactoe-seed1"]
    for seed, run in runs.items():
        config = TrainConfig.from_json(run / "config.json")
        assert config.seed == seed and config.torch_threads == 1  # one torch thread per parallel agent
        assert config.total_timesteps == 1024 and config.n_envs == 16
        assert _final(run)[0] == 1024
    assert not _same(_weights(_final(runs[0])[1]), _weights(_final(runs[1])[1]))  # different seeds, different nets
    assert "seed 0" in stdout and "seed 1" in stdout and "runs/tictactoe-seed1" in stdout  # the summary table


def test_ray_engine_and_a_single_run_give_the_local_engines_weights(local_runs, tmp_path, monkeypatch):
    """Training is deterministic by seed with one torch thread: the same weights whichever engine (or none) ran it."""
    from common.engine import RayEngine

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    local = {seed: local_runs[0] / "runs" / f"tictactoe-seed{seed}" for seed in (0, 1)}
    config = TrainConfig.from_json(local[0] / "config.json")
    items = plan_seeds(config, [0, 1], evaluate=False, root=tmp_path / "runs")
    assert [item.config["seed"] for item in items] == [0, 1] and not any(item.resume for item in items)
    engine = RayEngine(jobs=2)
    try:
        summaries = train_seeds(items, engine=engine, progress=False)
    finally:
        engine.close()
    assert [s["seed"] for s in summaries] == [0, 1] and all(s["timestep"] == 1024 for s in summaries)
    assert [s["torch_threads"] for s in summaries] == [1, 1]
    for seed, summary in zip((0, 1), summaries):
        ray_final = _final(Path(summary["run_dir"]))
        assert ray_final[1].name == _final(local[seed])[1].name
        assert _same(_weights(ray_final[1]), _weights(_final(local[seed])[1])), f"seed {seed}"
    single = train(config, tmp_path / "single", progress_bar=False, evaluate=False)  # as train_agent.py --seed 0
    assert _same(_weights(single), _weights(_final(local[0])[1]))


def test_resume_continues_started_seeds_and_starts_the_others_with_their_settings(local_runs, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(local_runs[0] / "runs", root)
    other = TrainConfig(game="tictactoe", total_timesteps=4096, seed=0, torch_threads=2)  # not the saved settings
    with pytest.raises(FileExistsError, match="tictactoe-seed0, .*tictactoe-seed1 already hold runs"):
        plan_seeds(other, [0, 1, 2], root=root)
    with pytest.raises(FileNotFoundError, match="none of .*seed7, .*seed8 holds a checkpoint"):
        plan_seeds(other, [7, 8], resume=True, root=root)
    items = plan_seeds(other, [2, 0, 1], resume=True, total_timesteps=2048, root=root)
    assert [(item.config["seed"], item.resume) for item in items] == [(2, False), (0, True), (1, True)]
    for item in items:  # the saved settings, budget extended; the new seed takes them too
        assert item.config["n_envs"] == 16 and item.config["torch_threads"] == 1
        assert item.config["total_timesteps"] == 2048
    assert Path(items[0].run_dir) == (root / "tictactoe-seed2").resolve()


def test_a_retried_item_continues_its_run(local_runs, tmp_path):
    """An engine retries an item whose worker died: the item continues the checkpoints its first try left."""
    run = tmp_path / "retried"
    shutil.copytree(local_runs[0] / "runs" / "tictactoe-seed1", run)
    before = _weights(_final(run)[1])
    config = TrainConfig.from_json(run / "config.json")
    summary = train_seed(SeedJob(asdict(config), str(run), resume=False, evaluate=False))
    assert summary["seed"] == 1 and summary["timestep"] == 1024 and summary["headline"] == {}
    assert _same(_weights(Path(summary["checkpoint"])), before)


def test_parse_seeds():
    assert parse_seeds("3, 1,2") == [3, 1, 2]
    for bad, words in [("1", "at least two distinct"), ("1,1", "at least two distinct"), ("0,-1", "non-negative"),
                       ("0,x", "comma-separated integers")]:
        with pytest.raises(ValueError, match=words):
            parse_seeds(bad)


@pytest.mark.parametrize("args, words", [
    (["--seeds", "3"], "--seeds needs at least two distinct seeds, got '3'"),
    (["--seeds", "0,1", "--out", "runs/x"], "--out names one run; with --seeds each seed trains into runs/GAME-seedS"),
    (["--seeds", "0,1", "--address", "127.0.0.1:6379"], "--address 127.0.0.1:6379 is for the ray engine; add "
                                                        "--engine ray"),
], ids=["one-seed", "seeds-and-out", "address-without-ray"])
def test_bad_option_combinations_are_one_line_and_exit_2(tmp_path, args, words):
    done = _run([*args, *TINY], tmp_path)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if "Error" in line or "error:" in line]
    assert len(errors) == 1 and words in errors[0], done.stderr
    assert not (tmp_path / "runs").exists()  # nothing trained
