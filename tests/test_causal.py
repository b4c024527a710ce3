"""Erasers and hooks: LEACE / INLP erasure on synthetic data, steering and erasure hooks on planted nets.

Nothing here needs a trained agent: the data and networks are built so that the right answer
is known (the concept lives in one planted direction), and every check can fail.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from probes.causal import (Eraser, covariance, erase, inlp_fit, intervene, leace_fit, random_direction_like,
                           random_subspace_eraser, steer)

torch.set_num_threads(1)


def synthetic(n: int = 3000, d: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Anisotropic, correlated Gaussian features with a binary concept shifted along one direction."""
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 2, n)
    mixing = rng.standard_normal((d, d)) * np.linspace(0.2, 3.0, d)  # very unequal variances
    shift = rng.standard_normal(d)
    x = rng.standard_normal((n, d)) @ mixing.T + 1.5 * np.outer(z - 0.5, shift) + 4.0
    return x, z


def held_out_accuracy(x: np.ndarray, z: np.ndarray) -> float:
    """Balanced accuracy of a logistic regression fitted on the first half, scored on the second."""
    half = len(x) // 2
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x[:half], z[:half])
    return float(balanced_accuracy_score(z[half:], clf.predict(x[half:])))


@pytest.fixture(scope="module")
def data():
    return synthetic()


def test_synthetic_concept_is_linearly_decodable(data):
    x, z = data
    assert held_out_accuracy(x, z) > 0.8


def test_leace_makes_a_linear_probe_chance_while_a_random_subspace_does_not(data):
    x, z = data
    eraser = leace_fit(x, z)
    assert eraser.rank == 1  # a binary concept has a rank-1 cross-covariance
    assert held_out_accuracy(eraser.apply(x), z) < 0.55
    for seed in range(3):
        for control in (random_subspace_eraser(x.shape[1], 1, seed, mean=x.mean(0)),
                        random_subspace_eraser(x.shape[1], 1, seed, mean=x.mean(0), cov=covariance(x))):
            assert control.rank == 1
            assert held_out_accuracy(control.apply(x), z) > 0.75, control.method


def test_leace_is_the_smallest_edit(data):
    """Mean kept, zero cross-covariance, a rank-1 edit, smaller than orthogonal projection and INLP."""
    x, z = data
    eraser = leace_fit(x, z)
    erased = eraser.apply(x)
    np.testing.assert_allclose(erased.mean(0), x.mean(0), atol=1e-9)
    cross = (erased - erased.mean(0)).T @ (z - z.mean()) / len(z)
    assert np.abs(cross).max() < 1e-9
    change = x - erased
    assert np.linalg.matrix_rank(change, tol=1e-8 * np.abs(change).max()) == 1
    # another valid eraser: project orthogonally along the cross-covariance direction
    c = (x - x.mean(0)).T @ (z - z.mean()) / len(z)
    u = c / np.linalg.norm(c)
    orthogonal = Eraser(np.outer(u, u), x.mean(0), 1, "orthogonal")
    assert held_out_accuracy(orthogonal.apply(x), z) < 0.55
    leace_cost = np.mean(np.sum(change ** 2, axis=1))
    orthogonal_cost = np.mean(np.sum((x - orthogonal.apply(x)) ** 2, axis=1))
    inlp = inlp_fit(x, z, rank=8)
    inlp_cost = np.mean(np.sum((x - inlp.apply(x)) ** 2, axis=1))
    assert leace_cost < 0.9 * orthogonal_cost
    assert leace_cost < 0.9 * inlp_cost


def test_inlp_reaches_chance_after_enough_iterations(data):
    x, z = data
    half = len(x) // 2
    eraser = inlp_fit(x[:half], z[:half], rank=12, x_test=x[half:], y_test=z[half:])
    assert eraser.info["accuracies"][0] > 0.8  # the first classifier finds the concept
    # one direction per iteration, none from the last one (it found chance and stopped the loop)
    assert eraser.rank == len(eraser.info["accuracies"]) - 1 == 10
    assert eraser.info["accuracies"][-1] <= 0.5 + 0.02
    np.testing.assert_allclose(eraser.proj @ eraser.proj, eraser.proj, atol=1e-9)  # a projection
    assert held_out_accuracy(eraser.apply(x), z) < 0.58
    one = inlp_fit(x, z, rank=1)
    assert one.rank == 1


def test_leace_erases_a_multiclass_concept():
    rng = np.random.default_rng(1)
    n, d = 3000, 12
    y = rng.integers(0, 3, n)
    centres = rng.standard_normal((3, d)) * 2
    x = rng.standard_normal((n, d)) + centres[y]
    eraser = leace_fit(x, y)
    assert eraser.rank == 2
    clf = LogisticRegression(max_iter=2000).fit(eraser.apply(x[:1500]), y[:1500])
    assert balanced_accuracy_score(y[1500:], clf.predict(eraser.apply(x[1500:]))) < 0.40


def test_eraser_torch_matches_numpy(data):
    x, z = data
    eraser = leace_fit(x, z)
    t = torch.as_tensor(x[:50], dtype=torch.float64)
    np.testing.assert_allclose(eraser.apply_torch(t).numpy(), eraser.apply(x[:50]), atol=1e-9)
    with pytest.raises(ValueError, match="features"):
        eraser.apply(x[:, :5])


def test_random_direction_has_equal_norm():
    d = np.arange(12.0)
    r = random_direction_like(d, seed=3)
    assert r.shape == d.shape
    assert np.isclose(np.linalg.norm(r), np.linalg.norm(d))
    assert not np.allclose(r, random_direction_like(d, seed=4))
    np.testing.assert_array_equal(r, random_direction_like(d, seed=3))


