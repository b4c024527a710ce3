"""Interrupting a parallel make_dataset.py: Ctrl-C, SIGTERM and kill -9 with real processes.

One batch holds a Connect Four position with 3 stones (its exact labels take the solver
minutes), the others positions with 30 stones (milliseconds). Once the cheap batches are
written, the parent is signalled: it must exit (promptly: the wait has a timeout), keep
every finished part file, and leave no worker process behind.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPENSIVE = "444"  # 3 stones: past the shipped depth-2 book, minutes of search per child
N_CHEAP = 6


def _cheap_positions(n: int) -> list[str]:
    import games
    from games.datasets import play_game

    game = games.get("connect4")
    rng = random.Random(5)
    found: dict[int, str] = {}
    while len(found) < n:
        states = play_game(game, "random", rng, random_opening=0)
        if len(states) > 31 and not game.is_terminal(states[30]):
            found.setdefault(game.canonical_key(states[30]), game.to_text(states[30]))
    return list(found.values())


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the worker processes")
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)],
                         ids=["ctrl-c", "sigterm", "kill-9"])
def test_interrupted_parallel_labelling_keeps_parts_and_leaves_no_child(tmp_path, sig, code):
    positions = tmp_path / "positions.txt"
    positions.write_text("\n".join([EXPENSIVE, *_cheap_positions(N_CHEAP)]) + "\n")
    out = tmp_path / "d"
    cmd = [sys.executable, str(ROOT / "scripts" / "make_dataset.py"), "--game", "connect4", "--n", str(N_CHEAP + 1),
           "--sources", "file:1", "--positions-file", str(positions), "--concepts", "value", "--batch-size", "1",
           "--jobs", "2", "--quiet", "--out", str(out), "--solution-cache", str(tmp_path / "solutions.sqlite")]
    env = {k: v for k, v in os.environ.items() if k != "SOLVEDLENS_DEBUG"}
    # Ctrl-C as a terminal delivers it: a runner started in the background (``cmd &``) ignores SIGINT, and a
    # child inheriting that would never see the KeyboardInterrupt under test
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        def cheap_parts() -> list[Path]:
            return [p for i in range(1, N_CHEAP + 1) for p in (out / "parts").glob(f"part-{i:05d}-*.parquet")]

        # generous: a cold numba cache makes each worker compile the solver first
        _wait_for(lambda: len(cheap_parts()) == N_CHEAP or proc.poll() is not None, 400, "the cheap batches")
        assert proc.poll() is None, proc.communicate(timeout=10)
        assert not list((out / "parts").glob("part-00000-*.parquet"))  # the 3-stone batch is still being searched
        children = _children(proc.pid)
        assert len(children) >= 2  # the two workers (and multiprocessing's resource tracker)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    if sig != signal.SIGKILL:
        assert f"interrupted: {N_CHEAP} of {N_CHEAP + 1} batches are labelled and kept" in stderr, stderr
    _wait_for(lambda: not any(_alive(pid) for pid in children), 30, f"children {children} to exit")
    assert len(cheap_parts()) == N_CHEAP  # finished work is kept
    assert not (out / "positions.parquet").exists()
