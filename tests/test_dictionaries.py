"""Sparse dictionaries: recovery of planted dictionaries, scoring on planted features, and the study's runs."""

from __future__ import annotations

import json
import types

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score

from probes.dictionary_scores import (
    Folds,
    auroc_replicates,
    describe_features,
    feature_aurocs,
    group_weights,
    paired_difference,
    score_concept,
    weighted_auroc,
)
from probes.sae import SparseAutoencoder, dictionary_statistics, variance_explained


def planted_dictionary(n: int, d: int = 16, n_true: int = 24, active: int = 2, seed: int = 0):
    """Rows that are sparse non-negative combinations of `n_true` unit directions in `d` dimensions."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(n_true, d))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    codes = np.zeros((n, n_true))
    for i in range(n):
        chosen = rng.choice(n_true, active, replace=False)
        codes[i, chosen] = rng.exponential(1.0, active) + 0.5
    return (codes @ directions).astype(np.float32), directions, codes


def recovered(sae: SparseAutoencoder, directions: np.ndarray, cos: float = 0.9) -> float:
    """Fraction of the true directions that some learned feature points along (cosine above `cos`)."""
    return float((np.abs(directions @ sae.feature_directions().T).max(axis=1) > cos).mean())


@pytest.fixture(scope="module")
def planted():
    torch.set_num_threads(1)
    x, directions, codes = planted_dictionary(12000)
    sae = SparseAutoencoder(n_features=48, architecture="topk", k=2, n_steps=1500, batch_size=512, seed=0).fit(x[:10000])
    return x, directions, codes, sae


def test_topk_recovers_a_planted_dictionary(planted):
    x, directions, _, sae = planted
    assert recovered(sae, directions) >= 0.9
    assert sae.score(x[10000:]) > 0.85
    stats_ = dictionary_statistics(sae.transform(x[10000:]))
    assert stats_["l0"] <= 2.0 + 1e-9 and stats_["n_features"] == 48


def test_relu_dictionary_is_sparse_and_recovers_most_directions():
    x, directions, _ = planted_dictionary(12000, seed=1)
    sae = SparseAutoencoder(n_features=48, architecture="relu", l1_coefficient=2.0, n_steps=3000, batch_size=512,
                            seed=0).fit(x[:10000])
    assert recovered(sae, directions) >= 0.9
    assert dictionary_statistics(sae.transform(x[10000:]))["l0"] < 8
    # more sparsity pressure: fewer active features
    sparse = SparseAutoencoder(n_features=48, architecture="relu", l1_coefficient=8.0, n_steps=1500, batch_size=512,
                               seed=0).fit(x[:10000])
    assert dictionary_statistics(sparse.transform(x[10000:]))["l0"] < dictionary_statistics(
        sae.transform(x[10000:]))["l0"]


def test_an_untrained_direction_is_not_found():
    """Recovery is measured, not assumed: a dictionary of random directions recovers almost nothing."""
    x, directions, _ = planted_dictionary(2000, seed=2)
    sae = SparseAutoencoder(n_features=48, architecture="topk", k=2, n_steps=1, batch_size=64, seed=3).fit(x)
    assert recovered(sae, directions) < 0.2


def test_transcoder_learns_a_sparse_map():
    """fit(X, Y): the features predict Y (a layer's output) from X (its input)."""
    x, directions, codes = planted_dictionary(8000, seed=4)
    rng = np.random.default_rng(0)
    out_dirs = rng.normal(size=(codes.shape[1], 10))
    y = (codes @ out_dirs).astype(np.float32)
    tc = SparseAutoencoder(n_features=48, architecture="topk", k=2, n_steps=1500, batch_size=512, seed=0).fit(x[:7000],
                                                                                                            y[:7000])
    assert tc.transcoder_ and tc.feature_directions().shape == (48, 10)
    assert tc.score(x[7000:], y[7000:]) > 0.6
    with pytest.raises(ValueError, match="features"):
        tc.transform(y[:5])


def test_estimator_contract_and_clear_errors(tmp_path, planted):
    x, _, _, sae = planted
    assert np.allclose(sae.reconstruct(x[:50]), sae.inverse_transform(sae.transform(x[:50])), atol=1e-5)
    with pytest.raises(ValueError, match="NaN"):
        sae.transform(np.full((3, 16), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="16"):
        sae.transform(np.zeros((3, 5), dtype=np.float32))
    with pytest.raises(RuntimeError, match="not fitted"):
        SparseAutoencoder().transform(x[:3])
    with pytest.raises(ValueError, match="architecture"):
        SparseAutoencoder(architecture="gated").fit(x[:10])
    with pytest.raises(ValueError, match="exceeds"):
        SparseAutoencoder(n_features=4, k=8).fit(x[:10])
    path = sae.save(tmp_path / "d.sae.pt")
    again = SparseAutoencoder.load(path)
    assert np.array_equal(again.transform(x[:100]), sae.transform(x[:100]))
    with pytest.raises(FileNotFoundError, match="no dictionary"):
        SparseAutoencoder.load(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises((ValueError, Exception)):
        SparseAutoencoder.load(tmp_path / "bad.pt")


def test_same_seed_same_dictionary():
    x, _, _ = planted_dictionary(3000, seed=5)
    a = SparseAutoencoder(n_features=32, k=2, n_steps=200, batch_size=256, seed=7).fit(x)
    b = SparseAutoencoder(n_features=32, k=2, n_steps=200, batch_size=256, seed=7).fit(x)
    assert np.array_equal(a.feature_directions(), b.feature_directions())


def test_ablation_changes_only_the_named_features(planted):
    x, _, _, sae = planted
    rows = torch.as_tensor(x[:200])
    assert torch.equal(sae.ablate_torch(rows, []), rows)
    codes = sae.transform(x[:200])
    feature = int(np.argmax((codes > 0).sum(axis=0)))
    edited = sae.ablate_torch(rows, [feature]).detach().numpy()
    expected = x[:200] - codes[:, [feature]] * sae.feature_directions()[[feature]] / sae.scale_out_
    assert np.allclose(edited, expected, atol=1e-4)
    clamped = sae.ablate_torch(rows, [feature], value=1.0).detach().numpy()
    assert np.allclose(clamped, x[:200] + (1.0 - codes[:, [feature]]) * sae.feature_directions()[[feature]]
                       / sae.scale_out_, atol=1e-4)


def test_variance_explained_bounds():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 4))
    assert variance_explained(x, x) == pytest.approx(1.0)
    assert variance_explained(x, np.broadcast_to(x.mean(axis=0), x.shape)) == pytest.approx(0.0)


# ---------------------------------------------------------------------------- scoring
def test_feature_aurocs_and_bootstrap_replicates_agree_with_sklearn():
    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.3
    codes = np.maximum(rng.normal(size=(500, 6)) + y[:, None] * np.arange(6)[None, :] * 0.3, 0)  # ties at 0
    expected = [roc_auc_score(y, codes[:, j]) for j in range(6)]
    assert np.allclose(feature_aurocs(codes, y), expected)
    assert np.allclose(feature_aurocs(codes, y, stats.rankdata(codes, axis=0)), expected)
    assert weighted_auroc(codes[:, 3], y, np.ones(500)) == pytest.approx(expected[3])
    groups = np.arange(500) // 5
    weights = group_weights(groups, 20, 0)
    replicates = auroc_replicates(codes[:, 3], y, weights)
    assert np.allclose(replicates, [weighted_auroc(codes[:, 3], y, w) for w in weights])
    diff = paired_difference(codes[:, 5], codes[:, 0], y, groups, 200, 0)
    assert diff["ci_low"] > 0 and diff["diff"] == pytest.approx(expected[5] - expected[0])
    with pytest.raises(ValueError, match="both classes"):
        feature_aurocs(codes, np.zeros(500, bool))


def _planted_concepts(n: int = 3000, seed: int = 0):
    """Codes where feature 3 fires exactly on concept A; concept B is linear in the activations only."""
    rng = np.random.default_rng(seed)
    a = rng.random(n) < 0.3
    b = rng.random(n) < 0.4
    codes = np.maximum(rng.normal(size=(n, 12)) - 1.0, 0)
    codes[:, 3] = a * (1 + rng.random(n))
    activations = rng.normal(size=(n, 8))
    activations[:, 0] += 3 * b
    groups = np.arange(n) // 10
    order = rng.permutation(n // 10)
    parts = np.split(order, [int(0.6 * len(order)), int(0.8 * len(order))])
    rows = [np.flatnonzero(np.isin(groups, p)) for p in parts]
    return codes, activations, a, b, Folds(*rows, groups)


def test_score_concept_finds_the_planted_feature_and_the_probe_wins_elsewhere():
    codes, activations, a, b, folds = _planted_concepts()
    record = score_concept(codes, activations, a, folds, n_boot=100)
    assert record["best_feature"] == 3
    assert record["best_feature_auroc"] == pytest.approx(1.0) and record["best_feature_f1"] == pytest.approx(1.0)
    assert 3 in record["set_features"] and record["set_auroc"] > 0.99
    other = score_concept(codes, activations, b, folds, n_boot=100)
    assert other["probe_auroc"] > 0.9 and other["best_feature_auroc"] < 0.6
    assert other["best_feature_minus_probe_ci_high"] < 0
    assert set(other["_scores"]) == {"best_feature", "set", "probe"}
    single = np.zeros(len(a), bool)
    single[folds.test] = True
    with pytest.raises(ValueError, match="single class"):
        score_concept(codes, activations, single, folds)


def test_describe_features_matches_by_precision_and_names_descriptors():
    rng = np.random.default_rng(1)
    n = 4000
    concept = rng.random(n) < 0.2
    common = rng.random(n) < 0.95
    quantity = rng.normal(size=n)
    board = rng.integers(0, 6, n).astype(float)
    codes = np.zeros((n, 5))
    codes[concept, 0] = 1.0  # fires exactly on the concept
    codes[:, 1] = np.where(quantity > 1.5, quantity, 0)  # fires rarely, where the solver quantity is high
    codes[common & (rng.random(n) < 0.5), 2] = 1.0  # fires on a concept true almost everywhere: no lift
    codes[:, 4] = (board == 0) * 2.0  # a board fact
    records = {r["feature"]: r for r in describe_features(
        codes, {"concept": concept, "common": common}, {"quantity": quantity, "board": board},
        solver_descriptors=("quantity",))}
    assert 3 not in records  # never fires
    assert records[0]["matched"] and records[0]["concept"] == "concept" and records[0]["precision"] == 1.0
    one = records[1]
    assert not one["matched"] and one["best_descriptor"] == "quantity" == one["best_solver_descriptor"]
    assert one["best_descriptor_separation"] == pytest.approx(1.0)  # rare firing does not dilute it
    assert one["best_descriptor_mean_when_fired"] > 1.5 > one["best_descriptor_mean"]
    assert not records[2]["matched"]
    four = records[4]
    assert four["best_descriptor"] == "board" and four["best_descriptor_separation"] == pytest.approx(-1.0)
    assert abs(four["best_solver_descriptor_separation"]) < 0.2


def test_descriptor_separation_is_an_auroc_and_skips_undefined_rows():
    from probes.dictionary_scores import descriptor_separations

    rng = np.random.default_rng(2)
    d = rng.normal(size=500)
    d[:50] = np.nan
    fired = np.stack([rng.random(500) < 0.3, d > 0.5], axis=1)
    fired[:50, 1] = True  # undefined rows do not count
    names, separation, _, _ = descriptor_separations(fired, {"d": d})
    keep = ~np.isnan(d)
    assert separation[0, 0] == pytest.approx(2 * roc_auc_score(fired[keep, 0], d[keep]) - 1)
    assert separation[0, 1] == pytest.approx(1.0)


# ---------------------------------------------------------------------------- the study on Connect Four
@pytest.fixture(scope="module")
def c4_dataset():
    """A labelled table like a dataset's, with every column the dictionary study reads (late random positions)."""
    import games
    from games.concepts import label
    from games.connect4.minimal_pairs import random_parents

    game = games.get("connect4")
    states = random_parents(game, 200, seed=5, min_ply=18)
    names = ["value", "score", "column_scores", "good_moves", "optimal_moves", "n_good_moves", "moves_to_end",
             "playable_squares", "win_in_1", "winning_moves", "forced_block", "blocking_moves", "threat_squares_me",
             "n_threats_me"]
    labels = label(game, states, names)
    table = pd.DataFrame({"moves": [s.history for s in states], "game_id": np.arange(len(states)) // 4,
                          "ply": [s.moves for s in states]})
    for name in names:
        table[name] = list(labels[name]) if labels[name].ndim > 1 else labels[name]
    from games.concepts import concepts

    kinds = {n: concepts("connect4")[n].kind for n in names}
    return game, types.SimpleNamespace(positions=table, concept_kinds=kinds, manifest={})


def test_connect4_targets_and_descriptors(c4_dataset):
    from agents.connect4.dictionaries import (
        concept_targets,
        descriptors,
        move_concept_squares,
    )

    game, dataset = c4_dataset
    n = len(dataset.positions)
    square, position, skipped = concept_targets(game, dataset.positions, dataset.concept_kinds)
    assert square["threat_squares_me"].shape == (n, 42)
    assert "winning_moves@square" in square and "column_scores>0@square" in square
    # a winning move's square is playable, in the column it names
    win = square["winning_moves@square"].reshape(n, 6, 7)
    assert (win <= np.stack(dataset.positions["playable_squares"]).reshape(n, 6, 7).astype(bool)).all()
    assert np.array_equal(win.any(axis=(1, 2)), dataset.positions["win_in_1"].to_numpy().astype(bool))
    assert "value>0" in position and "n_threats_me>0" in position and "win_in_1" in position
    assert set(skipped) == {"score"}  # score > 0 is value > 0
    per_square, per_position = descriptors(game, dataset.positions)
    assert per_square["my_disc"].shape == (n * 42,) and per_position["value"].shape == (n,)
    # move scores exist exactly on playable squares
    assert np.array_equal(~np.isnan(per_square["move_score_here"]), per_square["playable"] > 0)
    assert move_concept_squares("win_in_1") == "winning_moves@square"
    with pytest.raises(ValueError, match="names no columns"):
        move_concept_squares("n_threats_me")


def test_dictionary_run_resumes_and_reports(tmp_path, c4_dataset, tiny_policy):
    from agents.connect4.dictionaries import dictionary_inputs
    from agents.dictionaries import (
        DictionarySettings,
        run_dictionaries,
        run_transcoders,
    )
    from agents.network import random_weight_network
    from probes.dictionary_report import read_results, write_dictionary_report

    game, dataset = c4_dataset
    inputs, _ = dictionary_inputs(game, dataset, seed=0)
    settings = DictionarySettings(n_steps=40, batch_size=128, n_boot=20, n_random=2, square_expansion=2,
                                  flat_expansion=2)
    layers = ("features_extractor.blocks.0", "mlp_extractor.policy_net.fc")
    control = random_weight_network(tiny_policy, 1)
    with pytest.raises(FileNotFoundError, match="run the control first"):
        run_dictionaries(tiny_policy, "tiny", inputs, tmp_path, settings, layers,
                         control=("random", control), progress=False)
    run_dictionaries(control, "random", inputs, tmp_path, settings, layers, meta={"role": "random-weights"},
                     progress=False)
    first = run_dictionaries(tiny_policy, "tiny", inputs, tmp_path, settings, layers,
                             control=("random", control), meta={"role": "agent"}, progress=False)
    record = first["features_extractor.blocks.0"]
    assert record["n_features"] == 16 and {f["metric"] for f in record["fidelity"]} == {"good", "perfect", "value_sign"}
    scored = [c for c in record["coverage"] if "skipped" not in c]
    assert scored and all("best_feature_minus_control" in c for c in scored)
    assert {c["level"] for c in scored} == {"square", "position"}
    path = tmp_path / "tiny" / "features_extractor.blocks.0.json"
    stamp = path.stat().st_mtime_ns
    again = run_dictionaries(tiny_policy, "tiny", inputs, tmp_path, settings, layers,
                             control=("random", control), progress=False)
    assert path.stat().st_mtime_ns == stamp and again["features_extractor.blocks.0"] == json.loads(path.read_text())
    # other settings: redone
    changed = DictionarySettings(**{**settings.__dict__, "n_steps": 41})
    run_dictionaries(control, "random", inputs, tmp_path, changed, layers[:1], progress=False)
    assert json.loads((tmp_path / "random" / "features_extractor.blocks.0.json").read_text())["settings"]["n_steps"] == 41
    transcoders = run_transcoders(tiny_policy, "tiny", inputs, tmp_path, settings, layers)
    assert list(transcoders) == ["mlp_extractor.policy_net.fc"]  # flat layers only
    tc = transcoders["mlp_extractor.policy_net.fc"]
    assert tc["kind"] == "transcoder" and tc["d_out"] == 16 and np.isfinite(tc["variance_explained_test"])
    assert (tmp_path / "tiny" / "mlp_extractor.policy_net.fc.transcoder.pt").exists()
    results, roles = read_results(tmp_path)
    assert set(results) == {"tiny", "random"} and roles["random"] == "random-weights"
    assert results["tiny"]["mlp_extractor.policy_net.fc"].get("kind") != "transcoder"
    report = write_dictionary_report(results, roles, tmp_path, picture=lambda t: game.render_rgb(game.parse(t)),
                                     grid=(game.height, game.width), transcoders={"tiny": transcoders})
    text = report.read_text()
    assert "## Coverage of the concepts" in text and "### Transcoders" in text and (tmp_path / "coverage.csv").exists()
    assert (tmp_path / "fidelity.png").exists()


def test_settings_and_layers_are_checked(tiny_policy):
    from agents.dictionaries import DictionarySettings, dictionary_layers

    with pytest.raises(ValueError, match="n_steps"):
        DictionarySettings(n_steps=0)
    with pytest.raises(ValueError, match="match_precision"):
        DictionarySettings(match_precision=0.2)
    with pytest.raises(ValueError, match="architecture"):
        DictionarySettings(architecture="gated")
    with pytest.raises(ValueError, match="no layers"):
        dictionary_layers(tiny_policy, ["features_extractor.blocks.7"])
    assert dictionary_layers(tiny_policy, ["features_extractor.blocks.0"])[0][1] is True


def test_batched_probes_match_scikit_learn():
    """probe_path fits many targets at once with scikit-learn's objective: the same probes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from probes.dictionary_scores import probe_decision, probe_path

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 12))
    y = (x @ rng.normal(size=(12, 3)) + rng.normal(size=(600, 3))) > 0
    models = probe_path(x, y, (0.1, 1.0))
    z = StandardScaler().fit(x).transform(x)
    for c in (0.1, 1.0):
        ours = probe_decision(models[c], x)
        for t in range(3):
            theirs = LogisticRegression(C=c, tol=1e-8, max_iter=2000).fit(z, y[:, t]).decision_function(z)
            assert np.allclose(ours[:, t], theirs, atol=1e-3)


def test_verdicts_choose_layers_on_validation_and_need_every_seed():
    """Planted results: the layer is chosen by validation AUROC (not test), and a concept is in the dictionary
    only when its best feature beats the control in every agent."""
    from probes.dictionary_report import candidate_concepts, chosen_layers, concept_verdicts

    rows = []
    for network in ("a0", "a1", "a2", "ref"):
        for target, beats in (("everywhere", True), ("two_seeds", network != "a2")):
            for layer, validation, test in (("early", 0.9, 0.70), ("late", 0.8, 0.95)):
                rows.append({"network": network, "target": target, "level": "square", "layer": layer,
                             "best_feature_auroc_validation": validation, "best_feature_auroc": test,
                             "best_feature_f1": 0.5, "set_auroc": test, "probe_auroc": 0.9,
                             "control_best_feature_auroc": 0.6, "best_feature_minus_probe": test - 0.9,
                             "best_feature_minus_probe_ci_high": test - 0.85,
                             "best_feature_minus_control_ci_low": 0.05 if beats else -0.01})
    chosen = chosen_layers(pd.DataFrame(rows))
    assert set(chosen["layer"]) == {"early"} and np.allclose(chosen["best_feature_auroc"], 0.70)
    verdicts = concept_verdicts(chosen, ["a0", "a1", "a2"], ["ref"]).set_index("target")
    assert verdicts.at["everywhere", "in_every_agent"] and not verdicts.at["two_seeds", "in_every_agent"]
    assert not verdicts.at["everywhere", "as_good_as_probe_every_agent"]  # 0.70 vs a probe at 0.9
    assert verdicts.at["everywhere", "ref_best_feature_auroc"] == pytest.approx(0.70)
    # a missing seed is not "every seed"
    assert not concept_verdicts(chosen[chosen["network"] != "a1"], ["a0", "a1", "a2"]).set_index(
        "target").at["everywhere", "in_every_agent"]

    features = pd.DataFrame([
        {"network": n, "layer": "late", "feature": i, "matched": False, "best_descriptor": best,
         "best_descriptor_separation": sep, "best_solver_descriptor": d, "best_solver_descriptor_separation": sep}
        for i, (n, d, best, sep) in enumerate([
            ("a0", "value", "value", 0.9), ("a1", "value", "value", 0.85), ("a2", "value", "value", -0.95),
            ("a2", "value", "value", 0.9), ("r", "value", "value", 0.6),
            ("a0", "score", "score", 0.9), ("a1", "score", "row", 0.9), ("a2", "score", "score", 0.5),
            ("a0", "ply", "ply", 0.9), ("a1", "ply", "ply", 0.9), ("a2", "ply", "ply", 0.9), ("r", "ply", "ply", 0.95)])])
    candidates = candidate_concepts(features, ["a0", "a1", "a2"], ["r"]).set_index(["descriptor", "direction"])
    assert candidates.at[("value", "+"), "candidate"] and candidates.at[("value", "+"), "n_in_agents"] == 3
    assert candidates.at[("value", "+"), "controls_best"] == pytest.approx(0.6)
    assert not candidates.at[("value", "-"), "candidate"]  # one seed only
    # a1's feature is better told by a board fact and a2's is weak: not in every agent
    assert not candidates.at[("score", "+"), "candidate"]
    assert candidates.at[("score", "+"), "weakest_agent_best"] == pytest.approx(0.0)
    assert not candidates.at[("ply", "+"), "candidate"]  # a random network's features track it as well
