"""Concept hygiene: one registry name per distinct concept (aliases), duplicate columns reported per dataset."""

from __future__ import annotations

import json
import logging
import random

import numpy as np
import pandas as pd
import pytest

import games
import games.concepts as registry
from games.concepts import Concept, aliases, concepts, label, register_alias, register_concept, resolve, select
from games.datasets import build_dataset, describe_duplicate, near_duplicate_concepts, read_dataset


def random_states(game, n: int, seed: int) -> list:
    """`n` distinct live positions of random games."""
    rng = random.Random(seed)
    found: dict = {}
    while len(found) < n:
        state = game.initial_state()
        for _ in range(rng.randrange(0, 30)):
            if game.is_terminal(state):
                break
            state = game.play(state, rng.choice(game.legal_actions(state)))
        if not game.is_terminal(state):
            found.setdefault(game.to_text(state), state)
    return list(found.values())


def test_aliases_resolve_and_are_not_listed(caplog, monkeypatch):
    assert aliases("connect4") == {"forced_win_in_1": "win_in_1"}
    assert aliases("tictactoe") == {} and aliases(games.get("connect4", width=5, height=4)) == aliases("connect4")
    table = concepts("connect4")
    assert "win_in_1" in table and "forced_win_in_3" in table
    assert not set(aliases("connect4")) & set(table)  # the listing sweeps iterate has no alias
    assert "alias: forced_win_in_1" in table["win_in_1"].doc
    assert resolve("connect4", "forced_win_in_1") == "win_in_1" and resolve("connect4", "win_in_1") == "win_in_1"
    # select resolves aliases and gives each concept once
    assert [c.name for c in select("connect4", ["forced_win_in_1"])] == ["win_in_1"]
    assert [c.name for c in select("connect4", ["forced_win_in_1", "win_in_1", "forced_win_in_3"])] == \
        ["win_in_1", "forced_win_in_3"]
    with pytest.raises(ValueError, match="forced_win_in_1 -> win_in_1"):  # the error lists the aliases
        select("connect4", ["forced_win_in_2"])
    # the registry refuses a concept under an alias's name, an alias of a concept name or of nothing
    with pytest.raises(ValueError, match="is an alias of"):
        register_concept("connect4", Concept("forced_win_in_1", "binary", "me", "search", "x", lambda g, s, c: None))
    with pytest.raises(ValueError, match="must be a new name"):
        register_alias("connect4", "win_in_1", "forced_win_in_3")
    with pytest.raises(ValueError, match="no concept 'telepathy'"):
        register_alias("connect4", "mind_reading", "telepathy")
    # label keys the result by the names asked for, and logs the resolution at INFO (once per process)
    monkeypatch.setattr(registry, "_ALIASES_LOGGED", set())  # as in a fresh process
    with caplog.at_level(logging.INFO, logger="games.concepts"):
        got = label("connect4", ["4453"], ["forced_win_in_1", "win_in_1"])
    assert set(got) == {"forced_win_in_1", "win_in_1"}
    assert "'forced_win_in_1' is an alias of 'win_in_1'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="games.concepts"):
        label("connect4", ["4453"], ["forced_win_in_1"])
    assert "alias" not in caplog.text  # said once per process
    assert list(label("connect4", ["4453"])) == list(table)  # all concepts: each once, no alias


def test_the_alias_labels_equal_the_concepts_labels():
    for width, height in ((7, 6), (5, 4)):
        game = games.get("connect4", width=width, height=height)
        states = random_states(game, 400, seed=width)
        got = label(game, states, ["forced_win_in_1", "win_in_1", "forced_win_in_3"])
        assert np.array_equal(got["forced_win_in_1"], got["win_in_1"]) and got["win_in_1"].any()
        assert np.all(got["forced_win_in_3"] >= got["win_in_1"])  # within 3 plies includes within 1


@pytest.mark.parametrize("width, height, equal", [(7, 6, True), (5, 4, True), (6, 4, True), (6, 5, False), (8, 7, False)])
def test_lowinverse_and_highinverse_counts_agree_on_even_heights_only(width, height, equal):
    # both stay registered: identical on even heights, different on odd ones (the dataset report flags them)
    game = games.get("connect4", width=width, height=height)
    got = label(game, random_states(game, 300, seed=height), ["n_lowinverse", "n_highinverse",
                                                               "lowinverse_squares", "highinverse_squares"])
    assert np.array_equal(got["n_lowinverse"], got["n_highinverse"]) == equal
    assert not np.array_equal(got["lowinverse_squares"], got["highinverse_squares"])
    assert "n_lowinverse" in concepts("connect4") and "n_highinverse" in concepts("connect4")


