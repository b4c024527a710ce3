"""Paired differences between two trained networks, on planted networks whose answer is known.

Boards are random 2-plane 4x5 maps (as in test_study.py). ``parity`` (whether the number of
stones is odd) is readable only from a network that carries it in a unit: the ``planted``
network does, at its flat layer ``hidden``; the ``plain`` network is the same architecture
without it. ``stones`` (the count) is a linear function of the input, readable from both.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probes.comparison import (
    Pairing,
    across_seeds,
    network_differences,
    summarise_concepts,
)
from probes.study import StudySettings
from probes.sweep import ConceptLabels, ModelEntry, SweepSettings, run_sweep
from tests.test_study import StudyNet, _entry

SETTINGS = StudySettings(n_boot=300)
PAIRS = [Pairing("planted vs plain", "planted", 100, "plain", 100), Pairing("plain vs planted", "plain", 100,
                                                                             "planted", 100)]


def _sweep(folder, seed: int):
    rng = np.random.default_rng(seed)
    x = (rng.random((600, 2, 4, 5)) < 0.3).astype(np.float32)
    games = np.repeat(np.arange(100), 6)
    flat = x.reshape(len(x), -1).sum(axis=1)
    concepts = [ConceptLabels("parity", "binary", (flat % 2).astype(int)),
                ConceptLabels("stones", "count", flat.astype(int))]
    entries = [_entry("planted", 100, StudyNet(seed, planted=True)), _entry("plain", 100, StudyNet(seed + 50)),
               _entry("random-0", 0, StudyNet(seed + 90), "random-weights"),
               ModelEntry("input", 0, "input", lambda inputs: {"planes": inputs}, [("planes", True)], role="input",
                          square_view="board")]
    run_sweep(entries, x, concepts, games, np.arange(len(x)), folder, SweepSettings(n_boot=20, tcav_runs=0),
              progress=False)
    return folder


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("comparison")
    return [network_differences(_sweep(root / f"seed{s}", s), PAIRS, SETTINGS) for s in range(3)]


def _row(frame: pd.DataFrame, comparison: str, concept: str, layer: str) -> pd.Series:
    return frame[(frame["comparison"] == comparison) & (frame["concept"] == concept) & (frame["layer"] == layer)].iloc[0]


def test_planted_concept_differs_at_its_layer_and_only_there(tables):
    for table in tables:
        row = _row(table, "planted vs plain", "parity", "hidden")
        assert row["delta"] > 0.3 and row["ci_low"] > 0.2 and row["q_margin"] < 0.05
        assert np.isclose(row["delta"], row["a_value"] - row["b_value"])
        swapped = _row(table, "plain vs planted", "parity", "hidden")
        assert np.isclose(swapped["delta"], -row["delta"]) and np.isclose(swapped["ci_high"], -row["ci_low"])
        assert set(table["layer"]) == {"map", "hidden"}  # the input's layer is no network layer
        assert (table["q_value"] >= table["p_value"] - 1e-12).all()


def test_verdicts_need_every_seed(tables):
    combined = across_seeds(tables, SETTINGS)
    assert _row(combined, "planted vs plain", "parity", "hidden")["verdict"] == "a higher"
    assert _row(combined, "plain vs planted", "parity", "hidden")["verdict"] == "b higher"
    assert _row(combined, "planted vs plain", "parity", "map")["verdict"] == "no difference shown"
    two = across_seeds(tables[:2] + [tables[2][tables[2]["concept"] != "parity"]], SETTINGS)
    assert _row(two, "planted vs plain", "parity", "hidden")["verdict"] == "no difference shown"  # a seed missing
    flipped = tables[2].copy()
    flipped["delta"] = -flipped["delta"]
    mixed = across_seeds(tables[:2] + [flipped], SETTINGS)
    assert _row(mixed, "planted vs plain", "parity", "hidden")["verdict"] == "mixed"
    summary = summarise_concepts(combined).set_index(["comparison", "concept"])
    assert summary.loc[("planted vs plain", "parity"), "verdict"] == "a higher"
    assert summary.loc[("planted vs plain", "parity"), "layer"] == "hidden"
    assert summary.loc[("planted vs plain", "parity"), "a_higher_layers"] == 1
    assert summary.loc[("plain vs planted", "parity"), "verdict"] == "b higher"


def test_unprobed_network_is_named(tables, tmp_path):
    with pytest.raises(ValueError, match="no cells of oracle at step 7"):
        network_differences(_sweep(tmp_path / "s", 0), [Pairing("x", "planted", 100, "oracle", 7)], SETTINGS)
