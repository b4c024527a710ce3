"""Bad input at make_dataset.py and make_book.py: one line naming the problem, exit 2, nothing lost.

Table-driven: each row builds its input files in a temporary folder, runs the script as a
user would (a real subprocess, with a timeout) and checks the exit status, that stderr is
one ``error: ...`` line (or typer's own usage message) matching the row's pattern, that
no traceback is printed, and that files written before are unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKE_DATASET = ROOT / "scripts" / "make_dataset.py"
MAKE_BOOK = ROOT / "scripts" / "make_book.py"
# a folder that cannot be created even by root (for whom a chmod'ed folder is still writable)
UNWRITABLE = "/proc/solvedlens-test/out"


def run_script(script: Path, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SOLVEDLENS_DEBUG"}  # one-line errors, not tracebacks
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env=env)


def _ttt_dataset(tmp: Path, *extra: str) -> list[str]:
    return ["--game", "tictactoe", "--n", "20", "--jobs", "1", "--quiet", "--out", str(tmp / "d"), *extra]


def _files(tmp: Path) -> dict[str, str]:
    """Positions files and books used by the rows."""
    (tmp / "empty.txt").write_text("")
    (tmp / "blank.txt").write_text("\n   \n")
    (tmp / "illegal.txt").write_text("x........\nxxxxxxxxx\n")
    (tmp / "empty.npz").write_bytes(b"")
    shipped = (ROOT / "solver" / "books" / "connect4_7x6_depth2.npz").read_bytes()
    (tmp / "truncated.npz").write_bytes(shipped[: len(shipped) // 3])
    (tmp / "corrupt.sqlite").write_bytes(b"this is not an SQLite database\n" * 64)
    return {name: str(tmp / name) for name in ("empty.txt", "blank.txt", "illegal.txt", "empty.npz", "truncated.npz",
                                                "corrupt.sqlite")}


# (id, script, args builder (tmp, files) -> args, pattern the message must match)
ROWS = [
    ("n-zero", MAKE_DATASET, lambda t, f: _ttt_dataset(t) + ["--n", "0"], r"--n.*(>=|greater than or equal to) 1"),
    ("n-negative", MAKE_DATASET, lambda t, f: _ttt_dataset(t) + ["--n", "-5"], r"--n.*(>=|greater than or equal to) 1"),
    ("batch-size-zero", MAKE_DATASET, lambda t, f: _ttt_dataset(t, "--batch-size", "0"), r"--batch-size"),
    ("jobs-zero", MAKE_DATASET, lambda t, f: _ttt_dataset(t, "--jobs", "0"), r"--jobs"),
    ("min-ply-negative", MAKE_DATASET, lambda t, f: _ttt_dataset(t, "--min-ply", "-1"), r"--min-ply"),
    ("max-ply-below-min-ply", MAKE_DATASET, lambda t, f: _ttt_dataset(t, "--min-ply", "5", "--max-ply", "3"),
     r"max_ply \(3\) is below min_ply \(5\)"),
    ("unknown-game", MAKE_DATASET, lambda t, f: ["--game", "chess", "--out", str(t / "d")], r"unknown game 'chess'"),
    ("unknown-source", MAKE_DATASET, lambda t, f: _ttt_dataset(t, "--sources", "alphazero:1"),
     r"unknown source 'alphazero'"),
    ("zero-weight", MAKE_DATASET, lambda t, f: _ttt_dataset(t, "--sources", "random:0,epsilon-0.1:1"),
     r"'random' has weight 0"),
    ("unknown-concept", MAKE_DATASET, lambda t, f: _ttt_dataset(t, "--concepts", "telepathy"),
     r"unknown concept\(s\) \['telepathy'\]"),
    ("positions-file-missing", MAKE_DATASET,
     lambda t, f: _ttt_dataset(t, "--sources", "file:1", "--positions-file", str(t / "nope.txt")),
     r"positions file .*nope.txt does not exist"),
    ("positions-file-empty", MAKE_DATASET,
     lambda t, f: _ttt_dataset(t, "--sources", "file:1", "--positions-file", f["empty.txt"]), r"empty.txt is empty"),
    ("positions-file-blank", MAKE_DATASET,
     lambda t, f: _ttt_dataset(t, "--sources", "file:1", "--positions-file", f["blank.txt"]), r"blank.txt is empty"),
    ("positions-file-illegal-move", MAKE_DATASET,
     lambda t, f: _ttt_dataset(t, "--sources", "file:1", "--positions-file", f["illegal.txt"]), r"illegal.txt:2: "),
    ("positions-file-without-file-source", MAKE_DATASET,
     lambda t, f: _ttt_dataset(t, "--positions-file", f["illegal.txt"]), r"do not include 'file'"),
    ("book-empty", MAKE_DATASET,
     lambda t, f: ["--n", "5", "--jobs", "1", "--quiet", "--out", str(t / "d"), "--book", f["empty.npz"]],
     r"empty.npz is empty"),
    ("book-truncated", MAKE_DATASET,
     lambda t, f: ["--n", "5", "--jobs", "1", "--quiet", "--out", str(t / "d"), "--book", f["truncated.npz"]],
     r"truncated.npz is not a valid opening book"),
    ("book-other-board", MAKE_DATASET,
     lambda t, f: ["--n", "5", "--width", "5", "--height", "4", "--jobs", "1", "--quiet", "--out", str(t / "d"),
                   "--book", str(ROOT / "solver" / "books" / "connect4_7x6_depth2.npz")],
     r"book .* is for 7x6 boards; the game is 5x4"),
    ("book-other-game", MAKE_DATASET,
     lambda t, f: _ttt_dataset(t, "--book", str(ROOT / "solver" / "books" / "connect4_7x6_depth2.npz")),
     r"only used by Connect Four"),
    ("corrupt-solution-cache", MAKE_DATASET,
     lambda t, f: ["--n", "5", "--width", "5", "--height", "4", "--concepts", "value", "--jobs", "1", "--quiet",
                   "--out", str(t / "d"), "--solution-cache", f["corrupt.sqlite"]],
     r"solution cache .*corrupt.sqlite is corrupt.*--rebuild-cache"),
    ("unwritable-out", MAKE_DATASET, lambda t, f: ["--game", "tictactoe", "--n", "5", "--quiet", "--out", UNWRITABLE],
     r"cannot write the dataset folder"),
    ("agent-missing", MAKE_DATASET,
     lambda t, f: _ttt_dataset(t, "--agent", str(t / "nope.zip"), "--sources", "agent-0:1"),
     r"--agent .*nope.zip.*does not exist"),
    ("book-depth-negative", MAKE_BOOK, lambda t, f: ["--depth", "-1", "--out", str(t / "b.npz")], r"--depth"),
    ("book-depth-too-deep", MAKE_BOOK, lambda t, f: ["--depth", "42", "--out", str(t / "b.npz")],
     r"--depth must be in 0..41"),
    ("book-board-too-big", MAKE_BOOK, lambda t, f: ["--depth", "2", "--width", "9", "--height", "7",
                                                     "--out", str(t / "b.npz")], r"9x7|64"),
    ("book-unwritable-out", MAKE_BOOK, lambda t, f: ["--depth", "2", "--out", UNWRITABLE + "/b.npz"], r"cannot write --out"),
    ("book-exists", MAKE_BOOK, lambda t, f: ["--depth", "2", "--out", f["truncated.npz"]], r"already exists.*--overwrite"),
]


@pytest.mark.parametrize("script, build_args, pattern", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_gives_one_line_and_exit_2(tmp_path, script, build_args, pattern):
    import re

    files = _files(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    done = run_script(script, build_args(tmp_path, files))
    err = done.stderr.strip()
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    assert re.search(pattern, " ".join(err.split())), err
    if err.startswith("error:"):
        assert len(err.splitlines()) == 1, err
    else:  # typer's own usage error
        assert "Usage:" in err
    assert {p: p.read_bytes() for p in before} == before  # inputs untouched (a corrupt cache is not moved aside)
    assert not (tmp_path / "d" / "positions.parquet").exists()


def test_agent_of_another_game_is_refused_like_evaluate_agent(tmp_path):
    from sb3_contrib import MaskablePPO

    from agents.network import BoardPolicy
    from games.envs.vector import SelfPlayVecEnv

    env = SelfPlayVecEnv("tictactoe", num_envs=2, opponent="random", seed=0)
    model = MaskablePPO(BoardPolicy, env, n_steps=8, batch_size=16, device="cpu",
                        policy_kwargs={"network": {"channels": 8, "blocks": 1}})
    model.save(tmp_path / "ttt.zip")
    done = run_script(MAKE_DATASET, ["--game", "connect4", "--n", "5", "--quiet", "--out", str(tmp_path / "d"),
                                     "--agent", str(tmp_path / "ttt.zip"), "--sources", "agent-0:1"])
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--agent" in done.stderr and "trained on observations (2, 3, 3) with 9 actions; ConnectFour(7x6) has (3, 6, 7)" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_rerun_with_other_options_is_refused_and_keeps_the_dataset(tmp_path):
    args = ["--game", "tictactoe", "--n", "30", "--jobs", "1", "--quiet", "--out", str(tmp_path / "d")]
    first = run_script(MAKE_DATASET, args)
    assert first.returncode == 0, first.stderr
    table = tmp_path / "d" / "positions.parquet"
    kept = {p: p.read_bytes() for p in (tmp_path / "d").rglob("*") if p.is_file()}
    done = run_script(MAKE_DATASET, args + ["--seed", "1"])
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "already holds a dataset made with other options (seed: 0 -> 1)" in done.stderr, done.stderr
    assert "--overwrite" in done.stderr
    assert {p: p.read_bytes() for p in kept} == kept
    same = run_script(MAKE_DATASET, args)  # same options: resumes (nothing to do) and succeeds
    assert same.returncode == 0, same.stderr
    assert table.read_bytes() == kept[table]
    replaced = run_script(MAKE_DATASET, args + ["--seed", "1", "--overwrite"])
    assert replaced.returncode == 0, replaced.stderr
    assert table.read_bytes() != kept[table]
