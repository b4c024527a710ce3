"""The usage suite (probes.interventions, agents.usage, probes.usage_report) on networks whose answer is planted.

Planted networks read a board-like input ``[N, 3, H, W]``: channel 0 marks the concept's
square (one per position where the concept holds), channel 1 a distractor square, channel 2
is a sign (+1 or -1 over the whole board). A
"trunk" copies them into a wider map with noise channels; the policy head gives column a
the logit ``5 * sum_h map[k, h, a]`` (plus 1 for column 0, its move when the channel is silent):

* **used**: the head reads the concept channel (k = 0): the concept is represented and used;
* **disconnected**: the head reads the distractor (k = 1): represented, not used;
* **non-linear**: the concept square is coded as (s, s) and every other occupied square as
  (s, -s) with the sign s, balanced over positions so that no linear direction separates them, and
  the head reads ``relu(|t0 + t1| - 1)``: used, without a linear representation.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from probes.interventions import (
    USAGE_VERDICTS,
    JudgedPositions,
    PairBatch,
    UsageThresholds,
    erasure_used,
    intervention_effects,
    layer_activations,
    mean_interval,
    pair_patching,
    patching_used,
    play_metrics,
    random_squares,
    ratio_interval,
    usage_verdict,
)

H, W, NOISE = 3, 5, 10


class Trunk(nn.Module):
    """Copies the two input channels (or their non-linear code) and adds fixed noise channels."""

    def __init__(self, nonlinear: bool) -> None:
        super().__init__()
        self.nonlinear = nonlinear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(x)
        gen = torch.Generator().manual_seed(n)
        noise = torch.randn((n, NOISE, H, W), generator=gen) * 0.3
        if self.nonlinear:
            concept, other, sign = x[:, 0], x[:, 1], x[:, 2]
            t0 = sign * (concept + other)
            t1 = sign * (concept - other)
            return torch.cat([t0[:, None], t1[:, None], noise], dim=1)
        return torch.cat([x[:, :2], noise], dim=1)


class Head(nn.Module):
    def __init__(self, channel: int, nonlinear: bool) -> None:
        super().__init__()
        self.channel, self.nonlinear = channel, nonlinear

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        read = torch.relu((m[:, 0] + m[:, 1]).abs() - 1) if self.nonlinear else m[:, self.channel]
        prior = torch.zeros(W)
        prior[0] = 1.0  # column 0 unless the channel read says otherwise
        return 5 * read.sum(dim=1) + prior


class Planted(nn.Module):
    def __init__(self, channel: int = 0, nonlinear: bool = False) -> None:
        super().__init__()
        self.trunk = Trunk(nonlinear)
        self.head = Head(channel, nonlinear)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.trunk(x)
        logits = self.head(m)
        return logits, torch.tanh(logits.max(dim=1, keepdim=True).values / 5)


def planted_positions(n: int = 600, seed: int = 0) -> JudgedPositions:
    """Half the positions hold the concept at a random square; every position has a distractor square."""
    rng = np.random.default_rng(seed)
    inputs = np.zeros((n, 3, H, W), dtype=np.float32)
    inputs[:, 2] = np.where(np.arange(n) % 4 < 2, 1.0, -1.0)[:, None, None]  # the sign plane: balanced in every
    # block of four positions, so that no linear direction carries the non-linear code, not even by sampling noise
    concept = np.arange(n) % 2 == 0
    squares = np.zeros((n, H, W), dtype=bool)
    moves = np.zeros((n, W), dtype=bool)
    for i in range(n):
        d = rng.integers(H), rng.integers(W)
        inputs[i, 1][d] = 1
        if concept[i]:
            while True:
                c = rng.integers(H), rng.integers(W)
                if c[1] != d[1]:
                    break
            inputs[i, 0][c] = 1
            squares[i][c] = True
            moves[i, c[1]] = True
    legal = np.ones((n, W), dtype=bool)
    good = np.where(concept[:, None], moves, legal)
    return JudgedPositions(inputs=inputs, legal=legal, good=good, optimal=good.copy(),
                           value=np.where(concept, 1, 0), groups=np.arange(n) // 2, concept=concept, moves=moves,
                           squares=squares, candidates=np.ones((n, H, W), dtype=bool))


def planted_pairs(positions: JudgedPositions) -> PairBatch:
    """Each concept position paired with itself minus the concept's square."""
    rows = np.flatnonzero(positions.concept)
    clean = positions.inputs[rows]
    corrupt = clean.copy()
    corrupt[:, 0] = 0
    return PairBatch(clean=clean, corrupt=corrupt, legal_clean=positions.legal[rows],
                     legal_corrupt=positions.legal[rows], target=positions.moves[rows],
                     concept_squares=positions.squares[rows], changed_squares=positions.squares[rows],
                     candidates=np.ones((len(rows), H, W), dtype=bool))


