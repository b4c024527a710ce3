"""Many linear probes on one feature matrix at once: the fast path behind `fit_probe` and sweeps.

A sweep cell fits dozens of probes on the same activations (every concept, its control
task, its shuffled labels). Fitting them one scikit-learn estimator at a time repeats the
expensive part - the geometry of the features - for every label vector. Here it is done
once per feature matrix:

* features are standardised on the train rows, then rotated into the eigenbasis of their
  covariance and whitened (``z = x V diag(lambda)^-1/2``); directions with (numerically) no
  variance are dropped. This is a reparametrisation, not an approximation: the L2 penalty
  is carried over exactly (``||w||^2 = sum_j u_j^2 / lambda_j``), so solutions equal those of
  `sklearn.linear_model.LogisticRegression` / `Ridge` on the standardised features (tested).
* **logistic** (L2; binary concepts, categorical ones one-vs-rest): every target is a column
  of one batched problem solved by L-BFGS in torch, warm-started along an ascending path
  of C (1e-3 to 100). C is chosen per target by the held-out log loss of an inner
  cross-validation grouped by game (a target leaves the path once its held-out loss rises),
  then each target is refitted on all train rows at its own C.
* **ridge** (counts and continuous values): closed form from one eigendecomposition per
  inner fold; alpha chosen per target by the folds' mean squared error.

The objective is sklearn's (``0.5 ||w||^2 + C sum loss`` for logistic, ``||y - Xw - b||^2 +
alpha ||w||^2`` for ridge), so C and alpha mean what they mean there. Float32 torch for
the logistic solves, float64 numpy for the geometry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from sklearn.model_selection import GroupKFold

log = logging.getLogger(__name__)

C_GRID = tuple(np.logspace(-3, 2, 6))
ALPHA_GRID = tuple(np.logspace(-2, 5, 8))
VARIANCE_FLOOR = 1e-6  # eigen-directions below this fraction of the largest variance are dropped
EXIT_RISE = 1e-3  # a target leaves the C path once its held-out loss is this fraction above its best so far
TOLERANCE_GRAD = 1e-4  # L-BFGS stops when every gradient component is below this (1e-6: same metrics within 0.003)


@dataclass
class Standardiser:
    """Train-split mean and scale of each feature (constant features get scale 1)."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "Standardiser":
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale < 1e-12] = 1.0
        return cls(mean, scale)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.scale


@dataclass
class Whitening:
    """Eigenbasis of the standardised train features: ``z = x_std @ basis`` has unit variance.

    ``basis = V diag(lambda)^-1/2`` over the kept directions; `variances` are the kept
    eigenvalues (a weight ``w`` in standardised units is ``V diag(lambda)^-1/2 u``).
    """

    basis: np.ndarray  # [d, k]
    variances: np.ndarray  # [k]
    vectors: np.ndarray  # [d, k] orthonormal eigenvectors (principal directions)

    @classmethod
    def fit(cls, x_std: np.ndarray, max_components: int | None = None) -> "Whitening":
        n, d = x_std.shape
        x32 = x_std.astype(np.float32)
        cov = (x32.T @ x32).astype(np.float64) / n  # float32 product: half the time, ample for a basis
        if max_components is not None and max_components < d:  # only the leading directions
            lam, vec = scipy.linalg.eigh(cov, subset_by_index=[d - max_components, d - 1])
        else:
            lam, vec = np.linalg.eigh(cov)
        lam, vec = lam[::-1], vec[:, ::-1]
        keep = lam > VARIANCE_FLOOR * max(lam[0], 1e-12)
        if max_components is not None:
            keep &= np.arange(len(lam)) < max_components
        lam, vec = lam[keep], vec[:, keep]
        return cls(vec / np.sqrt(lam), lam, vec)

    def weights(self, u: np.ndarray) -> np.ndarray:
        """Weights in standardised feature units of whitened-space weights ``u`` ([k, T] -> [d, T])."""
        return self.basis @ u


