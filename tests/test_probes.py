"""Probes: activation capture, linear probes with grouped splits, controls (planted vs random networks)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from probes.activations import ActivationStore, as_flat, hooked_activations, per_square
from probes.controls import control_task_labels, majority_baseline, shuffled_labels
from probes.linear import fit_probe, grouped_split, probe_direction, score_predictions

torch.set_num_threads(1)


def parity_concept(x: np.ndarray) -> np.ndarray:
    """Parity of the number of stones: invisible to a linear read-out of the input."""
    return (x.reshape(len(x), -1).sum(axis=1) % 2).astype(int)


class PlantedNet(nn.Module):
    """A network whose `hidden` layer carries the parity concept in one unit, by construction."""

    def __init__(self, planted: bool, seed: int = 0, deep_head: bool = False) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.planted = planted
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 5, 16), nn.ReLU())
        self.hidden = nn.Identity()
        # a linear head makes TCAV at `hidden` degenerate (one gradient for every input); a ReLU head does not
        self.head = nn.Sequential(nn.Linear(17, 8), nn.ReLU(), nn.Linear(8, 1)) if deep_head else nn.Linear(17, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.trunk(x)
        parity = (x.flatten(1).sum(dim=1, keepdim=True) % 2) if self.planted else torch.zeros(len(x), 1)
        return self.head(self.hidden(torch.cat([features, 3.0 * parity - 1.5], dim=1)))


@pytest.fixture(scope="module")
def boards():
    rng = np.random.default_rng(0)
    x = (rng.random((1200, 2, 4, 5)) < 0.3).astype(np.float32)
    games = np.repeat(np.arange(200), 6)  # six positions per "game"
    return x, parity_concept(x), games


def test_planted_concept_is_recovered_with_high_selectivity(boards):
    x, y, games = boards
    acts = hooked_activations(PlantedNet(planted=True), ["hidden"], batch_size=256)(x)["hidden"]
    assert acts.shape == (1200, 17)
    split = grouped_split(games, seed=0)
    score = fit_probe(acts, y, games, "binary", split=split)
    control = fit_probe(acts, control_task_labels(np.arange(len(x)), y, seed=1), games, "binary", split=split)
    assert score["accuracy"] > 0.97 and score["auroc"] > 0.99
    assert score["accuracy"] - control["accuracy"] > 0.35  # selectivity
    lo, hi = score.ci["accuracy"]
    assert lo <= score["accuracy"] <= hi and hi - lo < 0.1
    direction = probe_direction(score)
    assert np.argmax(np.abs(direction)) == 16  # the planted unit carries the weight
    majority = majority_baseline(y, "binary", *split)
    train, test = split
    top = np.bincount(y[train]).argmax()  # the train split's majority class, predicted everywhere
    assert majority["accuracy"] == pytest.approx(np.mean(y[test] == top))


def test_random_network_and_shuffled_labels_stay_at_chance(boards):
    x, y, games = boards
    for seed in range(3):
        acts = hooked_activations(PlantedNet(planted=False, seed=seed), ["hidden"])(x)["hidden"]
        assert fit_probe(acts, y, games, "binary", seed=seed, n_boot=0)["accuracy"] < 0.62
    planted = hooked_activations(PlantedNet(planted=True), ["hidden"])(x)["hidden"]
    assert fit_probe(planted, shuffled_labels(y, seed=3), games, "binary", n_boot=0)["accuracy"] < 0.62


def test_scores_equal_scikit_learns_metrics():
    """The direct metrics equal scikit-learn's, ties in scores and absent classes included."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, r2_score, roc_auc_score

    rng = np.random.default_rng(0)
    for trial in range(30):
        n = int(rng.integers(5, 400))
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        pred = rng.integers(0, 2, n) if trial % 3 else np.zeros(n, dtype=int)  # one predicted class only
        proba = np.round(rng.random(n), 1 if trial % 2 else 6)  # coarse scores: many ties
        got = score_predictions("binary", y, pred, proba)
        assert got["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
        assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred), abs=1e-12)
        assert got["auroc"] == pytest.approx(roc_auc_score(y, proba), abs=1e-12)
        labels = rng.choice(np.array(["a", "b", "c", "d"]), n)
        guess = rng.choice(np.array(["a", "b", "c", "e"]), n)  # "e" never true, "d" never guessed
        got = score_predictions("categorical", labels, guess, None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn warns about the class only predicted
            assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, guess), abs=1e-12)
        assert "auroc" not in got
        target, fitted = rng.normal(size=n), rng.normal(size=n)
        assert score_predictions("count", target, fitted, None)["r2"] == pytest.approx(r2_score(target, fitted),
                                                                                         abs=1e-12)
    assert np.isnan(score_predictions("binary", np.ones(9), np.ones(9), np.linspace(0, 1, 9))["auroc"])
    assert np.isnan(score_predictions("count", np.full(9, 2.0), np.zeros(9), None)["r2"])