@pytest.fixture(scope="module")
def positions() -> tuple[JudgedPositions, JudgedPositions]:
    data = planted_positions()
    return data.subset(np.arange(400)), data.subset(np.arange(400, 600))


def _suite(model: nn.Module, fit: JudgedPositions, measure: JudgedPositions) -> tuple[list[dict], list[dict]]:
    effects = intervention_effects(model, model, "trunk", True, fit, measure, alphas=(-3.0,), n_random=3, n_boot=200)
    patching, maps = pair_patching(model, model, "trunk", True, planted_pairs(measure), n_random=3, n_boot=200)
    assert maps["p_target"].shape == (H, W)
    return effects, patching


def _row(records: list[dict], **where) -> dict:
    rows = [r for r in records if all(r[k] == v for k, v in where.items())]
    assert len(rows) == 1, where
    return rows[0]


def test_a_used_concept_is_found_used_and_its_controls_do_nothing(positions):
    fit, measure = positions
    model = Planted(channel=0)
    effects, patching = _suite(model, fit, measure)
    erase = _row(effects, edit="erase", metric="p_concept_move")
    assert erase["effect"] < -0.3 and erase["excess_ci_high"] < -0.3
    assert abs(erase["control_random_squares"]) < 0.05  # erasing at squares without the concept changes nothing
    assert abs(erase["control_random_direction"]) < 0.5 * abs(erase["effect"])
    assert _row(effects, edit="erase", metric="perfect")["effect"] < -0.3  # the solver sees worse play
    steer = _row(effects, edit="steer", metric="p_concept_move")
    assert steer["excess_ci_high"] < -0.1
    assert erasure_used(effects, "trunk", UsageThresholds())[0]
    concept = _row(patching, region="concept_squares", readout="p_target")
    assert concept["mean"] == pytest.approx(1.0, abs=1e-6)  # the whole decision lives at the concept's square
    assert _row(patching, region="whole", readout="p_target")["mean"] == pytest.approx(1.0, abs=1e-6)
    assert abs(_row(patching, region="random_squares", readout="p_target")["mean"]) < 0.05
    assert patching_used(patching, "trunk", UsageThresholds())[0]
    assert usage_verdict(True, True, True) == USAGE_VERDICTS[0]
    _, maps = pair_patching(model, model, "trunk", True, planted_pairs(measure), n_random=1, n_boot=20)
    aligned = maps["p_target@concept"]
    assert aligned.shape == (2 * H - 1, 2 * W - 1)
    assert aligned[H - 1, W - 1] == pytest.approx(1.0, abs=1e-6)  # the concept's own square carries it all
    assert np.nanmax(np.abs(np.delete(aligned.ravel(), (H - 1) * (2 * W - 1) + W - 1))) < 1e-6


