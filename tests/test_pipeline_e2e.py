"""The README's main job, end to end: scripts/pipeline.py on tic-tac-toe with tiny budgets, its
per-game defaults, and child processes that die with it."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from PIL import Image

import games
from games.registry import available
from agents.pipeline import GAME_DEFAULTS, PipelineSettings, Step, StepFailed, parse_step_args, pipeline_steps
from agents.pipeline import run_step
from agents.runs import read_evaluations

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "scripts" / "pipeline.py"
TINY = ["--timesteps", "1000", "--positions", "200", "--jobs", "1",
        "--step-args", "train_agent=--n-envs 16 --n-steps 64 --channels 8 --blocks 1 --eval-games 2 --checkpoints 2 "
                       "--quiet",
        "--step-args", "train_reference=--channels 8 --blocks 1 --epochs 2 --checkpoints 2 --eval-games 2 --quiet",
        "--step-args", "probe_sweep=--checkpoints 1 --random-seeds 1 --tcav-runs 3 --tcav-inputs 10 "
                       "--spatial-positions 100"]


def _pipeline(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PIPELINE), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200"})


def _markdown_tables(text: str) -> list[list[dict[str, str]]]:
    """Every Markdown table of a report, as rows of {column: cell}."""
    tables, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|---") and i > 0 and lines[i - 1].startswith("|"):
            header = [c.strip() for c in lines[i - 1].strip("|").split("|")]
            rows = []
            for row in lines[i + 1:]:
                if not row.startswith("|"):
                    break
                rows.append(dict(zip(header, (c.strip() for c in row.strip("|").split("|")))))
            tables.append(rows)
    return tables


def _valid_png(path: Path) -> None:
    assert path.stat().st_size > 1000, path
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) >= 100, (path, image.size)
        image.verify()


def _check_run_and_report(run: Path, runs: list[str]) -> None:
    sweep = run / "sweep-probe-data-n200"
    report = (sweep / "report.md").read_text()
    tables = _markdown_tables(report)
    found = next(t for t in tables if t and {"concept", "verdict", "delta"} <= set(t[0]))
    assert len(found) >= 5  # tic-tac-toe has a dozen concepts
    for row in found:
        for column in ("delta", "delta_min_ci_low", "delta_max_ci_high"):
            assert math.isfinite(float(row[column])), (row["concept"], column, row[column])
        assert row["verdict"] in ("yes", "not in every seed", "no") and -2.0 <= float(row["delta"]) <= 1.0
    findings = pd.read_csv(sweep / "findings.csv")
    assert sorted(findings["concept"]) == sorted(r["concept"] for r in found)
    assert report.index("## Findings") < report.index("## Checks")  # findings first, the control task a check
    tcav = next(t for t in tables if t and {"tcav", "p_value", "cav_accuracy"} <= set(t[0]))
    assert all(0.0 <= float(r["tcav"]) <= 1.0 and 0.0 <= float(r["p_value"]) <= 1.0 for r in tcav)
    images = [line.split("(")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]
    assert images and all((sweep / name).exists() for name in images)
    for png in [*sweep.glob("*.png"), run / "strength.png"]:
        _valid_png(png)
    results = pd.read_parquet(sweep / "results.parquet")
    assert set(runs) <= set(results["run"])
    probed = results[(results["run"] == run.name) & (results["probe"] != "tcav")]
    assert len(probed) and np.isfinite(probed["value"].to_numpy(dtype=float)).all()
    assert json.loads((sweep / "sweep.json").read_text())["skipped_concepts"] == {}
    # the per-column concept good_moves is swept as one binary concept per square (those that vary)
    per_square = sorted(c for c in probed["concept"].unique() if c.startswith("good_moves["))
    assert per_square and set(per_square) <= {f"good_moves[{a}]" for a in range(9)}
    records = read_evaluations(run)
    assert records and all(math.isfinite(r.move_quality["decisive"].good_rate) for r in records)
    assert set(records[-1].sets) == {"decisive"} and set(records[-1].games) == {"random", "perfect"}


def test_pipeline_on_tictactoe_writes_a_report_with_numbers_and_figures(tmp_path):
    run = tmp_path / "runs" / "ttt"
    done = _pipeline("--game", "tictactoe", "--run", str(run), *TINY)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "--min-ply 0" in done.stdout  # tic-tac-toe's default, not Connect Four's 14
    assert f"report: {run / 'sweep-probe-data-n200' / 'report.md'}" in done.stdout
    _check_run_and_report(run, [run.name, "random-0", "input"])


@pytest.mark.slow
def test_pipeline_with_the_reference_network_and_a_rerun_that_resumes(tmp_path):
    run = tmp_path / "runs" / "ttt"
    done = _pipeline("--game", "tictactoe", "--run", str(run), "--reference", "--reference-positions", "200", *TINY)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _check_run_and_report(run, [run.name, f"{run.name}-reference"])
    assert (tmp_path / "runs" / "ttt-reference" / "strength.png").exists()
    again = _pipeline("--game", "tictactoe", "--run", str(run), "--reference", "--reference-positions", "200", *TINY)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "--resume" in again.stdout and "2c. train the reference network" not in again.stdout


@pytest.mark.slow
def test_pipeline_with_seeds_writes_the_study_across_them(tmp_path):
    done = subprocess.run([sys.executable, str(PIPELINE), "--game", "tictactoe", "--seeds", "0,1", *TINY],
                          capture_output=True, text=True, cwd=tmp_path, timeout=900,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    study = tmp_path / "runs" / "study-tictactoe"
    assert f"report: {Path('runs') / 'study-tictactoe' / 'report.md'}" in done.stdout
    report = (study / "report.md").read_text()
    assert "tictactoe-seed0, tictactoe-seed1 (2 seeds)" in report
    findings = pd.read_csv(study / "findings.csv")
    assert len(findings) >= 5 and findings["runs_represented"].str.endswith("/2").all()
    for name in ("delta-map.png", "emergence.png"):
        _valid_png(study / name)


# ----------------------------------------------------------------------------- defaults
def test_connect4_default_steps_are_the_ones_make_demo_always_ran(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    steps = pipeline_steps(PipelineSettings.resolve())
    script = str(ROOT / "scripts")
    assert [s.args for s in steps] == [
        [f"{script}/train_agent.py", "--game", "connect4", "--out", "runs/connect4-seed0", "--seed", "0"],
        [f"{script}/make_dataset.py", "--game", "connect4", "--out", "runs/connect4-seed0/probe-data-n4000",
         "--n", "4000", "--min-ply", "14", "--sources", "random:0.5,agent-0:0.5", "--agent", "runs/connect4-seed0",
         "--jobs", "2", "--seed", "0"],
        [f"{script}/probe_sweep.py", "--dataset", "runs/connect4-seed0/probe-data-n4000", "--out",
         "runs/connect4-seed0/sweep-probe-data-n4000", "--max-positions", "4000", "--jobs", "2", "--seed", "0",
         "--run", "runs/connect4-seed0"],
        [f"{script}/probe_report.py", "runs/connect4-seed0/sweep-probe-data-n4000"]]
    reference = pipeline_steps(PipelineSettings.resolve(reference=True))
    assert reference[2].args[1:] == ["--game", "connect4", "--out", "runs/reference-data-n20000", "--n", "20000",
                                     "--min-ply", "16", "--sources", "random:1", "--concepts", "value,good_moves",
                                     "--jobs", "2", "--seed", "1"]
    assert not any(tmp_path.iterdir())  # resolving writes nothing


@pytest.mark.parametrize("name", available())
def test_every_registered_game_has_defaults_its_positions_can_meet(name, tmp_path, monkeypatch):
    from games.datasets import sample_positions

    monkeypatch.chdir(tmp_path)
    settings = PipelineSettings.resolve(name, seed=3)
    assert settings.run == Path("runs") / f"{name}-seed3" and settings == PipelineSettings.resolve(name, seed=3)
    defaults = GAME_DEFAULTS[name]  # every registered game has its own entry
    assert (settings.min_ply, settings.positions) == (defaults.min_ply, defaults.positions)
    if name != "connect4":  # small games: the default asks for no more positions than random play finds
        game = games.get(name)
        found = sample_positions(game, defaults.positions, sources={"random": 1.0}, min_ply=defaults.min_ply,
                                 progress=False)
        assert len(found) == defaults.positions


def test_bad_settings_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="--positions must be at least 1, got 0"):
        PipelineSettings.resolve("tictactoe", tmp_path / "r", positions=0)
    with pytest.raises(ValueError, match="unknown game 'chess'"):
        PipelineSettings.resolve("chess", tmp_path / "r")
    with pytest.raises(ValueError, match=r"nim has no \['good_moves'\]"):
        PipelineSettings.resolve("nim", tmp_path / "r", reference=True)
    with pytest.raises(ValueError, match="SCRIPT=OPTIONS"):
        parse_step_args(["solve=--x"])
    assert parse_step_args(["probe_sweep=--tcav-runs 0", "probe_sweep.py=--jobs '1'"]) == {
        "probe_sweep": ["--tcav-runs", "0", "--jobs", "1"]}
    assert not (tmp_path / "r").exists()


def test_a_run_of_another_game_is_not_resumed_as_this_one(tmp_path):
    from agents.selfplay import TrainConfig, train

    run = tmp_path / "run"
    config = TrainConfig(game="tictactoe", total_timesteps=512, n_envs=16, n_steps=32, batch_size=256, checkpoints=1,
                         network={"channels": 8, "blocks": 1, "head_channels": 2, "head_hidden": 16}, torch_threads=1)
    train(config, run, progress_bar=False, evaluate=False)
    with pytest.raises(ValueError, match="holds a tictactoe run, not nim"):
        PipelineSettings.resolve("nim", run)
    assert pipeline_steps(PipelineSettings.resolve("tictactoe", run))[0].args[-1] == "--resume"


# ----------------------------------------------------------------------------- child processes
SPAWNER = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print("ready", flush=True)
time.sleep(120)
"""