def test_grouped_split_keeps_games_whole():
    games = np.repeat(np.arange(50), 4)
    train, test = grouped_split(games, seed=2)
    assert not set(games[train]) & set(games[test]) and len(train) + len(test) == 200
    with pytest.raises(ValueError, match="two games"):
        grouped_split(np.zeros(10))


def test_regression_and_categorical_probes(boards):
    x, _, games = boards
    flat = as_flat(x)
    count = flat.sum(axis=1)  # linear in the input
    assert fit_probe(flat, count, games, "count", n_boot=0)["r2"] > 0.99
    assert fit_probe(flat, count, games, "count", probe="mlp", n_boot=0)["r2"] > 0.8
    classes = np.digitize(count, [4, 7])
    assert fit_probe(flat, classes, games, "categorical", n_boot=0)["accuracy"] > 0.9
    with pytest.raises(ValueError, match="ridge"):
        fit_probe(flat, count, games, "count", probe="logistic")
    with pytest.raises(ValueError, match="differ in length"):
        fit_probe(flat[:10], count, games, "count")


def test_control_labels_are_consistent_per_key_and_keep_prevalence():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 300, 5000)
    labels = (rng.random(5000) < 0.2).astype(int)
    control = control_task_labels(keys, labels, seed=0)
    for k in np.unique(keys)[:50]:
        assert len(set(control[keys == k])) == 1
    assert abs(control.mean() - 0.2) < 0.06


def test_per_square_view_and_activation_store(tmp_path):
    acts = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    squares = per_square(acts)
    assert squares.shape == (2 * 4 * 5, 3)
    assert np.array_equal(squares[1 * 20 + 2 * 5 + 3], acts[1, :, 2, 3])
    with pytest.raises(ValueError, match="N, C, H, W"):
        per_square(acts[0])
    calls = []
    net = PlantedNet(planted=True)
    fn = hooked_activations(net, ["trunk", "hidden"])

    def counted(inputs):
        calls.append(len(inputs))
        return fn(inputs)

    store = ActivationStore(tmp_path)
    x = np.zeros((8, 2, 4, 5), dtype=np.float32)
    first = store.get(counted, x, ["trunk", "hidden"], "net-a", "data-1")
    again = store.get(counted, x, ["trunk", "hidden"], "net-a", "data-1")
    assert calls == [8] and np.array_equal(first["hidden"], again["hidden"])
    with pytest.raises(ValueError, match="no submodules named"):
        hooked_activations(net, ["nope"])