def test_a_disconnected_concept_is_represented_but_not_used(positions):
    fit, measure = positions
    model = Planted(channel=1)
    acts = layer_activations(model, model, "trunk", measure.inputs)
    assert (acts[:, 0][measure.squares] == 1).all()  # the concept is right there, linearly
    effects, patching = _suite(model, fit, measure)
    erase = _row(effects, edit="erase", metric="p_concept_move")
    assert abs(erase["effect"]) < 0.02  # LEACE is oblique: it touches the read channel a little
    assert not erasure_used(effects, "trunk", UsageThresholds())[0]
    assert not patching_used(patching, "trunk", UsageThresholds())[0]  # no change to restore
    assert usage_verdict(True, False, False) == "represented, not used"


def test_a_non_linear_code_escapes_linear_erasure_but_not_patching(positions):
    fit, measure = positions
    model = Planted(nonlinear=True)
    effects, patching = _suite(model, fit, measure)
    erase = _row(effects, edit="erase", metric="p_concept_move")
    assert abs(erase["effect"]) < 0.1
    linear = erasure_used(effects, "trunk", UsageThresholds())[0]
    patched = patching_used(patching, "trunk", UsageThresholds())[0]
    assert not linear and patched
    assert usage_verdict(False, linear, patched) == "used without a linear representation"
    assert usage_verdict(False, True, False) == "used, decodable but not beyond the controls"
    assert usage_verdict(False, False, False) == "neither"
    assert usage_verdict(None, False, True) == "used"


def test_whole_board_edits_on_a_flat_layer(positions):
    """A flat network that plays the last column when the concept is anywhere on the board (channel 0), else column 0."""

    class Flat(nn.Module):
        def __init__(self, channel: int) -> None:
            super().__init__()
            self.flat = nn.Flatten()
            self.channel = channel

        def forward(self, x):
            f = self.flat(x)  # [N, 3 * H * W]: channel k's squares are features k * H * W ...
            present = f[:, self.channel * H * W:(self.channel + 1) * H * W].sum(dim=1)
            logits = torch.zeros((len(x), W))
            logits[:, 0] = 3.0  # above what erasing the concept (to the mean, half a disc) leaves
            logits[:, -1] = 5 * present
            return logits, logits.max(dim=1, keepdim=True).values

    def last_column(data: JudgedPositions) -> JudgedPositions:
        moves = np.zeros_like(data.moves)
        moves[data.concept, -1] = True
        return JudgedPositions(**{**vars(data), "moves": moves, "good": np.where(data.concept[:, None], moves, data.legal),
                                  "optimal": np.where(data.concept[:, None], moves, data.legal)})

    fit, measure = (last_column(p) for p in positions)
    reads, ignores = Flat(0), Flat(1)
    used = intervention_effects(reads, reads, "flat", False, fit, measure, alphas=(-3.0,), n_random=3, n_boot=100)
    unused = intervention_effects(ignores, ignores, "flat", False, fit, measure, alphas=(), n_random=3, n_boot=100)
    erase = _row(used, edit="erase", metric="p_concept_move")
    assert erase["scope"] == "whole" and "control_random_squares" not in erase
    assert erase["effect"] < -0.3 and erase["excess_ci_high"] < -0.3
    assert _row(used, edit="erase", metric="perfect")["effect"] < -0.5
    assert _row(used, edit="steer", metric="p_concept_move")["effect"] < -0.5
    assert abs(_row(unused, edit="erase", metric="p_concept_move")["effect"]) < 0.05
    with pytest.raises(ValueError, match="did not run"):
        layer_activations(reads, ignores, "flat", measure.inputs)


def test_hooks_are_removed_and_metrics_follow_their_definitions(positions):
    _, measure = positions
    model = Planted(channel=0)
    with torch.no_grad():
        logits, values = model(torch.as_tensor(measure.inputs))
    before = play_metrics(logits, values, measure)
    intervention_effects(model, model, "trunk", True, positions[0], measure, alphas=(2.0,), n_random=1, n_boot=20)
    with torch.no_grad():
        after = play_metrics(*model(torch.as_tensor(measure.inputs)), measure)
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])
    assert np.isnan(before["p_concept_move"][~measure.concept]).all()
    assert np.nanmean(before["perfect"][measure.concept]) == 1.0  # the planted policy plays the concept's column
    assert np.isnan(before["value_sign"][measure.value == 0]).all()


