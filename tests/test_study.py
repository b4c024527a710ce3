"""The study's verdicts on planted networks whose answers are known by construction.

Boards are random 2-plane 4x5 maps; three concepts:
* ``parity`` (binary): whether the number of stones is odd - not linearly readable from the
  input, nor from random ReLU features;
* ``stones`` (count): the number of stones - a linear function of the input;
* ``mine`` (spatial): plane 0 at each square - readable square by square from the input.

Networks (one architecture: a spatial layer ``map`` and a flat layer ``hidden``):
* ``planted``: ``hidden`` carries parity in one unit (its step 0: the same network without it);
* ``copy``: ``map`` is the input itself, ``hidden`` random features (nothing beyond the input);
* ``untrained``: another random network at every step.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from probes.activations import hooked_activations
from probes.study import StudySettings, analyse, finding_sentences, findings
from probes.sweep import ConceptLabels, ModelEntry, SweepSettings, run_sweep


class StudyNet(nn.Module):
    """``map``: [N, 2, 4, 5] (random 1x1 conv + ReLU, or the input when `copy`); ``hidden``: [N, 17]."""

    def __init__(self, seed: int, planted: bool = False, copy: bool = False) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.planted, self.copy = planted, copy
        self.conv = nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU())
        self.map = nn.Identity()
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 5, 16), nn.ReLU())
        self.hidden = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = self.map(x if self.copy else self.conv(x))
        parity = x.flatten(1).sum(dim=1, keepdim=True) % 2
        unit = 3.0 * parity - 1.5 if self.planted else torch.zeros_like(parity)
        return self.hidden(torch.cat([self.trunk(spatial), unit], dim=1))


def _entry(run: str, step: int, net: StudyNet, role: str = "agent") -> ModelEntry:
    return ModelEntry(run, step, f"{run}@{step}", hooked_activations(net, ["map", "hidden"]),
                      [("map", True), ("hidden", False)], role=role)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = (rng.random((900, 2, 4, 5)) < 0.3).astype(np.float32)
    games = np.repeat(np.arange(150), 6)
    concepts = [ConceptLabels("parity", "binary", (x.reshape(len(x), -1).sum(axis=1) % 2).astype(int)),
                ConceptLabels("stones", "count", x.reshape(len(x), -1).sum(axis=1).astype(int)),
                ConceptLabels("mine", "spatial", x[:, 0].reshape(len(x), -1).astype(int))]
    entries = [
        _entry("planted", 0, StudyNet(0)), _entry("planted", 100, StudyNet(0, planted=True)),
        _entry("planted-b", 0, StudyNet(5)), _entry("planted-b", 100, StudyNet(5, planted=True)),
        _entry("copy", 0, StudyNet(1)), _entry("copy", 100, StudyNet(1, copy=True)),
        _entry("untrained", 0, StudyNet(2)), _entry("untrained", 100, StudyNet(3)),
        _entry("random-0", 0, StudyNet(10), "random-weights"), _entry("random-1", 0, StudyNet(11), "random-weights"),
        ModelEntry("input", 0, "input", lambda inputs: {"planes": inputs}, [("planes", True)], role="input",
                   square_view="board"),
    ]
    sweep = tmp_path_factory.mktemp("study") / "sweep"
    run_sweep(entries, x, concepts, games, np.arange(len(x)), sweep, SweepSettings(n_boot=20, tcav_runs=0),
              progress=False)
    return sweep, analyse([sweep], StudySettings(n_boot=300))


@pytest.fixture(scope="module")
def study(swept):
    return swept[1]


def _verdict(study, run: str, concept: str) -> pd.Series:
    v = study.verdicts
    return v[(v["run"] == run) & (v["concept"] == concept)].iloc[0]


def test_planted_concept_is_represented_at_its_layer(study):
    row = _verdict(study, "planted", "parity")
    assert bool(row["represented"]) and row["layer"] == "hidden"
    assert row["ci_low"] > 0.3 and row["control"] in ("random-0", "random-1", "input", "step-0")


@pytest.mark.parametrize("concept", ["stones", "mine"])
def test_a_copy_of_the_input_is_not_beyond_the_input(study, concept):
    row = _verdict(study, "copy", concept)
    assert not bool(row["represented"])
    assert row["control"] == "input" and row["ci_low"] < 0.02
    assert row["value"] > 0.9  # decodable, and yet not learned


@pytest.mark.parametrize("concept", ["parity", "stones", "mine"])
def test_a_random_network_represents_nothing_beyond_the_controls(study, concept):
    assert not bool(_verdict(study, "untrained", concept)["represented"])


def test_strongest_control_is_the_maximum_inside_each_replicate(study):
    d = study.deltas
    assert np.allclose(d["delta"], d["value"] - d["control_value"])
    assert (d["ci_low"] <= d["delta"] + 1e-9).all() and (d["delta"] <= d["ci_high"] + 1e-9).all()
    assert (d["controls"] >= 2).all()  # the input and the step-0 network at least
    assert (d["q_value"] >= d["p_value"] - 1e-12).all()


def test_layers_are_chosen_on_validation_not_test(study):
    chosen, d = study.chosen, study.deltas
    for _, row in chosen.iterrows():
        same = d[(d["run"] == row["run"]) & (d["step"] == row["step"]) & (d["concept"] == row["concept"])]
        assert row["validation_delta"] == same["validation_delta"].max()


def test_emergence_of_the_planted_concept(study):
    em = study.emergence.set_index(["run", "concept"])
    assert em.loc[("planted", "parity"), "emergence_step"] == 100
    assert np.isnan(em.loc[("copy", "stones"), "emergence_step"])


def test_findings_need_every_seed(study):
    both = findings(study, runs=["planted", "planted-b"], families={"parity": "static"})
    assert both.set_index("concept").loc["parity", "verdict"] == "yes"
    mixed = findings(study, runs=["planted", "untrained"]).set_index("concept")
    assert mixed.loc["parity", "verdict"] == "not in every seed"
    assert mixed.loc["parity", "runs_represented"] == "1/2" and np.isnan(mixed.loc["parity", "emergence_step"])
    assert mixed.loc["stones", "verdict"] == "no"
    text = " ".join(finding_sentences(both, n_runs=2))
    assert "Of 1 static concepts, 1 are represented" in text and "parity" in text


def test_study_report_writes_findings_figures_and_appendix(swept, tmp_path):
    from probes.study_report import FINDINGS_COLUMNS, FINDINGS_FILE, write_study_report

    sweep, study = swept
    report = write_study_report(tmp_path, [sweep], families={"parity": "static"}, study=study).read_text()
    table = pd.read_csv(tmp_path / FINDINGS_FILE)
    assert list(table.columns) == FINDINGS_COLUMNS and set(table["concept"]) == {"parity", "stones", "mine"}
    assert report.index("## Findings") < report.index("## Where") < report.index("## When")
    for name in ("delta-map.png", "emergence.png", "appendix.html", "appendix/parity.png", "deltas.csv.gz"):
        assert (tmp_path / name).stat().st_size > 0