def test_near_duplicate_finder_on_a_synthetic_table():
    rng = np.random.default_rng(0)
    n = 2000
    base = rng.normal(size=n)
    anti = -base + rng.normal(scale=0.1, size=n)
    anti_r = np.corrcoef(base, anti)[0, 1]
    assert -0.999 < anti_r < -0.99  # about -0.995
    maps = rng.random((n, 6)) < 0.3
    df = pd.DataFrame({
        "a": base, "a_copy": base.copy(), "a_near": base + rng.normal(scale=0.05, size=n), "a_anti": anti,
        "flat": np.ones(n), "flat_too": np.ones(n), "other": rng.normal(size=n),
        "m": list(maps), "m_copy": list(maps.copy()), "m_other": list(rng.random((n, 6)) < 0.3),
        "m_wide": list(rng.random((n, 8)) < 0.3), "with_nan": np.where(np.arange(n) % 7 == 0, np.nan, base)})
    kinds = {"a": "continuous", "a_copy": "continuous", "a_near": "continuous", "a_anti": "continuous",
             "flat": "count", "flat_too": "count", "other": "continuous", "m": "spatial", "m_copy": "spatial",
             "m_other": "spatial", "m_wide": "spatial", "with_nan": "continuous", "not_a_column": "binary"}
    found = near_duplicate_concepts(df, kinds)
    pairs = {(d["a"], d["b"]): d for d in found}
    assert pairs[("a", "a_copy")]["identical"] and pairs[("a", "a_copy")]["correlation"] == 1.0
    assert not pairs[("a", "a_near")]["identical"] and 0.99 <= pairs[("a", "a_near")]["correlation"] < 1
    assert not pairs[("a", "a_anti")]["identical"]
    assert pairs[("a", "a_anti")]["correlation"] == pytest.approx(anti_r, abs=1e-6)
    assert pairs[("a", "with_nan")]["correlation"] == pytest.approx(1.0)  # over the entries both define
    assert not pairs[("a", "with_nan")]["identical"]
    assert pairs[("m", "m_copy")]["identical"] and pairs[("m", "m_copy")]["kind_a"] == "spatial"
    named = {name for pair in pairs for name in pair}
    assert not named & {"flat", "flat_too", "other", "m_other", "m_wide", "not_a_column"}  # constant, unrelated, other shape
    assert all(list(kinds).index(d["a"]) < list(kinds).index(d["b"]) for d in found)
    assert describe_duplicate(pairs[("a", "a_copy")]) == "a = a_copy (identical)"
    assert describe_duplicate(pairs[("a", "a_near")]).startswith("a ~ a_near (r = 0.99")
    # a stricter threshold keeps only the identical pairs (and those within it); an empty table has none
    assert {(d["a"], d["b"]) for d in near_duplicate_concepts(df, kinds, threshold=1.0)} >= {("a", "a_copy"), ("m", "m_copy")}
    assert near_duplicate_concepts(df.iloc[:0], kinds) == []
    with pytest.raises(ValueError, match="threshold"):
        near_duplicate_concepts(df, kinds, threshold=0)


def test_a_dataset_manifest_records_its_near_duplicates(tmp_path, caplog):
    out = tmp_path / "c4_5x4"
    names = ["win_in_1", "forced_win_in_1", "n_lowinverse", "n_highinverse", "lowinverse_squares",
             "vertical_squares", "n_threats_me"]
    with caplog.at_level(logging.WARNING, logger="games.datasets"):
        build_dataset("connect4", 60, out, seed=2, game_kwargs={"width": 5, "height": 4}, concepts=names, jobs=1,
                      sources="random:1", progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["concepts"] == [n for n in names if n != "forced_win_in_1"]  # the alias is labelled once
    assert manifest["concept_aliases"] == {"forced_win_in_1": "win_in_1"}
    assert manifest["near_duplicate_threshold"] == 0.99
    pairs = {(d["a"], d["b"]): d for d in manifest["near_duplicate_concepts"]}
    assert pairs[("n_lowinverse", "n_highinverse")]["identical"]  # equal on every 5x4 position
    assert "n_lowinverse = n_highinverse (identical)" in caplog.text
    dataset = read_dataset(out)
    assert dataset.near_duplicates() == manifest["near_duplicate_concepts"]
    # a manifest written before the key existed still reads, and the pairs are computed from the positions
    old = {k: v for k, v in manifest.items() if not k.startswith("near_duplicate") and k != "concept_aliases"}
    (out / "manifest.json").write_text(json.dumps(old))
    dataset = read_dataset(out)
    assert "near_duplicate_concepts" not in dataset.manifest
    assert dataset.near_duplicates() == manifest["near_duplicate_concepts"]