def test_random_squares_avoid_the_concept_and_match_its_count():
    squares = np.zeros((4, H, W), dtype=bool)
    squares[0, 0, 0] = squares[1, 2, 3] = squares[1, 1, 1] = True
    candidates = np.zeros_like(squares)
    candidates[:, 0, :] = True
    drawn = random_squares(squares, candidates, seed=3)
    assert (drawn.sum(axis=(1, 2)) == squares.sum(axis=(1, 2))).all()
    assert not (drawn & squares).any()
    assert drawn[0][0].any() and drawn[0].sum() == 1  # from the candidates while they last
    np.testing.assert_array_equal(drawn, random_squares(squares, candidates, seed=3))


def test_intervals():
    values = np.r_[np.zeros(50), np.ones(50), np.nan]
    s = mean_interval(values, n_boot=500)
    assert s["mean"] == 0.5 and s["n"] == 100 and s["ci_low"] < 0.5 < s["ci_high"]
    assert np.isnan(mean_interval(np.array([np.nan]))["mean"])
    r = ratio_interval(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0]), n_boot=200)
    assert r["mean"] == pytest.approx(0.5) and r["ci_low"] == pytest.approx(0.5) and r["ci_high"] == pytest.approx(0.5)
    assert np.isnan(ratio_interval(np.ones(3), np.zeros(3))["mean"])


def test_bad_inputs_are_named():
    data = planted_positions(20)
    with pytest.raises(ValueError, match="JudgedPositions.legal has 3 rows"):
        JudgedPositions(**{**vars(data), "legal": data.legal[:3]})
    with pytest.raises(ValueError, match="holds on none"):
        no_concept = data.subset(~data.concept)
        intervention_effects(Planted(), Planted(), "trunk", True, data, no_concept)
    with pytest.raises(ValueError, match="no submodule named 'nope'"):
        intervention_effects(Planted(), Planted(), "nope", True, data, data)
    with pytest.raises(ValueError, match="usage thresholds"):
        UsageThresholds(effect=2.0)