# ---------------------------------------------------------------------------- planted network
class PlantedNet(nn.Module):
    """``out = 3 u . hidden(x)`` plus a small term: the output reads one planted direction u."""

    def __init__(self, width: int = 64, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.hidden = nn.Linear(8, width)
        self.u = torch.randn(width, generator=g)
        self.u /= self.u.norm()
        self.head = nn.Linear(width, 1)
        with torch.no_grad():
            self.head.weight.copy_(3.0 * self.u[None] + 0.01 * torch.randn(1, width, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.hidden(x)))[:, 0]


@pytest.fixture(scope="module")
def planted():
    torch.manual_seed(0)
    return PlantedNet(), torch.randn(256, 8)


def test_hooks_restore_the_model(planted):
    net, x = planted
    before = net(x).detach().clone()
    with steer(net, "hidden", net.u.numpy(), 5.0):
        assert not torch.allclose(net(x), before)
    assert torch.equal(net(x), before)
    acts = net.hidden(x).detach().numpy()
    eraser = leace_fit(acts, (acts @ net.u.numpy() > 0).astype(int))
    with erase(net, "hidden", eraser):
        assert not torch.allclose(net(x), before)
    assert torch.equal(net(x), before)
    with pytest.raises(RuntimeError, match="boom"):
        with steer(net, "hidden", net.u.numpy(), 5.0):
            raise RuntimeError("boom")
    assert torch.equal(net(x), before)
    assert not net.hidden._forward_hooks


def test_hooks_reject_bad_layers_and_shapes(planted):
    net, x = planted
    with pytest.raises(ValueError, match="no submodule named 'nope'"):
        with steer(net, "nope", net.u.numpy(), 1.0):
            pass
    with pytest.raises(ValueError, match="features"):
        with steer(net, "hidden", np.ones(3), 1.0):
            net(x)


def test_intervene_edits_conv_maps_in_flat_space():
    conv = nn.Sequential(nn.Conv2d(2, 3, 1), nn.Identity())
    x = torch.randn(4, 2, 5, 6)
    base = conv(x)
    direction = np.zeros(3 * 5 * 6)
    direction[7] = 1.0  # channel 0, row 1, column 1 in C, H, W order
    with steer(conv, "1", direction, 2.0):
        out = conv(x)
    delta = (out - base).detach()
    assert torch.allclose(delta[:, 0, 1, 1], torch.full((4,), 2.0))
    assert delta.abs().sum() == pytest.approx(8.0)
    with intervene(conv, "1", lambda flat: flat * 0):
        assert conv(x).abs().sum() == 0


# ---------------------------------------------------------------------------- Connect Four side
def test_concept_moves_name_the_winning_and_blocking_columns():
    import games
    from games.connect4.minimal_pairs import concept_moves
    from games.connect4.position import Position

    game = games.get("connect4")
    win = Position.from_moves("121212")  # first player has three in column 1, to move
    block = Position.from_moves("12121")  # second player to move must block column 1
    quiet = Position.from_moves("1234")
    np.testing.assert_array_equal(concept_moves(game, [win, block, quiet], "win_in_1")[:, 0], [True, False, False])
    blocks = concept_moves(game, [block, quiet], "forced_block")  # the column of the opponent's playable threat
    np.testing.assert_array_equal(blocks, [[True] + [False] * 6, [False] * 7])
    assert concept_moves(game, [win], "win_in_1").sum() == 1
    with pytest.raises(ValueError, match="names no columns"):
        concept_moves(game, [win], "n_threats_me")


def test_minimal_pairs_are_one_disc_apart_and_flip_only_their_concept():
    import games
    from games.concepts import label
    from games.connect4.minimal_pairs import DEFAULT_CONTROLS, check_pair, find_minimal_pairs, random_parents

    game = games.get("connect4")
    parents = random_parents(game, 150, seed=1, min_ply=11)
    for concept in ("win_in_1", "forced_block"):
        pairs = find_minimal_pairs(game, concept, parents, max_pairs=20, solve=False)
        assert len(pairs) >= 5, concept
        for pair in pairs:
            check_pair(game, pair)
            a, b = game.parse(pair.with_concept), game.parse(pair.without_concept)
            assert pair.with_concept[:-1] == pair.without_concept[:-1] == pair.parent
            labels = label(game, [a, b], list(DEFAULT_CONTROLS))
            for other in DEFAULT_CONTROLS:
                if other != concept:
                    assert labels[other][0] == labels[other][1], (concept, other, pair)
            assert pair.concept_moves_with
    with pytest.raises(ValueError, match="binary"):
        find_minimal_pairs(game, "n_threats_me", parents)
    bad = pairs[0].__class__(**{**pairs[0].__dict__, "without_concept": pairs[0].with_concept})
    with pytest.raises(ValueError, match="boards differ in 0 squares, not 2"):
        check_pair(game, bad)


def test_minimal_pairs_carry_solver_moves():
    import games
    from games.connect4.minimal_pairs import find_minimal_pairs, random_parents

    game = games.get("connect4")
    parents = random_parents(game, 60, seed=2, min_ply=16)
    pairs = find_minimal_pairs(game, "win_in_1", parents, max_pairs=3, solve=True)
    assert pairs
    for pair in pairs:
        # taking an immediate win is always optimal, and only winning columns are
        assert set(pair.optimal_with) <= set(pair.concept_moves_with) and pair.optimal_with
        assert pair.value_with == 1
        assert set(pair.optimal_without) <= set(pair.good_without)
