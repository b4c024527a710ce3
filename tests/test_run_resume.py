"""Resuming a run folder: damaged checkpoints are moved aside, a folder without a run is an error."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents.checkpoints import list_checkpoints, load_agent, move_aside
from common.outputs import check_writable
from agents.selfplay import TrainConfig, resumable_config, train

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(game="tictactoe", total_timesteps=2048, n_envs=16, n_steps=32, batch_size=256, n_epochs=2,
            network={"channels": 8, "blocks": 1, "head_channels": 2, "head_hidden": 16}, checkpoints=3,
            snapshot_every=512, torch_threads=1)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("resume") / "run"
    train(TrainConfig(**TINY), run, progress_bar=False, evaluate=False)
    return run


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_agent(a).policy.state_dict(), load_agent(b).policy.state_dict()
    return all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_truncated_latest_checkpoint_falls_back_to_the_previous_one(tiny_run, tmp_path, caplog):
    killed = _copy(tiny_run, tmp_path / "killed")  # as if killed before the last checkpoint
    steps = list_checkpoints(killed)
    steps[-1][1].unlink()
    expected = train(TrainConfig(**TINY), killed, resume=True, progress_bar=False, evaluate=False)

    damaged = _copy(tiny_run, tmp_path / "damaged")
    last = list_checkpoints(damaged)[-1][1]
    original = last.read_bytes()
    _truncate(last)
    with caplog.at_level(logging.WARNING):
        final = train(TrainConfig(**TINY), damaged, resume=True, progress_bar=False, evaluate=False)
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert str(last) in warning and "moved aside" in warning
    corrupt = last.with_name(last.name + ".corrupt")
    assert len(corrupt.read_bytes()) == len(original) // 3  # kept, not deleted
    assert final == last and [s for s, _ in list_checkpoints(damaged)] == [s for s, _ in steps]
    assert _same_weights(final, expected)  # exactly what resuming from the previous checkpoint gives


def test_no_loadable_checkpoint_is_a_clear_error_and_loses_nothing(tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path / "run")
    for _, path in list_checkpoints(run):
        _truncate(path)
    with pytest.raises(ValueError, match=r"none of its 4 checkpoints can be loaded.*without --resume"):  # step 0 too
        train(TrainConfig(**TINY), run, resume=True, progress_bar=False, evaluate=False)
    assert len(list((run / "checkpoints").glob("*.zip.corrupt"))) == 4


def test_resume_needs_a_run_folder_with_a_config_and_a_checkpoint(tiny_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="the folder does not exist"):
        train(TrainConfig(**TINY), tmp_path / "missing", resume=True, progress_bar=False, evaluate=False)
    assert not (tmp_path / "missing").exists()
    started = tmp_path / "started"  # killed before its first checkpoint
    started.mkdir()
    (started / "config.json").write_text((tiny_run / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        resumable_config(started)
    bare = _copy(tiny_run, tmp_path / "bare")
    (bare / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json does not exist"):
        resumable_config(bare)
    (bare / "config.json").write_text('{"config": ')
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        resumable_config(bare)


def test_move_aside_never_overwrites(tmp_path):
    for content in ("one", "two"):
        (tmp_path / "f.zip").write_text(content)
        move_aside(tmp_path / "f.zip")
    assert (tmp_path / "f.zip.corrupt").read_text() == "one" and (tmp_path / "f.zip.corrupt-2").read_text() == "two"


def test_check_writable_names_what_cannot_be_written(tmp_path):
    assert check_writable(tmp_path / "new" / "deeper" / "out.json") == tmp_path / "new" / "deeper" / "out.json"
    assert not (tmp_path / "new").exists()  # nothing created
    with pytest.raises(IsADirectoryError, match="is a folder"):
        check_writable(tmp_path, "--json")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        check_writable(tmp_path / "file" / "out.json", "--json")


def _train_agent(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "train_agent.py"), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, env={**os.environ, "COLUMNS": "400"})


def test_train_agent_cli_resume_errors_and_names_the_runs_own_game(tiny_run, tmp_path):
    missing = tmp_path / "missing"
    done = _train_agent("--resume", "--out", str(missing), "--quiet")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: cannot resume {missing}")
    assert not missing.exists()
    run = _copy(tiny_run, tmp_path / "run")  # a tic-tac-toe run resumed without --game (default: connect4)
    done = _train_agent("--resume", "--out", str(run), "--total-timesteps", "2560", "--no-eval", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming tictactoe for 2,560 timesteps into {run}" in done.stdout
    assert list_checkpoints(run)[-1][0] == 2560
    assert json.loads((run / "config.json").read_text())["config"]["game"] == "tictactoe"