def _driver(tmp_path: Path) -> subprocess.Popen:
    """A process that runs one step (a child with a grandchild) with `run_step`, as the pipeline does."""
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
            "from agents.pipeline import Step, run_step, Stopped\n"
            f"try:\n    run_step(Step('sleep', ['-c', {SPAWNER!r}]), grace_s=5)\n"
            "except Stopped as exc:\n    sys.exit(128 + exc.signum)\n"
            "except KeyboardInterrupt:\n    sys.exit(130)\n")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=tmp_path,
                            start_new_session=True)


def _descendants_when_ready(proc: subprocess.Popen, count: int, timeout_s: float = 60) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = psutil.Process(proc.pid).children(recursive=True)
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} descendants of {proc.pid} after {timeout_s} s")


def _gone(processes: list[psutil.Process], timeout_s: float = 30) -> list[psutil.Process]:
    """The processes still alive (zombies count as gone) after waiting up to `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = []
        for p in processes:
            try:
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_parent_stops_the_step_and_its_workers(tmp_path, signum):
    driver = _driver(tmp_path)
    try:
        children = _descendants_when_ready(driver, 2)  # the step and its own child
        assert {p.pid for p in children}.isdisjoint({driver.pid}) and os.getpgid(children[0].pid) != driver.pid
        os.kill(driver.pid, signum)
        driver.wait(timeout=60)
        assert _gone(children) == []
        assert driver.returncode == 128 + signum  # Stopped for SIGTERM, KeyboardInterrupt for SIGINT
    finally:
        for p in psutil.Process(driver.pid).children(recursive=True) if driver.poll() is None else []:
            p.kill()
        driver.kill()


def test_the_step_dies_even_when_the_parent_is_killed_outright(tmp_path):
    driver = _driver(tmp_path)
    children = _descendants_when_ready(driver, 2)
    step = next(p for p in children if p.ppid() == driver.pid)
    try:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
        assert _gone([step]) == []  # PR_SET_PDEATHSIG
    finally:
        for p in children:
            try:
                p.kill()  # the grandchild: nobody is left to stop it after kill -9 (see run_step)
            except psutil.NoSuchProcess:
                pass


def test_run_step_reports_a_failing_step():
    with pytest.raises(StepFailed, match=r"step 'fails' failed \(exit status 3\)"):
        run_step(Step("fails", ["-c", "import sys; sys.exit(3)"]))


def test_kill_term_on_the_pipeline_leaves_no_child_running(tmp_path):
    """A real pipeline (tic-tac-toe, default budget: minutes of training) stopped with kill -TERM."""
    proc = subprocess.Popen([sys.executable, str(PIPELINE), "--game", "tictactoe", "--run", str(tmp_path / "run")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=True)
    try:
        children = _descendants_when_ready(proc, 1)
        time.sleep(1.0)
        children = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert _gone(children) == []
        assert proc.returncode == 128 + signal.SIGTERM
        assert err.strip().splitlines()[-1].startswith("error: stopped by signal SIGTERM") and "Traceback" not in err
    finally:
        if proc.poll() is None:
            for p in psutil.Process(proc.pid).children(recursive=True):
                p.kill()
            proc.kill()