def test_tcav_finds_the_planted_direction_and_not_a_random_one(boards):
    from probes.tcav import benjamini_hochberg, layer_gradients, tcav

    x, y, _ = boards
    planted = PlantedNet(planted=True)
    with torch.no_grad():
        planted.head.weight[0, 16] = 2.0  # the output grows with the concept unit
    acts = hooked_activations(planted, ["hidden"])(x)["hidden"]
    grads = layer_gradients(planted, "hidden", x[:200], target=lambda out: out[:, 0])
    assert grads.shape == (200, 17) and np.allclose(grads, planted.head.weight.detach().numpy())
    result = tcav(acts[y == 1], acts[y == 0], grads, runs=20, seed=0)
    assert result.score == 1.0 and result.cav_accuracy > 0.95 and result.p_value < 1e-3
    control = PlantedNet(planted=False, seed=1)
    acts_c = hooked_activations(control, ["hidden"])(x)["hidden"]
    grads_c = layer_gradients(control, "hidden", x[:200], target=lambda out: out[:, 0])
    null = tcav(acts_c[y == 1], acts_c[y == 0], grads_c, runs=20, seed=0)
    assert null.cav_accuracy < 0.65
    q, significant = benjamini_hochberg(np.array([result.p_value, null.p_value]))
    assert significant[0] and not significant[1]
    with pytest.raises(ValueError, match="one scalar per input"):
        layer_gradients(planted, "hidden", x[:4], target=lambda out: out)


