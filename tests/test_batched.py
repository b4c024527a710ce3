"""Batched probes (`probes.batched`) solve scikit-learn's objectives, and the C path picks the best C."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, Ridge

from probes.batched import Standardiser, Whitening, fit_logistic_many, fit_ridge_many, inner_folds

torch.set_num_threads(1)


def _problem(n: int = 900, d: int = 12, targets: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))  # correlated features
    x_std = Standardiser.fit(x)(x)
    logits = x_std @ rng.normal(size=(d, targets)) * 0.7
    y = (rng.random((n, targets)) < 1 / (1 + np.exp(-logits))).astype(int)
    return x_std, y, np.repeat(np.arange(n // 3), 3)


def test_logistic_matches_sklearn_at_a_fixed_C():
    x_std, y, groups = _problem()
    for C in (0.01, 1.0):
        fit = fit_logistic_many(x_std, y, groups, C=C, max_iter=500)
        for t in range(y.shape[1]):
            ref = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(x_std, y[:, t])
            np.testing.assert_allclose(fit.coef[:, t], ref.coef_[0], atol=2e-3 * max(1.0, np.abs(ref.coef_).max()))
            np.testing.assert_allclose(fit.intercept[t], ref.intercept_[0], atol=2e-3)


def test_row_weights_exclude_rows():
    x_std, y, groups = _problem()
    weight = np.ones_like(y, dtype=float)
    weight[::2, 0] = 0.0  # target 0 sees only the odd rows
    fit = fit_logistic_many(x_std, y, groups, weight=weight, C=1.0, max_iter=500)
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(x_std[1::2], y[1::2, 0])
    np.testing.assert_allclose(fit.coef[:, 0], ref.coef_[0], atol=2e-3 * max(1.0, np.abs(ref.coef_).max()))


def test_C_path_with_early_exit_picks_the_exhaustive_choice():
    """The path leaves a column once its held-out loss rises; the choice equals a full grid search."""
    x_std, y, groups = _problem(targets=4, seed=1)
    y[:, 3] = np.random.default_rng(5).integers(0, 2, len(y))  # pure noise
    grid = tuple(np.logspace(-4, 2, 7))
    fit = fit_logistic_many(x_std, y, groups, Cs=grid, max_iter=500)
    losses = np.zeros((len(grid), y.shape[1]))
    for fit_rows, val_rows in inner_folds(groups):
        for ci, C in enumerate(grid):
            for t in range(y.shape[1]):
                ref = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(x_std[fit_rows], y[fit_rows, t])
                p = np.clip(ref.predict_proba(x_std[val_rows])[:, 1], 1e-12, 1 - 1e-12)
                yv = y[val_rows, t]
                losses[ci, t] += -np.mean(yv * np.log(p) + (1 - yv) * np.log(1 - p))
    np.testing.assert_array_equal(fit.C, np.asarray(grid)[np.argmin(losses, axis=0)])
    assert len(np.unique(fit.C)) > 1  # the columns really chose differently


def test_tied_columns_reuse_the_chosen_C():
    x_std, y, groups = _problem(targets=2)
    fit = fit_logistic_many(x_std, y, groups, tie=np.array([-1, 0]))
    assert fit.C[1] == fit.C[0]


def _low_rank_problem(n: int = 900, d: int = 12, rank: int = 4, seed: int = 0):
    """Features with `rank` strong directions plus weak noise; the label depends on the strong ones."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, rank))
    x = latent @ rng.normal(size=(rank, d)) + 0.05 * rng.normal(size=(n, d))
    x_std = Standardiser.fit(x)(x)
    y = (rng.random(n) < 1 / (1 + np.exp(-latent @ rng.normal(size=rank)))).astype(int)[:, None]
    return x_std, y, np.repeat(np.arange(n // 3), 3)


def test_truncated_whitening_keeps_the_leading_principal_directions():
    x_std, _, _ = _low_rank_problem()
    full, truncated = Whitening.fit(x_std), Whitening.fit(x_std, max_components=4)
    assert truncated.basis.shape == (12, 4) and full.basis.shape == (12, 12)
    np.testing.assert_allclose(truncated.variances, full.variances[:4], rtol=1e-6)
    # same subspace: the projection matrices agree (eigenvector signs are arbitrary)
    np.testing.assert_allclose(truncated.vectors @ truncated.vectors.T, full.vectors[:, :4] @ full.vectors[:, :4].T,
                               atol=1e-6)


def test_truncated_fit_equals_sklearn_on_the_projected_features():
    """Keeping k directions is logistic regression on ``x_std @ V_k`` with sklearn's L2 penalty (exact)."""
    x_std, y, groups = _low_rank_problem()
    truncated = Whitening.fit(x_std, max_components=4)
    for C in (0.1, 1.0):
        fit = fit_logistic_many(x_std, y, groups, truncated, C=C, max_iter=500)
        ref = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(x_std @ truncated.vectors, y[:, 0])
        # same tolerance as the full fit against sklearn: L-BFGS stops at gradient 1e-4 in float32
        np.testing.assert_allclose(fit.coef[:, 0], truncated.vectors @ ref.coef_[0], atol=2e-3)
        np.testing.assert_allclose(fit.intercept[0], ref.intercept_[0], atol=2e-3)


def test_truncated_fit_predicts_like_the_full_fit_when_the_dropped_directions_are_noise():
    """The sweeps' default (the leading principal directions only) against all directions.

    The 8 dropped directions hold 0.06% of the variance and carry no signal, so at C=0.1
    the L2 penalty keeps the full fit's use of them small: its predicted probabilities
    differ from the truncated fit's by 0.002 at most here; 0.01 is the bound tested. The
    coefficients themselves may differ more (the full fit spends weight on noise directions
    that barely move the logits), so predictions, not weights, are compared; the full fit
    itself is checked against sklearn on all features.
    """
    x_std, y, groups = _low_rank_problem()
    full = fit_logistic_many(x_std, y, groups, Whitening.fit(x_std), C=0.1, max_iter=500)
    ref = LogisticRegression(C=0.1, tol=1e-10, max_iter=10_000).fit(x_std, y[:, 0])
    np.testing.assert_allclose(full.coef[:, 0], ref.coef_[0], atol=2e-3)
    truncated = fit_logistic_many(x_std, y, groups, Whitening.fit(x_std, max_components=4), C=0.1, max_iter=500)

    def prob(fit):
        return 1 / (1 + np.exp(-(x_std @ fit.coef[:, 0] + fit.intercept[0])))

    assert np.abs(prob(full) - prob(truncated)).max() < 0.01
    # and truncation really changed the fit (this test would not notice an ignored max_components otherwise)
    assert np.abs(full.coef - truncated.coef).max() > 1e-2


def test_ridge_matches_sklearn():
    x_std, _, groups = _problem()
    rng = np.random.default_rng(3)
    y = x_std @ rng.normal(size=(x_std.shape[1], 2)) + rng.normal(size=(len(x_std), 2))
    fit = fit_ridge_many(x_std, y, groups, alpha=np.array([0.5, 50.0]))
    for t, alpha in enumerate((0.5, 50.0)):
        ref = Ridge(alpha=alpha).fit(x_std, y[:, t])
        np.testing.assert_allclose(fit.coef[:, t], ref.coef_, atol=1e-8)
        np.testing.assert_allclose(fit.intercept[t], ref.intercept_, atol=1e-8)
