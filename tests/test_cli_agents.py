"""Bad input at the agent, pipeline and probe-sweep command lines: one line naming the problem,
a non-zero exit, no traceback, and nothing already written lost."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from agents.selfplay import TrainConfig, train

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder in which nothing can be created: permission bits for ordinary users; for root,
    whom they do not stop, a folder under /proc (a file system that takes no new files)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    (folder / "kept.json").write_text('{"kept": true}')
    folder.chmod(0o555)
    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError:
        return folder
    os.close(fd)
    os.unlink(probe)
    folder.chmod(0o755)
    return Path("/proc/solvedlens-no-such-folder")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny tic-tac-toe run, a labelled dataset, and damaged copies of both."""
    from games.datasets import build_dataset

    root = tmp_path_factory.mktemp("cli")
    run = root / "run"
    train(TrainConfig(game="tictactoe", total_timesteps=512, n_envs=16, n_steps=32, batch_size=256, checkpoints=1,
                      network={"channels": 8, "blocks": 1, "head_channels": 2, "head_hidden": 16}, torch_threads=1),
          run, progress_bar=False, evaluate=False)
    checkpoint = sorted((run / "checkpoints").glob("step_*.zip"))[-1]
    truncated = root / "truncated.zip"
    truncated.write_bytes(checkpoint.read_bytes()[:2000])
    data = root / "data"
    build_dataset("tictactoe", 40, data, concepts=["value", "good_moves", "win_in_1"], jobs=1, progress=False)
    broken = root / "broken-data"
    shutil.copytree(data, broken)
    parquet = broken / "positions.parquet"
    parquet.write_bytes(parquet.read_bytes()[: parquet.stat().st_size // 2])
    ro = _unwritable_folder(root)
    return {"RUN": str(run), "CKPT": str(checkpoint), "TRUNC": str(truncated), "DATA": str(data),
            "BROKEN": str(broken), "RO": str(ro), "MISSING": str(root / "missing"), "ROOT": str(root)}


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# (script, arguments with placeholders from `files`, words the message must hold)
ROWS = [
    ("train_agent", ["--game", "tictactoe", "--total-timesteps", "0"], "total_timesteps must be >= 1"),
    ("train_agent", ["--game", "tictactoe", "--n-envs", "0"], "n_envs must be >= 1"),
    ("train_agent", ["--game", "chess"], "unknown game 'chess'"),
    ("train_agent", ["--game", "tictactoe", "--update-dtype", "float16"], "update_dtype must be one of"),
    ("train_agent", ["--resume", "--out", "MISSING"], "cannot resume MISSING: the folder does not exist"),
    ("train_agent", ["--resume", "--out", "DATA"], "DATA/config.json does not exist"),
    ("train_agent", ["--game", "tictactoe", "--out", "RO/run", "--quiet"], "not writable"),
    ("train_agent", ["--game", "tictactoe", "--out", "RUN"], "already holds a run"),
    ("evaluate_agent", ["RUN", "--games", "-1"], "games per opponent must be 0 (no games) or at least 2"),
    ("evaluate_agent", ["RUN", "--games", "1"], "at least 2 (one per colour), got 1"),
    ("evaluate_agent", ["RUN", "--decisive", "-1"], "decisive set size must be >= 0 (0: none), got -1"),
    ("evaluate_agent", ["MISSING"], "MISSING does not exist"),
    ("evaluate_agent", ["TRUNC", "--game", "tictactoe"], "not a valid checkpoint archive"),
    ("evaluate_agent", ["CKPT", "--game", "chess"], "unknown game 'chess'"),
    ("evaluate_agent", ["RUN", "--json", "RO/eval.json"], "cannot write --json RO/eval.json"),
    ("analyze_games", ["RUN", "--games", "0"], "at least 2 (one game per colour), got 0"),
    ("analyze_games", ["RUN", "--opponent", "alphabeta-2"], "unknown opponent 'alphabeta-2' for tictactoe"),
    ("analyze_games", ["TRUNC", "--game", "tictactoe"], "not a valid checkpoint archive"),
    ("analyze_games", ["RUN", "--json", "RO/slips.json"], "cannot write --json RO/slips.json"),
    ("pipeline", ["--game", "tictactoe", "--positions", "0", "--run", "ROOT/p"], "--positions must be at least 1"),
    ("pipeline", ["--game", "chess", "--run", "ROOT/p"], "unknown game 'chess'"),
    ("pipeline", ["--game", "nim", "--reference", "--run", "ROOT/p"], "--reference needs the solver concepts"),
    ("pipeline", ["--game", "nim", "--run", "RUN"], "holds a tictactoe run, not nim"),
    ("pipeline", ["--game", "tictactoe", "--run", "RO/run"], "cannot write --run folder"),
    ("pipeline", ["--step-args", "solve=--x", "--run", "ROOT/p"], "--step-args expects SCRIPT=OPTIONS"),
    ("probe_sweep", ["--run", "RUN", "--dataset", "DATA", "--max-positions", "0"], "must be >= 1, got 0"),
    ("probe_sweep", ["--run", "RUN", "--dataset", "DATA", "--probes", "foo"], "unknown probes ['foo']"),
    ("probe_sweep", ["--run", "RUN", "--dataset", "BROKEN"], "cannot be read as Parquet"),
    ("probe_sweep", ["--run", "MISSING", "--dataset", "DATA"], "MISSING/config.json does not exist"),
    ("probe_sweep", ["--run", "RUN", "--dataset", "DATA", "--out", "RO/sweep"], "cannot write --out RO/sweep"),
    ("train_reference", ["--dataset", "BROKEN", "--out", "ROOT/ref"], "cannot be read as Parquet"),
    ("train_reference", ["--dataset", "DATA", "--epochs", "0", "--out", "ROOT/ref"], "epochs must be >= 1"),
    ("train_reference", ["--dataset", "MISSING"], "MISSING/positions.parquet does not exist"),
    ("train_reference", ["--dataset", "DATA", "--out", "RO/ref"], "cannot write --out"),
    ("train_reference", ["--dataset", "DATA", "--out", "RUN"], "RUN already holds a trained network; pass --resume"),
    ("train_reference", ["--dataset", "DATA", "--policy-target", "best", "--out", "ROOT/ref"],
     "policy_target must be one of ('good_moves', 'scores')"),
    ("train_reference", ["--dataset", "DATA", "--policy-target", "scores", "--out", "ROOT/ref"],
     "lacks the solver labels ['column_scores']"),
    ("train_reference", ["--dataset", "DATA", "--resume", "--out", "ROOT/fresh"], "has no resume.pt to resume from"),
    ("compare_oracle", ["--study", "ROOT", "--oracle", "RUN", "--out", "ROOT/cmp"], "holds no seed folders"),
    ("probe_report", ["MISSING"], "MISSING/results.parquet does not exist"),
    ("bench_ladder", ["--game", "tictactoe", "--games", "0", "--out", "ROOT/l.json"], "at least 2"),
    ("bench_ladder", ["--game", "tictactoe", "--players", "alphabeta-2", "--out", "ROOT/l.json"],
     "unknown player 'alphabeta-2' for tictactoe"),
    ("bench_ladder", ["--game", "tictactoe", "--out", "RO/l.json"], "cannot write --out RO/l.json"),
    ("make_benchmark_positions", ["end-easy", "--n", "0", "--out", "ROOT/b"], "must be at least 1, got 0"),
    ("make_benchmark_positions", ["hardest", "--out", "ROOT/b"], "unknown set 'hardest'"),
    ("train_agent", ["--bogus-option"], "No such option: --bogus-option"),
]


@pytest.mark.parametrize("script, args, words", ROWS, ids=[f"{r[0]}:{' '.join(r[1])}" for r in ROWS])
def test_bad_input_is_one_line_and_a_nonzero_exit(files, script, args, words):
    def fill(text: str) -> str:
        for key in sorted(files, key=len, reverse=True):
            text = text.replace(key, files[key])
        return text

    before = _digest(Path(files["ROOT"]))
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / f"{script}.py"), *map(fill, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "COLUMNS": "400", "SOLVEDLENS_DEBUG": ""})
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-2000:]
    assert "Traceback" not in output, output[-3000:]
    assert " ".join(fill(words).split()) in " ".join(output.split()), output[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if lines and lines[-1].startswith("error:"):  # ours (common.cli); typer's usage errors draw a box
        assert sum(line.startswith("error:") for line in lines) == 1
    after = _digest(Path(files["ROOT"]))
    assert {k: v for k, v in after.items() if k in before} == before  # nothing written before was changed