def test_benjamini_hochberg_matches_a_hand_computed_example():
    from probes.tcav import benjamini_hochberg

    q, sig = benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.5]), alpha=0.05)
    # ranks 1, 3, 2, 4: p*m/rank = 0.04, 0.0533, 0.06, 0.5, then running minima from the top
    assert np.allclose(q, [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert sig.tolist() == [True, False, False, False]


def test_sweep_writes_long_form_results_with_controls_and_resumes(boards, tmp_path):
    import pandas as pd

    from probes.sweep import COLUMNS, ConceptLabels, ModelEntry, SweepSettings, run_sweep
    from probes.tcav import layer_gradients

    x, y, games = boards
    x, y, games = x[:600], y[:600], games[:600]

    def entry(run: str, net: nn.Module, role: str = "agent") -> ModelEntry:
        def gradients(inputs, layer, target, columns):
            assert target == "out" and columns is None
            return layer_gradients(net, layer, inputs, target=lambda out: out[:, 0])
        return ModelEntry(run, 100, run, hooked_activations(net, ["hidden"]), [("hidden", False)], gradients,
                          {"out": False}, ["hidden"], role)

    planted = PlantedNet(planted=True, deep_head=True)
    with torch.no_grad():  # the output grows with the concept unit through half the head's ReLU units; the other
        planted.head[0].weight[:4, 16] = 2.0  # half switch on and off with the trunk, so gradients vary by input
        planted.head[0].weight[4:, 16] = 0.0
        planted.head[2].weight.abs_()
    linear_head = PlantedNet(planted=True)
    entries = [entry("planted", planted), entry("random-0", PlantedNet(planted=False, deep_head=True), "random-weights"),
               entry("linear-head", linear_head),
               ModelEntry("input", 0, "input", lambda inputs: {"planes": inputs}, [("planes", True)], role="input",
                          square_view="board")]
    settings = SweepSettings(n_boot=20, tcav_runs=30)
    concepts = [ConceptLabels("parity", "binary", y),
                ConceptLabels("stones", "count", x.reshape(len(x), -1).sum(axis=1)),
                ConceptLabels("mine", "spatial", x[:, 0].reshape(len(x), -1).astype(int))]
    keys = np.arange(len(x))
    path = run_sweep(entries, x, concepts, games, keys, tmp_path / "sweep", settings, progress=False)
    df = pd.read_parquet(path)
    assert list(df.columns) == COLUMNS + ["q_value", "significant"]
    assert dict(df[["run", "role"]].drop_duplicates().values.tolist()) == {
        "planted": "agent", "random-0": "random-weights", "linear-head": "agent", "input": "input",
        "baseline": "baseline"}
    cell = df[(df.run == "planted") & (df.concept == "parity") & (df.probe == "linear") & (df.metric == "accuracy")]
    assert cell.value.item() > 0.95 and cell.selectivity.item() > 0.3
    rand = df[(df.run == "random-0") & (df.concept == "parity") & (df.probe == "linear") & (df.metric == "accuracy")]
    assert rand.value.item() < 0.62
    shuffled = df[(df.run == "planted") & (df.concept == "parity") & (df.probe == "linear/shuffled") & (df.metric == "accuracy")]
    assert shuffled.value.item() < 0.62
    spatial = df[(df.run == "input") & (df.concept == "mine") & (df.metric == "accuracy") & (df.probe == "linear")]
    assert spatial.value.item() > 0.99  # the per-square probe reads the plane directly
    assert not len(df[(df.run == "planted") & (df.concept == "mine")])  # spatial concepts need spatial layers
    assert set(df[df.run == "baseline"].probe) == {"majority"}
    tcav = df[(df.probe == "tcav") & (df.metric == "tcav_out")].set_index("run")
    assert set(tcav.index) == {"planted", "random-0", "linear-head"}  # binary concepts, entries with gradients
    assert tcav.loc["planted", "significant"] and tcav.loc["planted", "value"] > 0.9
    degenerate = tcav.loc["linear-head"]  # a layer feeding a linear head: not a test, not counted by BH
    assert np.isnan(degenerate["value"]) and np.isnan(degenerate["p_value"]) and "not tested" in degenerate["note"]
    valid = tcav.drop(index="linear-head")
    assert valid["q_value"].notna().all() and (valid["q_value"] >= valid["p_value"] - 1e-12).all()
    cav = df[(df.probe == "tcav") & (df.metric == "cav_accuracy")].set_index("run")
    assert cav.loc["planted", "value"] > 0.9 and cav.loc["random-0", "value"] < 0.7
    mtimes = {p: p.stat().st_mtime for p in (tmp_path / "sweep" / "parts").iterdir()}
    run_sweep(entries, x, concepts, games, keys, tmp_path / "sweep", settings, progress=False)  # resumes: no refit
    assert {p: p.stat().st_mtime for p in (tmp_path / "sweep" / "parts").iterdir()} == mtimes
    with pytest.raises(ValueError, match="labels for"):
        run_sweep(entries, x, [ConceptLabels("bad", "binary", y[:10])], games, keys, tmp_path / "bad", progress=False)


def test_report_compares_two_runs_layer_by_layer(boards, tmp_path):
    from probes.report import layer_differences, write_report
    from probes.sweep import ConceptLabels, ModelEntry, SweepSettings, run_sweep

    x, y, games = boards
    x, y, games = x[:600], y[:600], games[:600]
    entries = [ModelEntry(run, step, f"{run}{step}", hooked_activations(PlantedNet(planted=run == "agent"),
                                                                        ["trunk", "hidden"]),
                          [("trunk", False), ("hidden", False)], role=run)
               for run in ("agent", "reference") for step in (10, 20)]
    entries.append(ModelEntry("input", 0, "input", lambda inputs: {"planes": inputs}, [("planes", True)], role="input",
                              square_view="board"))
    concepts = [ConceptLabels("parity", "binary", y), ConceptLabels("stones", "count", x.reshape(len(x), -1).sum(1))]
    run_sweep(entries, x, concepts, games, np.arange(len(x)), tmp_path, SweepSettings(n_boot=10, tcav_runs=0),
              progress=False)
    import pandas as pd

    diff = layer_differences(pd.read_parquet(tmp_path / "results.parquet"), "agent", "reference")
    assert list(diff.columns) == ["trunk", "hidden"]  # forward order
    assert diff.loc["parity", "hidden"] > 0.3  # only the agent's network carries the planted unit
    assert abs(diff.loc["parity", "trunk"]) < 0.15  # the same random trunk below it
    report = write_report(tmp_path, n_boot=100).read_text()
    assert "Layer by layer: agent minus reference" in report
    assert report.index("## Findings") < report.index("## Checks") < report.index("## Runs compared")
    assert "selectivity" not in report.split("## Checks")[0]  # the control task is a check, not a headline
    assert (tmp_path / "runs-layer-differences.png").stat().st_size > 0


def test_results_without_a_role_column_get_roles_from_run_names(tmp_path):
    """Sweeps recorded before the ``role`` column still report: roles come from the old run-name prefixes."""
    from probes.report import model_runs
    import pandas as pd

    from probes.sweep_folder import SweepInfo, read_info, read_results, write_info

    old = pd.DataFrame({"run": ["agent-run", "random-0", "input", "baseline", "skipped"], "value": [1.0] * 5})
    old.to_parquet(tmp_path / "results.parquet", index=False)
    results = read_results(tmp_path)
    assert results["role"].tolist() == ["agent", "random-weights", "input", "baseline", "skipped"]
    assert model_runs(results) == ["agent-run"]
    assert read_info(tmp_path) is None
    info = SweepInfo(["/runs/a"], "/data/d", 10, 2, {"seed": 0}, {"x": "a single class in this dataset"})
    write_info(tmp_path, info)
    assert read_info(tmp_path) == info
    with pytest.raises(FileNotFoundError, match="results.parquet does not exist"):
        read_results(tmp_path / "missing")


# ---------------------------------------------------------------------------- convergence and per-column concepts
def test_probes_that_cannot_converge_say_so_and_warn_once(boards, caplog):
    import logging

    import probes.linear as linear

    x, _, games = boards
    flat = as_flat(x)
    count = flat.sum(axis=1)
    classes = (count > np.median(count)).astype(int)
    linear._warned_not_converged.clear()
    with caplog.at_level(logging.WARNING, logger="probes.linear"):
        mlp = fit_probe(flat, count, games, "count", probe="mlp", n_boot=0, max_iter=1)
        again = fit_probe(flat, count, games, "count", probe="mlp", n_boot=0, max_iter=1)
        l1 = fit_probe(flat, classes, games, "binary", probe="l1", n_boot=0, max_iter=1)
        logistic = fit_probe(flat, classes, games, "binary", n_boot=0, max_iter=1)
    assert (mlp.converged, mlp.n_iter) == (False, 1) and not again.converged
    assert not l1.converged and l1.n_iter == 1
    # the final refit gets 3 iterations and torch's 5/4 as many loss evaluations: those run out after 2
    assert not logistic.converged and logistic.n_iter == 2
    warned = [r.getMessage() for r in caplog.records if "did not converge" in r.getMessage()]
    assert len(warned) == 3 and sum("mlp" in w for w in warned) == 1  # once per probe kind and process
    assert all("max_iter=" in w for w in warned)
    assert fit_probe(flat, classes, games, "binary", n_boot=0).converged  # the default budget suffices here
    with pytest.raises(ValueError, match="max_iter must be at least 1, got 0"):
        fit_probe(flat, classes, games, "binary", n_boot=0, max_iter=0)


def test_sweep_probes_per_column_concepts_and_records_the_ones_it_skips(boards, tmp_path, caplog):
    import logging

    import pandas as pd

    from probes.sweep import ConceptLabels, ModelEntry, SweepSettings, expand_per_column, run_sweep

    x, _, games = boards
    x, games = x[:600], games[:600]
    flat = x.reshape(len(x), -1)
    # per action a: "square a of plane 0 is set" (readable from the input), and a score with a missing value
    occupied = flat[:, :3].astype(bool)
    scores = np.where(occupied, 1.0, -1.0)
    scores[0, 2] = np.nan
    concepts = [ConceptLabels("occupied", "per_column", occupied), ConceptLabels("scores", "per_column", scores)]
    expanded, skipped = expand_per_column(concepts)
    assert [(c.name, c.kind) for c in expanded] == [("occupied[0]", "binary"), ("occupied[1]", "binary"),
                                                      ("occupied[2]", "binary")]
    assert list(skipped) == ["scores"] and "missing labels" in skipped["scores"]
    entries = [ModelEntry("input", 0, "input", lambda inputs: {"planes": inputs}, [("planes", False)])]
    with caplog.at_level(logging.WARNING, logger="probes.sweep"):
        path = run_sweep(entries, x, concepts, games, np.arange(len(x)), tmp_path / "sweep",
                         SweepSettings(n_boot=0, tcav_runs=0), progress=False)
    assert any("scores is not swept" in r.getMessage() for r in caplog.records)
    df = pd.read_parquet(path)
    linear = df[(df.run == "input") & (df.probe == "linear") & (df.metric == "accuracy")].set_index("concept")
    assert sorted(linear.index) == ["occupied[0]", "occupied[1]", "occupied[2]"]
    assert (linear["value"] == 1.0).all()  # each label is one input unit
    assert linear["converged"].all()
    skip = df[df.probe == "skipped"]
    assert skip[["run", "concept"]].values.tolist() == [["skipped", "scores"]]
    assert "missing labels" in skip["note"].item()
    with pytest.raises(ValueError, match="kind 'vector'"):
        expand_per_column([ConceptLabels("v", "vector", occupied)])
    constant = np.zeros_like(occupied)
    constant[: len(constant) // 2, 0] = True  # action 0 varies, actions 1 and 2 never hold
    expanded, skipped = expand_per_column([ConceptLabels("sometimes", "per_column", constant)])
    assert [c.name for c in expanded] == ["sometimes[0]"]
    assert skipped == {"sometimes[1]": "a single value in this dataset", "sometimes[2]": "a single value in this dataset"}


# ---------------------------------------------------------------------------- study building blocks
def test_three_way_split_keeps_games_whole_and_parts_disjoint():
    from probes.linear import grouped_three_way_split

    games = np.repeat(np.arange(100), 5)
    train, validation, test = grouped_three_way_split(games, seed=3)
    parts = [set(games[p]) for p in (train, validation, test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert len(train) + len(validation) + len(test) == len(games)
    assert [len(p) for p in parts] == [60, 20, 20]
    with pytest.raises(ValueError, match="at least three games"):
        grouped_three_way_split(np.zeros(10))


def test_board_view_holds_every_square_relative_to_the_labelled_one():
    from probes.activations import board_per_square, per_square

    acts = np.random.default_rng(0).random((3, 2, 4, 5)).astype(np.float32)
    rows = board_per_square(acts).reshape(3, 4, 5, 3, 7, 9)  # (C + 1) x (2H - 1) x (2W - 1) per square
    assert np.allclose(rows[:, :, :, :2, 3, 4].reshape(-1, 2), per_square(acts))  # the centre is the square itself
    assert np.allclose(rows[:, 1, 2, :2, 3 + 2, 4 - 1], acts[:, :, 3, 1])  # two rows down, one column left
    assert (rows[:, 0, 0, :, :3, :] == 0).all() == (rows[:, 0, 0, 2, :3, :] == 0).all()  # above the top: off board
    assert rows[:, 3, 4, 2].sum() == 3 * 4 * 5  # the on-board channel marks the 20 real squares


def test_constant_gradients_are_detected_up_to_scale():
    from probes.tcav import gradient_is_constant

    direction = np.random.default_rng(0).normal(size=8)
    assert gradient_is_constant(np.outer(np.arange(1, 6), direction))  # a monotone function of one direction
    assert gradient_is_constant(np.vstack([np.zeros(8), direction, 2 * direction]))  # zero rows aside
    varied = np.random.default_rng(1).normal(size=(5, 8))
    assert not gradient_is_constant(varied)
    assert not gradient_is_constant(np.vstack([direction, -direction]))  # opposite signs: sensitivities differ
    rows = np.random.default_rng(2).normal(size=(3, 8))  # one direction per named column (a linear policy head)
    columns = np.array([0, 1, 2, 0, 1, 2])
    per_column = rows[columns] * np.arange(1, 7)[:, None]
    assert not gradient_is_constant(per_column) and gradient_is_constant(per_column, groups=columns)
    assert not gradient_is_constant(per_column + 0.1 * varied[:1].repeat(6, 0) * np.arange(6)[:, None],
                                    groups=columns)
