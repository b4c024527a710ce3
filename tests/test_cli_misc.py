"""Bad input at the solver, demo, benchmark, causal and LM command lines: one line, non-zero exit, no traceback.

Every row runs a script in a subprocess and expects its exit status, a fragment of its
stderr, and no "Traceback". The checks all fail before any model or agent is loaded, so
each row costs an interpreter start and some imports (the solver rows may load the
compiled solver from numba's cache).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNWRITABLE = "/proc/solvedlens-test/out"  # not creatable even as root (a read-only folder is writable for root)


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    (root / "empty.txt").write_text("")
    (root / "illegal.txt").write_text("4x53\n")
    finished = root / "finished"
    finished.mkdir()
    for marker in ("summary.json", "results.json", "probe_by_layer.json", "emergence.json", "causal.json",
                   "study.json"):
        (finished / marker).write_text("{}")
    return {"root": root, "empty": root / "empty.txt", "illegal": root / "illegal.txt", "finished": finished}


CASES = [
    # (name, script and arguments, exit status, stderr fragment)
    ("solve: illegal move string", ["scripts/solve.py", "{illegal}"], 1, "line 1: move 2 in '4x53'"),
    ("solve: missing file", ["scripts/solve.py", "{root}/nope.txt"], 2, "does not exist"),
    ("solve: empty file", ["scripts/solve.py", "{empty}"], 2, "is empty"),
    ("solve: board too small", ["scripts/solve.py", "--width", "3", "{illegal}"], 2, "too small"),
    ("solve: unknown option", ["scripts/solve.py", "--bogus"], 2, "No such option"),
    ("demo: unknown set", ["scripts/demo.py", "--sets", "Test_L9_R9"], 2, "unknown set(s) ['Test_L9_R9']"),
    ("demo: negative count", ["scripts/demo.py", "--positions", "-1"], 2, "--positions must be 0 (all) or more"),
    ("bench_solver: unknown configuration", ["scripts/bench_solver.py", "--configs", "fast"], 2,
     "unknown configuration(s) ['fast']"),
    ("bench_solver: unwritable output", ["scripts/bench_solver.py", "--out", UNWRITABLE + "/b.json"], 2, "error: "),
    ("bench_vs_pons: no source", ["scripts/bench_vs_pons.py", "--pons-source", "{root}/nope"], 2,
     "is not a folder (clone github.com/PascalPons/connect4"),
    ("bench_vs_pons: not Pons' sources", ["scripts/bench_vs_pons.py", "--pons-source", "{root}"], 2,
     "it is not Pons' solver at tag part12"),
    ("bench_vs_pons: bad board size", ["scripts/bench_vs_pons.py", "--pons-source", "{root}", "--sizes", "6by5"], 2,
     "board sizes are WxH"),
    ("bench_training: no moves", ["scripts/bench_training.py", "--timesteps", "0"], 2, "must be at least 1, got 0"),
    ("bench_training: unknown precision", ["scripts/bench_training.py", "--update-dtype", "int8"], 2,
     "update_dtype must be one of"),
    ("bench_coldstart: illegal move string", ["scripts/bench_coldstart.py", "--position", "48x", "--out",
                                              "{root}/c.json"], 2, "error: move 2 in '48x'"),
    ("bench_coldstart: negative count", ["scripts/bench_coldstart.py", "--warm", "-1"], 2, "--warm must be 0 or more"),
    ("probe_usage: nothing to test", ["scripts/probe_usage.py", "--out", "{root}/usage"], 2,
     "name a --study folder, or --network checkpoints"),
    ("probe_usage: not a study folder", ["scripts/probe_usage.py", "--study", "{root}", "--out", "{root}/usage"], 2,
     "holds no seed folders"),
    ("probe_usage: bad alphas", ["scripts/probe_usage.py", "--study", "{root}", "--alphas", "a,b", "--out",
                                 "{root}/usage"], 2, "--alphas must be comma-separated numbers"),
    ("probe_usage: too few controls", ["scripts/probe_usage.py", "--study", "{root}", "--random-controls", "0",
                                       "--out", "{root}/usage"], 2, "n_random must be an integer of at least 1"),
    ("probe_usage: missing network", ["scripts/probe_usage.py", "--network", "{root}/no-such-run", "--network-dataset",
                                      "{root}", "--out", "{root}/usage"], 2, "no-such-run"),
    ("probe_dictionaries: nothing to study", ["scripts/probe_dictionaries.py", "--out", "{root}/d"], 2,
     "name a --study folder, or --network checkpoints"),
    ("probe_dictionaries: not a study folder", ["scripts/probe_dictionaries.py", "--study", "{root}", "--out",
                                                "{root}/d"], 2, "holds no seed folders"),
    ("probe_dictionaries: bad architecture", ["scripts/probe_dictionaries.py", "--study", "{root}", "--architecture",
                                              "gated", "--out", "{root}/d"], 2, "architecture must be one of"),
    ("probe_dictionaries: zero steps", ["scripts/probe_dictionaries.py", "--study", "{root}", "--steps", "0", "--out",
                                        "{root}/d"], 2, "n_steps must be a positive integer"),
    ("probe_dictionaries: missing network", ["scripts/probe_dictionaries.py", "--network", "{root}/no-such-run",
                                             "--network-dataset", "{root}", "--out", "{root}/d"], 2, "no-such-run"),
    ("lm_rome: zero edits", ["scripts/lm_rome.py", "--n-edits", "0"], 2, "--n-edits must be at least 1, got 0"),
    ("lm_rome: unknown editor", ["scripts/lm_rome.py", "--editor", "memit"], 2, "unknown editors ['memit']"),
    ("lm_rome: finished output", ["scripts/lm_rome.py", "--out", "{finished}"], 2,
     "already holds a result (summary.json); pass --overwrite"),
    ("lm_rome: unwritable output", ["scripts/lm_rome.py", "--out", UNWRITABLE], 2, "error: "),
    ("lm_backup_heads: zero movers", ["scripts/lm_backup_heads.py", "--n-movers", "0"], 2, "--n-movers must be at least 1"),
    ("lm_backup_heads: negative resamples", ["scripts/lm_backup_heads.py", "--n-boot", "-1"], 2,
     "--n-boot must be at least 0"),
    ("lm_backup_heads: finished output", ["scripts/lm_backup_heads.py", "--out", "{finished}"], 2,
     "already holds a result (results.json)"),
    ("lm_mae: zero examples", ["scripts/lm_mae.py", "--layer", "0", "--neuron", "0", "--top-k", "0"], 2,
     "--top-k must be at least 1"),
    ("lm_mae: finished output", ["scripts/lm_mae.py", "--layer", "0", "--neuron", "0", "--out", "{finished}"], 2,
     "already holds a result"),
    ("lm_probe_demo: negative resamples", ["scripts/lm_probe_demo.py", "--n-boot", "-1"], 2, "--n-boot must be 0 or more"),
    ("lm_probe_demo: finished output", ["scripts/lm_probe_demo.py", "--out", "{finished}"], 2,
     "already holds a result (probe_by_layer.json)"),
    ("lm_mae_study: bad layers", ["scripts/lm_mae_study.py", "--layers", "2,x"], 2, "--layers takes comma-separated"),
    ("lm_mae_study: zero neurons per layer", ["scripts/lm_mae_study.py", "--per-layer", "0"], 2,
     "--per-layer must be at least 1"),
    ("lm_mae_study: finished output", ["scripts/lm_mae_study.py", "--out", "{finished}"], 2,
     "already holds a result (study.json)"),
    ("lm_backup_emergence: bad rates", ["scripts/lm_backup_emergence.py", "--rates", "a,b"], 2,
     "--rates takes numbers"),
    ("lm_backup_emergence: finished output", ["scripts/lm_backup_emergence.py", "--out", "{finished}"], 2,
     "already holds a result (emergence.json)"),
    ("train_lm: zero steps", ["scripts/train_lm.py", "--out", "{root}/lm", "--steps", "0"], 2,
     "--steps must be at least 1, got 0"),
    ("train_lm: existing checkpoint", ["scripts/train_lm.py", "--out", "{finished}"], 2, "pass --overwrite"),
    ("train_lm: missing --out", ["scripts/train_lm.py"], 2, "Missing option '--out'"),
]


@pytest.mark.parametrize("name, args, status, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_a_non_zero_exit(files, name, args, status, fragment):
    done = _run([a.format(**files) for a in args], REPO)
    assert done.returncode == status, (done.stdout[-2000:], done.stderr[-2000:])
    assert fragment in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    # ours: "error: ..." (common.cli.run_app) or "line N: ..." (solve.py); typer's own usage errors: "Error: ..."
    errors = [line for line in done.stderr.splitlines() if line.lstrip("│ ").startswith(("error: ", "line ", "Error: "))]
    assert len(errors) == 1, done.stderr[-2000:]


def test_nothing_written_over_a_finished_result(files):
    before = {p.name: p.read_text() for p in files["finished"].iterdir()}
    _run(["scripts/lm_rome.py", "--out", str(files["finished"])], REPO)
    assert {p.name: p.read_text() for p in files["finished"].iterdir()} == before


def test_lm_scripts_default_to_runs_not_to_the_recorded_results(tmp_path):
    """Run from a scratch folder: the default destination is created under ./runs, never ./results."""
    from common.outputs import prepare_output

    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        folder = prepare_output(None, "lm_rome_tiny", overwrite=False, finished=("summary.json",))
        assert folder == Path("runs/lm_rome_tiny") and folder.is_dir()
        (folder / "edits").mkdir()  # an unfinished, resumable run is reused without --overwrite
        assert prepare_output(None, "lm_rome_tiny", overwrite=False, finished=("summary.json",)) == folder
        (folder / "summary.json").write_text("{}")
        with pytest.raises(FileExistsError, match="already holds a result"):
            prepare_output(None, "lm_rome_tiny", overwrite=False, finished=("summary.json",))
        assert prepare_output(None, "lm_rome_tiny", overwrite=True, finished=("summary.json",)) == folder
        assert not Path("results").exists()
    finally:
        os.chdir(old)
    for script in ("lm_rome", "lm_backup_heads", "lm_mae", "lm_mae_study", "lm_probe_demo", "lm_backup_emergence",
                   "probe_usage", "probe_dictionaries"):
        text = (REPO / "scripts" / f"{script}.py").read_text()
        assert 'Path("results")' not in text, script  # no default into the committed results
        assert "run_app(app)" in text and "prepare_output(" in text, script


def test_demo_help_describes_the_options_and_solves_nothing():
    done = _run(["scripts/demo.py", "--help"], REPO, timeout=120)
    assert done.returncode == 0
    assert "--sets" in done.stdout and "--positions" in done.stdout and "Usage" in done.stdout
    assert "agree" not in done.stdout  # the benchmark table was not printed


def _bench_solver_module():
    spec = importlib.util.spec_from_file_location("bench_solver_under_test", REPO / "scripts" / "bench_solver.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_solver_names_the_cpu_and_gives_no_ratio_without_an_anchor(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import common.provenance as provenance

    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    monkeypatch.setattr(provenance, "cpu_model", lambda: "Intel(R) Xeon(R) Platinum 8480+")
    bench = _bench_solver_module()
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(bench.app, ["--limit", "2", "--hard-limit", "1", "--configs", "default", "--repeats", "1",
                                            "--no-empty", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Intel(R) Xeon(R) Platinum 8480+: no anchor for this CPU" in result.output
    report = json.loads(out.read_text())
    assert report["pons_anchor"] is None
    for entry in report["sets"].values():
        assert entry["pons_comparison"] == "no anchor for this CPU"
        assert all("speedup_vs_pons" not in r for r in entry["results"].values())


def test_bench_solver_compares_only_the_positions_the_anchor_was_measured_on():
    from solver.benchmarks import PONS_SETS, PonsFigure, anchor_for

    bench = _bench_solver_module()
    intel = anchor_for("Intel(R) Xeon(R) CPU @ 2.20GHz")
    spec = {s.name: s for s in PONS_SETS}
    begin_medium = intel.figures["Test_L1_R2"]  # measured on the first 100 positions
    assert bench.pons_reference(begin_medium, spec["Test_L1_R2"], "Test_L1_R2", 100, 1000) == (153000.0, "measured")
    assert bench.pons_reference(begin_medium, spec["Test_L1_R2"], "Test_L1_R2", 20, 1000) == (
        None, "anchor: first 100, run: 20")
    epyc_hard = anchor_for("AMD EPYC").figures["Test_L1_R3"]  # measured on the look-alike's first 10
    assert bench.pons_reference(epyc_hard, spec["Test_L1_R3"], "Gen_L1_R3", 10, 50) == (6202000.0, "measured")
    his_own_file = PonsFigure(5490000.0, "Test_L1_R3")  # on Pons' own file: scaled by nodes to the look-alike
    assert bench.pons_reference(his_own_file, spec["Test_L1_R3"], "Gen_L1_R3", 10, 50) == (None, "node-scaled")
    assert bench.pons_reference(None, spec["Test_L3_R1"], "Test_L3_R1", 10, 1000) == (None, "no anchor figure for this set")