def inner_folds(groups: np.ndarray, folds: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped K-fold splits of the train rows (at most one fold per group)."""
    k = min(folds, len(np.unique(groups)))
    if k < 2:
        raise ValueError("inner cross-validation needs train positions from at least two games")
    return list(GroupKFold(n_splits=k).split(np.zeros(len(groups)), groups=groups))


# ----------------------------------------------------------------------------- logistic


def _lbfgs_logistic(z: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, penalty: torch.Tensor,
                    init: tuple[torch.Tensor, torch.Tensor] | None, max_iter: int,
                    report: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise, for every column t at once, mean_w logloss + sum_j u_jt^2 * penalty_jt.

    The gradient is written out (no autograd graph): ``dL/dlogits = w (sigmoid - y) / sum w``.

    :param z: [n, k] whitened features; y, weight: [n, T]; penalty: [k, T] (already
        divided by the weighted row count and C).
    :param report: if given, receives ``n_iter`` (L-BFGS iterations) and ``converged`` ([T]
        bool: the solve stopped on its tolerances before `max_iter`, or the column's final
        gradient is below `TOLERANCE_GRAD` anyway).
    """
    k, t = z.shape[1], y.shape[1]
    u = torch.zeros(k, t, dtype=z.dtype) if init is None else init[0].clone()
    b = torch.zeros(t, dtype=z.dtype) if init is None else init[1].clone()
    scaled = weight / weight.sum(0).clamp(min=1.0)
    optimizer = torch.optim.LBFGS([u, b], lr=1.0, max_iter=max_iter, history_size=20, tolerance_grad=TOLERANCE_GRAD,
                                  tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def closure():
        logits = torch.addmm(b, z, u)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, weight=scaled, reduction="sum")
        residual = (torch.sigmoid(logits) - y) * scaled
        u.grad = z.T @ residual + 2.0 * u * penalty
        b.grad = residual.sum(0)
        return loss + (u * u * penalty).sum()

    with torch.no_grad():
        optimizer.step(closure)
        if report is not None:
            state = optimizer.state[optimizer._params[0]]
            n_iter = int(state.get("n_iter", 0))
            stopped_early = n_iter < max_iter and int(state.get("func_evals", 0)) < optimizer.defaults["max_eval"]
            closure()  # gradient at the solution
            grad = torch.cat([u.grad.abs(), b.grad.abs()[None, :]]).amax(0)
            report["n_iter"] = n_iter
            report["converged"] = (grad <= TOLERANCE_GRAD).numpy() | stopped_early
    return u, b


def _log_loss(logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, weight=weight, reduction="none")
    return loss.sum(0) / weight.sum(0).clamp(min=1.0)


@dataclass
class LogisticFit:
    """Fitted binary logistic probes, one per target column, in standardised feature units."""

    coef: np.ndarray  # [d, T]
    intercept: np.ndarray  # [T]
    C: np.ndarray  # [T] inverse regularisation strengths used
    converged: np.ndarray | None = None  # [T] bool: the final fit met its tolerance within its iterations
    n_iter: int = 0  # L-BFGS iterations of the final fit (all columns are solved together)


def _choose_C(z: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, groups: np.ndarray, columns: np.ndarray,
              grid: np.ndarray, folds: int, max_iter: int, penalty) -> np.ndarray:
    """C per column by grouped inner CV: the grid value with the least summed held-out log loss.

    The path runs over ascending C, warm-started, all folds side by side. A column leaves
    the path once its held-out loss is more than `EXIT_RISE` above its best so far (held-out
    loss is unimodal in C in practice, and flat at the strongly regularised end, where a
    smaller rise is jitter); the costly weakly regularised solves are only paid by columns
    that still improve.
    """
    splits = [(z[torch.from_numpy(f)], z[torch.from_numpy(v)], torch.from_numpy(f), torch.from_numpy(v))
              for f, v in inner_folds(groups, folds)]
    loss = np.full((len(grid), len(columns)), np.inf)
    active = np.arange(len(columns))
    warm = [(torch.zeros(z.shape[1], len(columns)), torch.zeros(len(columns))) for _ in splits]  # per fold
    for ci, c in enumerate(grid):
        cols = torch.from_numpy(columns[active])
        step_loss = np.zeros(len(active))
        for (z_fit, z_val, fr, vr), (warm_u, warm_b) in zip(splits, warm):
            yf, wf = y[fr][:, cols], weight[fr][:, cols]
            u, b = _lbfgs_logistic(z_fit, yf, wf, penalty(np.full(len(active), c), wf),
                                   (warm_u[:, active], warm_b[active]), max_iter)
            warm_u[:, active], warm_b[active] = u, b
            step_loss += _log_loss(torch.addmm(b, z_val, u), y[vr][:, cols], weight[vr][:, cols]).numpy()
        loss[ci, active] = step_loss
        if ci > 0:  # leave once clearly past the minimum (not on jitter where the loss is flat)
            best = loss[: ci + 1, active].min(axis=0)
            active = active[~(loss[ci, active] > best * (1 + EXIT_RISE) + 1e-12)]
        if len(active) == 0:
            break
    return grid[np.argmin(loss, axis=0)]


def fit_logistic_many(x_std: np.ndarray, y: np.ndarray, groups: np.ndarray, whitening: Whitening | None = None,
                      weight: np.ndarray | None = None, C: np.ndarray | float | None = None,
                      tie: np.ndarray | None = None, Cs: tuple[float, ...] = C_GRID, folds: int = 3,
                      max_iter: int = 100) -> LogisticFit:
    """L2 logistic regression for every column of `y` (0/1) on the same standardised features.

    :param x_std: [n, d] standardised train features.
    :param y: [n, T] binary targets.
    :param groups: [n] game ids for the inner folds.
    :param weight: optional [n, T] row weights per target (0 excludes a row from a target).
    :param C: per-column C (NaN: choose it by grouped inner CV over `Cs`); a scalar applies to
        every column; None chooses every column's C by CV.
    :param tie: per column, the index of another column whose chosen C it reuses (-1: none),
        e.g. a control task fitted with its concept's hyperparameters (Hewitt & Liang).
    """
    whitening = whitening or Whitening.fit(x_std)
    n = len(x_std)
    y = np.asarray(y, dtype=np.float32).reshape(n, -1)
    weight = np.ones_like(y) if weight is None else np.asarray(weight, dtype=np.float32).reshape(y.shape)
    targets = y.shape[1]
    C = np.full(targets, np.nan) if C is None else np.broadcast_to(np.asarray(C, dtype=np.float64), (targets,)).copy()
    z = torch.from_numpy((x_std @ whitening.basis).astype(np.float32))
    yt, wt = torch.from_numpy(y), torch.from_numpy(weight)
    inv_var = torch.from_numpy((1.0 / whitening.variances).astype(np.float32))[:, None]

    def penalty(c: np.ndarray, rows_weight: torch.Tensor) -> torch.Tensor:
        # sklearn's 0.5 ||w||^2 + C sum(loss), divided by the (weighted) row count
        per_target = torch.from_numpy((0.5 / c).astype(np.float32))
        return inv_var * (per_target / rows_weight.sum(0).clamp(min=1.0))[None, :]

    tie = np.full(targets, -1) if tie is None else np.asarray(tie)
    choose = np.flatnonzero(np.isnan(C) & (tie < 0))
    if len(choose):
        C[choose] = _choose_C(z, yt, wt, groups, choose, np.sort(np.asarray(Cs, dtype=np.float64)), folds, max_iter,
                              penalty)
    C[tie >= 0] = C[tie[tie >= 0]]
    report: dict = {}
    u, b = _lbfgs_logistic(z, yt, wt, penalty(C, wt), None, max_iter * 3, report)
    converged = np.asarray(report["converged"], dtype=bool)
    if not converged.all():
        log.debug("%d of %d logistic columns did not converge in %d L-BFGS iterations", int((~converged).sum()),
                  len(converged), max_iter * 3)
    return LogisticFit(whitening.weights(u.numpy().astype(np.float64)), b.numpy().astype(np.float64), C, converged,
                       report["n_iter"])


# ----------------------------------------------------------------------------- ridge


@dataclass
class RidgeFit:
    """Fitted ridge probes, one per target column, in standardised feature units."""

    coef: np.ndarray  # [d, T]
    intercept: np.ndarray  # [T]
    alpha: np.ndarray  # [T]


def _ridge_path(x: np.ndarray, y: np.ndarray, alphas: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Centred ridge solutions for every alpha: (x mean, y mean, [coef [d, T] per alpha])."""
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc = x - mx
    lam, vec = np.linalg.eigh(xc.T @ xc)
    lam = np.clip(lam, 0.0, None)
    projected = vec.T @ (xc.T @ (y - my))
    return mx, my, [vec @ (projected / (lam + a)[:, None]) for a in alphas]


def fit_ridge_many(x: np.ndarray, y: np.ndarray, groups: np.ndarray, alpha: np.ndarray | float | None = None,
                   tie: np.ndarray | None = None, alphas: tuple[float, ...] = ALPHA_GRID, folds: int = 3) -> RidgeFit:
    """Ridge regression for every column of `y`.

    :param alpha: per-column alpha (NaN: choose by grouped inner CV on mean squared error
        over `alphas`); a scalar applies to every column; None chooses every column's.
    :param tie: per column, the index of another column whose chosen alpha it reuses (-1: none).
    """
    n = len(x)
    y = np.asarray(y, dtype=np.float64).reshape(n, -1)
    targets = y.shape[1]
    alpha = (np.full(targets, np.nan) if alpha is None
             else np.broadcast_to(np.asarray(alpha, dtype=np.float64), (targets,)).copy())
    tie = np.full(targets, -1) if tie is None else np.asarray(tie)
    choose = np.flatnonzero(np.isnan(alpha) & (tie < 0))
    if len(choose):
        errors = np.zeros((len(alphas), len(choose)))
        for fit_rows, val_rows in inner_folds(groups, folds):
            mx, my, path = _ridge_path(x[fit_rows], y[fit_rows][:, choose], alphas)
            xv = x[val_rows] - mx
            for ai, coef in enumerate(path):
                errors[ai] += ((xv @ coef + my - y[val_rows][:, choose]) ** 2).mean(axis=0)
        alpha[choose] = np.asarray(alphas)[np.argmin(errors, axis=0)]
    alpha[tie >= 0] = alpha[tie[tie >= 0]]
    levels = np.unique(alpha)
    mx, my, path = _ridge_path(x, y, tuple(levels))
    coef = np.stack([path[int(np.searchsorted(levels, alpha[t]))][:, t] for t in range(targets)], axis=1)
    return RidgeFit(coef, my - mx @ coef, alpha)