# ---------------------------------------------------------------------------- Connect Four and the agent layer
@pytest.fixture(scope="module")
def c4_table():
    """A labelled table like a dataset's: late random-game positions (cheap for the solver), ten per game."""
    import games
    from games.concepts import label
    from games.connect4.minimal_pairs import random_parents

    game = games.get("connect4")
    states = random_parents(game, 240, seed=5, min_ply=18)
    names = ["value", "good_moves", "optimal_moves", "playable_squares", "win_in_1", "winning_moves"]
    labels = label(game, states, names)
    table = pd.DataFrame({"moves": [s.history for s in states], "game_id": np.arange(len(states)) // 4})
    for name in names:
        table[name] = list(labels[name]) if labels[name].ndim > 1 else labels[name]
    return game, table


def test_judged_positions_name_the_playable_square_of_each_concept_column(c4_table):
    from agents.connect4.usage import judged_positions

    game, table = c4_table
    judged = judged_positions(game, table, "win_in_1")
    assert judged.concept.sum() >= 20
    for i in np.flatnonzero(judged.concept)[:20]:
        state = game.parse(table["moves"][i])
        board = state.to_array()
        for r, c in zip(*np.nonzero(judged.squares[i])):
            assert board[r, c] == 0 and (r == game.height - 1 or board[r + 1, c] != 0)  # the playable square
            assert state.play(int(c)).winner() is not None  # and playing its column wins
    assert not judged.squares[~judged.concept].any()
    with pytest.raises(ValueError, match="lacks the columns"):
        judged_positions(game, table.drop(columns=["optimal_moves"]), "win_in_1")
    with pytest.raises(ValueError, match="names no columns"):
        judged_positions(game, table, "decisive")


def test_minimal_pair_batch_holds_solver_verified_pairs():
    import games
    from agents.connect4.usage import minimal_pair_batch

    game = games.get("connect4")
    batch, records = minimal_pair_batch(game, "win_in_1", n_parents=80, max_pairs=6, seed=1)
    assert 0 < len(batch) == len(records) <= 6
    assert (batch.changed_squares.sum(axis=(1, 2)) == 2).all()  # one disc apart (two squares differ)
    assert all(r["solver_changes_move"] for r in records)
    for k, rec in enumerate(records):
        assert set(np.flatnonzero(batch.target[k])) == set(rec["concept_moves_with"])
        assert batch.concept_squares[k].any(axis=0)[list(rec["concept_moves_with"])].all()
    assert not np.array_equal(batch.clean, batch.corrupt)


def test_run_usage_resumes_and_the_report_joins_the_study(tiny_policy, c4_table, tmp_path):
    from agents.connect4.usage import judged_positions
    from agents.usage import UsageInputs, UsageSettings, result_path, run_usage, usage_layers
    from probes.usage_report import usage_table, write_usage_report

    game, table = c4_table
    judged = judged_positions(game, table, "win_in_1")
    rows = np.flatnonzero(judged.concept)[:12]
    pairs = PairBatch(clean=judged.inputs[rows], corrupt=judged.inputs[rows[::-1]], legal_clean=judged.legal[rows],
                      legal_corrupt=judged.legal[rows[::-1]], target=judged.moves[rows],
                      concept_squares=judged.squares[rows], changed_squares=judged.squares[rows],
                      candidates=judged.candidates[rows])
    settings = UsageSettings(alphas=(-2.0,), n_random=2, n_boot=50)
    calls = []

    def make(concept):
        calls.append(concept)
        return UsageInputs(judged, pairs, [])

    first = run_usage(tiny_policy, "tiny", ["win_in_1"], make, tmp_path, settings, {"role": "agent"}, progress=False)
    layers = [name for name, _ in usage_layers(tiny_policy)]
    assert "action_net" not in layers and {r["layer"] for r in first["win_in_1"]["interventions"]} == set(layers)
    assert calls == ["win_in_1"] and result_path(tmp_path, "tiny", "win_in_1").exists()
    again = run_usage(tiny_policy, "tiny", ["win_in_1"], make, tmp_path, settings, progress=False)
    assert calls == ["win_in_1"] and again["win_in_1"]["interventions"] == json.loads(
        json.dumps(first["win_in_1"]["interventions"]))  # resumed, nothing recomputed
    run_usage(tiny_policy, "tiny", ["win_in_1"], make, tmp_path, UsageSettings(alphas=(-2.0,), n_random=2, n_boot=60),
              progress=False)
    assert calls == ["win_in_1", "win_in_1"]  # other settings: redone

    deltas = pd.DataFrame([{"run": "tiny-run", "step": s, "concept": "win_in_1", "layer": layer, "delta": 0.1,
                            "ci_low": 0.05, "ci_high": 0.15, "q_margin": 0.001 if i % 2 else 0.9}
                           for s in (10, 20) for i, layer in enumerate(layers)])
    frame = usage_table("tiny", again, deltas, "tiny-run")
    assert list(frame["represented"]) == [bool(i % 2) for i in range(len(layers))]
    assert set(frame["verdict"]) <= set(USAGE_VERDICTS)
    report = write_usage_report({"tiny": again}, tmp_path / "report", deltas, {"tiny": "tiny-run"}, ["tiny"])
    text = report.read_text()
    assert "## Thresholds" in text and "## Across seeds" in text and "## tiny" in text
    for name in ("usage.csv", "usage-grid.png", "erasure.png", "patching-maps.png", "patching-regions.png",
                 "patching-aligned.png", "steering.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    unknown = usage_table("tiny", again, None, None)
    assert set(unknown["verdict"]) <= {"used", "not used"}
