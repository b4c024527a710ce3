"""Labelled datasets: sampling, stratification, resume, determinism, bad input."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest

import games
from games.concepts import label
from games.datasets import build_dataset, parse_sources, sample_positions, stratify


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
