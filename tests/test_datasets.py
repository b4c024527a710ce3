"""Labelled datasets: sampling, stratification, resume, determinism, bad input."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest

import games
from games.concepts import label
from games.datasets import build_dataset, parse_sources, read_dataset, sample_positions, stratify


def test_sources_and_errors():
    assert parse_sources("random:1,epsilon-0.1:3") == {"random": 0.25, "epsilon-0.1": 0.75}
    with pytest.raises(ValueError, match="unknown source 'alphazero'"):
        parse_sources("alphazero:1")
    with pytest.raises(ValueError, match="epsilon must be in"):
        parse_sources("epsilon-2:1")
    with pytest.raises(ValueError, match="unknown game"):
        build_dataset("go", 10, "/tmp/never")


def test_sampling_is_deterministic_distinct_and_stratified():
    game = games.get("tictactoe")
    a = sample_positions(game, 300, seed=3, progress=False)
    b = sample_positions(game, 300, seed=3, progress=False)
    assert [p.text for p in a] == [p.text for p in b]
    keys = [game.canonical_key(p.state) for p in a]
    assert len(set(keys)) == len(keys) == 300
    plies = np.bincount([p.ply for p in a])
    assert plies.min() >= 1 or plies[0] == 1  # the empty board exists once
    assert not any(game.is_terminal(p.state) for p in a)


def test_stratify_spreads_over_plies():
    from games.datasets import SampledPosition

    pool = [SampledPosition(None, f"{ply}-{i}", ply, i, "random") for ply in range(4) for i in range(10 * (ply + 1))]
    chosen = stratify(pool, 20, random.Random(0))
    assert np.bincount([p.ply for p in chosen]).tolist() == [5, 5, 5, 5]
    chosen = stratify(pool[:12], 20, random.Random(0))  # not enough: everything is taken
    assert len(chosen) == 12


@pytest.mark.parametrize("game_name, kwargs", [("tictactoe", {}), ("nim", {"heaps": (3, 4, 5)}), ("connect4", {"width": 5, "height": 4})])
def test_build_resume_and_labels(tmp_path, game_name, kwargs):
    out = tmp_path / game_name
    path = build_dataset(game_name, 120, out, seed=1, game_kwargs=kwargs, jobs=1, batch_size=50,
                         solution_cache=tmp_path / "s.sqlite", progress=False)
    df = pd.read_parquet(path)
    assert list(df.columns[:4]) == ["moves", "ply", "game_id", "source"]
    assert len(df) == 120 and df["moves"].is_unique
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["positions"] == 120 and manifest["seed"] == 1
    assert {c["name"] for c in manifest["concept_metadata"]} == set(df.columns[4:])
    read = read_dataset(out)  # the one reader of the folder gives back what was written
    assert read.manifest == manifest and read.positions.equals(df) and repr(read.game) == repr(games.get(game_name, **kwargs))
    assert list(read.concept_kinds) == [c["name"] for c in manifest["concept_metadata"]]
    # labels equal a direct computation
    game = games.get(game_name, **kwargs)
    states = [game.parse(t) for t in df["moves"]]
    direct = label(game, states, ["value"])
    assert np.array_equal(df["value"].to_numpy(), direct["value"])
    # resume: delete one part and the table; the rerun relabels only that part
    parts = sorted((out / "parts").glob("part-*.parquet"))
    assert len(parts) == 3
    keep = {p: p.stat().st_mtime_ns for p in parts[1:]}
    parts[0].unlink()
    path.unlink()
    build_dataset(game_name, 120, out, seed=1, game_kwargs=kwargs, jobs=1, batch_size=50,
                  solution_cache=tmp_path / "s.sqlite", progress=False)
    assert all(p.stat().st_mtime_ns == t for p, t in keep.items())
    assert pd.read_parquet(path).equals(df)


def test_positions_file_source(tmp_path):
    f = tmp_path / "pos.txt"
    f.write_text("x........\nxo.......\nxx..o....\n")
    path = build_dataset("tictactoe", 3, tmp_path / "d", sources="file:1", positions_file=f, jobs=1, progress=False)
    df = pd.read_parquet(path)
    assert sorted(df["moves"]) == sorted(["x........", "xo.......", "xx..o...."])
    assert df["game_id"].nunique() == 3
    bad = tmp_path / "bad.txt"
    bad.write_text("x........\nxxxxxxxxx\n")
    with pytest.raises(ValueError, match="bad.txt:2"):
        build_dataset("tictactoe", 3, tmp_path / "e", sources="file:1", positions_file=bad, jobs=1, progress=False)


def test_parallel_labelling_matches_serial(tmp_path):
    serial = pd.read_parquet(build_dataset("tictactoe", 200, tmp_path / "a", seed=2, jobs=1, batch_size=40, progress=False))
    parallel = pd.read_parquet(build_dataset("tictactoe", 200, tmp_path / "b", seed=2, jobs=2, batch_size=40, progress=False))
    pd.testing.assert_frame_equal(serial, parallel)


# ------------------------------------------------------------------------------ hardening (issue 19)
@pytest.mark.parametrize("kwargs, message", [
    ({"n": -5}, "n must be >= 1, got -5"),
    ({"n": 0}, "n must be >= 1, got 0"),
    ({"n": 2.5}, "n must be an integer, got 2.5"),
    ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
    ({"jobs": 0}, "jobs must be >= 1, got 0"),
    ({"min_ply": -1}, "min_ply must be >= 0, got -1"),
    ({"random_opening": -2}, "random_opening must be >= 0, got -2"),
    ({"max_ply": -1}, "max_ply must be >= 0, got -1"),
    ({"min_ply": 5, "max_ply": 3}, r"max_ply \(3\) is below min_ply \(5\)"),
    ({"sources": "random:0"}, "'random' has weight 0.0; weights must be positive"),
    ({"sources": "random:-1,epsilon-0.1:1"}, "'random' has weight -1.0"),
    ({"sources": "random:nan"}, "'random' has weight nan"),
    ({"sources": "telepathy:1"}, "unknown source 'telepathy'"),
    ({"sources": "file:1"}, "the 'file' source needs a positions file"),
    ({"positions_file": "x.txt"}, "do not include 'file'"),
    ({"concepts": ["telepathy"]}, r"unknown concept\(s\) \['telepathy'\]"),
])
def test_build_dataset_validates_every_argument_before_writing(tmp_path, kwargs, message):
    args = {"n": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_dataset("tictactoe", args.pop("n"), tmp_path / "d", jobs=args.pop("jobs", 1), progress=False, **args)
    assert not (tmp_path / "d").exists()


def test_short_requests_warn_and_say_how_many_positions_exist(tmp_path, caplog):
    from games.datasets import count_live_positions

    ttt = games.get("tictactoe")
    assert count_live_positions(ttt) == 627 and count_live_positions(ttt, 8) == 34
    assert count_live_positions(games.get("connect4")) is None  # too many to count
    with caplog.at_level("WARNING", logger="games.datasets"):
        path = build_dataset("tictactoe", 50, tmp_path / "d", min_ply=8, concepts=["win_in_1"], jobs=1,
                             progress=False)
    note = "34 of the 50 requested tictactoe positions: only 34 distinct live positions with >= 8 plies exist"
    assert any(note in r.getMessage() for r in caplog.records)
    assert len(pd.read_parquet(path)) == 34
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert (manifest["requested"], manifest["produced"]) == (50, 34) and note in manifest["shortfall"]
    caplog.clear()
    path = build_dataset("tictactoe", 2000, tmp_path / "all", concepts=["win_in_1"], jobs=1, progress=False)
    assert len(pd.read_parquet(path)) == 627
    assert "only 627 distinct live positions with >= 0 plies exist" in caplog.text
    full = build_dataset("tictactoe", 40, tmp_path / "full", concepts=["win_in_1"], jobs=1, progress=False)
    manifest = json.loads((tmp_path / "full" / "manifest.json").read_text())
    assert len(pd.read_parquet(full)) == 40 and manifest["shortfall"] is None and manifest["produced"] == 40


def test_max_ply_keeps_an_early_game_window(tmp_path):
    path = build_dataset("tictactoe", 60, tmp_path / "d", min_ply=2, max_ply=4, concepts=["win_in_1"], jobs=1,
                         progress=False)
    plies = pd.read_parquet(path)["ply"]
    assert plies.between(2, 4).all() and set(plies) == {2, 3, 4}
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["max_ply"] == 4
    plain = build_dataset("tictactoe", 20, tmp_path / "p", concepts=["win_in_1"], jobs=1, progress=False)
    assert "max_ply" not in json.loads((plain.parent / "manifest.json").read_text())


def test_sources_that_reach_too_few_positions_are_named(tmp_path, caplog):
    f = tmp_path / "pos.txt"
    f.write_text("x........\nxo.......\n")
    with caplog.at_level("WARNING", logger="games.datasets"):
        build_dataset("tictactoe", 5, tmp_path / "d", sources="file:1", positions_file=f, jobs=1, progress=False)
    assert "2 of the 5 requested tictactoe positions: 2 distinct live positions came from the positions file" in caplog.text
    (tmp_path / "terminal.txt").write_text("xxxoo....\n")
    with pytest.raises(ValueError, match="no positions to label: .*the positions file holds no live position"):
        build_dataset("tictactoe", 5, tmp_path / "e", sources="file:1", positions_file=tmp_path / "terminal.txt",
                      jobs=1, progress=False)
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        build_dataset("tictactoe", 5, tmp_path / "f", sources="file:1", positions_file=tmp_path / "empty.txt",
                      jobs=1, progress=False)


def test_default_min_ply_keeps_connect4_labelling_cheap(tmp_path):
    from games.datasets import default_batch_size, default_min_ply, default_random_opening

    assert default_min_ply(games.get("connect4")) == 12
    assert default_min_ply(games.get("connect4", width=5, height=4)) == 0
    assert default_min_ply(games.get("tictactoe")) == 0 and default_min_ply(games.get("nim")) == 0
    assert [default_batch_size(n) for n in (1, 400, 2000, 100000)] == [16, 16, 63, 256]
    assert default_random_opening(games.get("connect4")) == 10  # the oracle is fast from ply 10 on (7x6)
    assert default_random_opening(games.get("connect4"), "random:0.5,agent-0:0.5") == 6  # no oracle calls
    assert default_random_opening(games.get("connect4", width=5, height=4)) == 6
    assert default_random_opening(games.get("tictactoe")) == 6
    path = build_dataset("connect4", 30, tmp_path / "d", sources="random:1", concepts=["win_in_1"], jobs=1,
                         progress=False)
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["min_ply"] == 12 and pd.read_parquet(path)["ply"].min() == 12
    # positions of a file are taken whatever their ply
    f = tmp_path / "pos.txt"
    f.write_text("4\n44\n")
    path = build_dataset("connect4", 2, tmp_path / "e", sources="file:1", positions_file=f, concepts=["win_in_1"],
                         jobs=1, progress=False)
    assert sorted(pd.read_parquet(path)["ply"]) == [1, 2]


def test_rerun_with_other_options_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "d"
    first = pd.read_parquet(build_dataset("tictactoe", 20, out, concepts=["win_in_1"], jobs=1, progress=False))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=r"already holds a dataset made with other options \(concepts: \['win_in_1'\] "
                                         r"-> \['value'\]; n: 20 -> 30\); pass --overwrite"):
        build_dataset("tictactoe", 30, out, concepts=["value"], jobs=1, progress=False)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    (out / "sample.json").unlink()  # a dataset of unknown options is not replaced either
    with pytest.raises(ValueError, match="made with other or unknown options"):
        build_dataset("tictactoe", 20, out, concepts=["win_in_1"], jobs=1, progress=False)
    again = build_dataset("tictactoe", 30, out, concepts=["value"], jobs=1, progress=False, overwrite=True)
    assert len(pd.read_parquet(again)) == 30 and len(first) == 20
    assert len(list((out / "parts").glob("part-*.parquet"))) == 2  # 30 positions, 16 a batch; old parts gone


def test_labelling_shows_progress_by_position_on_stderr(tmp_path, capsys):
    build_dataset("tictactoe", 40, tmp_path / "d", concepts=["win_in_1"], jobs=1, batch_size=10, progress=True)
    err = capsys.readouterr().err
    assert "labelling tictactoe positions" in err and "40/40" in err and "pos/s" in err


def test_corrupt_solution_cache_is_named_and_can_be_moved_aside(tmp_path, caplog):
    from solver.cache import CorruptCacheError, SolutionCache

    bad = tmp_path / "solutions.sqlite"
    bad.write_bytes(b"not a database at all\n" * 100)
    game = games.get("connect4", width=5, height=4)
    with pytest.raises(CorruptCacheError, match=f"solution cache {bad} is corrupt .*delete it .*--rebuild-cache"):
        label(game, ["33"], ["value"], solution_cache=bad)
    with pytest.raises(ValueError, match=f"solution cache {bad} is corrupt"):
        build_dataset("connect4", 5, tmp_path / "d", game_kwargs={"width": 5, "height": 4}, concepts=["value"],
                      solution_cache=bad, jobs=1, progress=False)
    assert bad.read_bytes().startswith(b"not a database")  # untouched without rebuild
    with caplog.at_level("WARNING", logger="solver.cache"):
        path = build_dataset("connect4", 5, tmp_path / "d", game_kwargs={"width": 5, "height": 4}, concepts=["value"],
                             solution_cache=bad, rebuild_cache=True, jobs=1, progress=False)
    aside = list(tmp_path.glob("solutions.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"not a database")
    assert f"moved it to {aside[0]}" in caplog.text
    with SolutionCache(bad) as store:
        assert len(store) == 5  # the new cache holds the new dataset's solutions
    assert len(pd.read_parquet(path)) == 5
    # damage deep in a real cache file is found when the dataset starts, not mid-way
    whole = bad.read_bytes()
    bad.write_bytes(whole[: len(whole) // 2] + b"\xff" * (len(whole) - len(whole) // 2))
    with pytest.raises(CorruptCacheError, match="is corrupt"):
        SolutionCache(bad, verify=True)


def test_resume_keeps_the_batch_size_it_started_with(tmp_path):
    out = tmp_path / "d"
    build_dataset("tictactoe", 30, out, concepts=["win_in_1"], jobs=1, batch_size=10, progress=False)
    parts = {p: p.stat().st_mtime_ns for p in (out / "parts").glob("part-*.parquet")}
    assert len(parts) == 3
    build_dataset("tictactoe", 30, out, concepts=["win_in_1"], jobs=1, progress=False)  # default size: resumes
    assert {p: p.stat().st_mtime_ns for p in (out / "parts").glob("part-*.parquet")} == parts
    with pytest.raises(ValueError, match="being labelled in batches of 10 positions; rerun without --batch-size"):
        build_dataset("tictactoe", 30, out, concepts=["win_in_1"], jobs=1, batch_size=7, progress=False)


def test_read_dataset_names_the_missing_or_damaged_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json does not exist"):
        read_dataset(tmp_path)
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(ValueError, match="manifest.json is not valid JSON"):
        read_dataset(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"game": "tictactoe", "concept_metadata": []}))
    with pytest.raises(FileNotFoundError, match="positions.parquet does not exist"):
        read_dataset(tmp_path)
    (tmp_path / "positions.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(ValueError, match="cannot be read as Parquet"):
        read_dataset(tmp_path)
