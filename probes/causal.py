"""Causal tests: does a model *use* a linearly encoded concept? Steer along it, or erase it.

* **Erasers** remove a concept from activations ``x`` (flattened, ``[N, D]``) by an affine
  map ``x -> x - P (x - mean)`` with ``P`` of rank k:

  - `leace_fit`: LEACE (Belrose et al. 2023), the closed-form least-squares eraser:
    ``P = W^+ Q Q^T W`` with ``W`` the whitening of ``Cov(X)`` and ``Q`` an orthonormal
    basis of ``W Cov(X, Z)`` (Z one-hot). After it no linear classifier beats a constant
    on the fitting data, the mean is unchanged, and among all such erasers it moves
    ``x`` the least in expected squared distance;
  - `inlp_fit`: iterative null-space projection (Ravfogel et al. 2020): fit a linear
    classifier, project its weights out, repeat; ``P = B B^T`` (B orthonormal);
  - controls of the same rank: `random_subspace_eraser` (an orthogonal projection onto a
    random subspace, INLP's control) and ``random_subspace_eraser(..., cov=Cov(X))`` (a
    random subspace in whitened coordinates, the same form as LEACE: its control).
* **Hooks** (`edit_output`, and on flattened ``[N, D]`` outputs `intervene`, `steer`, `erase`):
  context managers that edit a named torch module's output and restore the model on exit.
* `random_direction_like`: a random direction of equal norm (steering's control).

Experiments built on these (per-square and whole-board interventions, patching, judged by an
oracle) are `probes.interventions`. Model- and game-agnostic: it knows activations, labels
and torch modules.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- erasers
@dataclass
class Eraser:
    """An affine concept eraser ``x -> x - (x - mean) @ proj.T`` on flattened activations.

    :param proj: ``[D, D]`` matrix P of rank `rank` (orthogonal or oblique projection).
    :param mean: ``[D]`` point the projection is taken around (kept fixed by the eraser).
    :param rank: dimension of the removed subspace.
    :param method: ``leace``, ``inlp``, ``random`` or ``random-whitened``.
    :param info: diagnostics (e.g. INLP's per-iteration classifier accuracies).
    """

    proj: np.ndarray
    mean: np.ndarray
    rank: int
    method: str
    info: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.proj.shape[0])

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Erase rows of ``x`` (``[N, D]`` or ``[N, ...]`` flattening to D); same shape back."""
        x = np.asarray(x)
        flat = x.reshape(len(x), -1).astype(np.float64)
        if flat.shape[1] != self.dim:
            raise ValueError(f"this eraser works on {self.dim} features, got {flat.shape[1]}")
        return (flat - (flat - self.mean) @ self.proj.T).reshape(x.shape)

    def apply_torch(self, x: torch.Tensor) -> torch.Tensor:
        """`apply` for a tensor ``[N, ...]`` (any float dtype and device; differentiable)."""
        flat = x.reshape(len(x), -1)
        if flat.shape[1] != self.dim:
            raise ValueError(f"this eraser works on {self.dim} features, got {flat.shape[1]}")
        proj = torch.as_tensor(self.proj, dtype=flat.dtype, device=flat.device)
        mean = torch.as_tensor(self.mean, dtype=flat.dtype, device=flat.device)
        return (flat - (flat - mean) @ proj.T).reshape(x.shape)


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(len(x), -1)


def _one_hot(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z)
    if z.ndim == 2:
        return z.astype(np.float64)
    classes, inverse = np.unique(z, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"concept erasure needs at least two classes, got only {classes.tolist()}")
    return np.eye(len(classes))[inverse]


def _whitening(cov: np.ndarray, rtol: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """``(W, W^+)``: the symmetric (pseudo-)inverse square root of `cov` and its pseudo-inverse."""
    eigval, eigvec = np.linalg.eigh((cov + cov.T) / 2)
    keep = eigval > rtol * max(eigval.max(), 1e-300)
    v, lam = eigvec[:, keep], eigval[keep]
    return (v / np.sqrt(lam)) @ v.T, (v * np.sqrt(lam)) @ v.T


def _basis(m: np.ndarray, rtol: float = 1e-8) -> np.ndarray:
    """Orthonormal basis ``[D, k]`` of the column space of `m` (numerical rank)."""
    u, s, _ = np.linalg.svd(m, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        return u[:, :0]
    return u[:, s > rtol * s[0]]


def leace_fit(x: np.ndarray, z: np.ndarray, rtol: float = 1e-8) -> Eraser:
    """Fit the LEACE eraser of concept `z` from activations `x` (Belrose et al. 2023, closed form).

    :param x: ``[N, D]`` activations (or ``[N, ...]``, flattened).
    :param z: ``[N]`` class labels (one-hot encoded here) or an ``[N, K]`` label matrix.
    :param rtol: relative eigenvalue cut-off for the pseudo-inverses (dead units have zero variance).
    :returns: an `Eraser` of rank ``rank(Cov(X, Z))`` (1 for a binary concept).
    """
    x = _as_2d(x)
    zz = _one_hot(z)
    if len(x) != len(zz):
        raise ValueError(f"x has {len(x)} rows, z {len(zz)}")
    mean = x.mean(axis=0)
    xc = x - mean
    cov = xc.T @ xc / len(x)
    cross = xc.T @ (zz - zz.mean(axis=0)) / len(x)  # [D, K]
    w, w_pinv = _whitening(cov, rtol)
    q = _basis(w @ cross, rtol)
    proj = w_pinv @ q @ q.T @ w
    return Eraser(proj, mean, int(q.shape[1]), "leace")


def _linear_classifier(x: np.ndarray, y: np.ndarray, seed: int, c: float):
    """An L2 logistic regression fitted on ``(x, y)``."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, max_iter=300, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    return clf


def inlp_fit(x: np.ndarray, y: np.ndarray, rank: int = 10, c: float = 1.0, min_accuracy: float | None = None,
             seed: int = 0, x_test: np.ndarray | None = None, y_test: np.ndarray | None = None) -> Eraser:
    """Iterative null-space projection (Ravfogel et al. 2020) with L2 logistic classifiers.

    Each iteration fits a classifier on the currently projected, standardised data and
    adds its (orthonormalised) weight vectors to the removed subspace; ``P = B B^T`` in raw
    units (an orthogonal projection there; the eraser keeps the mean, as LEACE does).

    :param x: ``[N, D]`` activations.
    :param y: ``[N]`` class labels.
    :param rank: maximal rank of the removed subspace (binary: one direction per iteration).
    :param c: inverse L2 strength of the classifiers.
    :param min_accuracy: stop once a classifier's balanced accuracy (on `x_test`, `y_test` if
        given, else on the training data) is at or below this (default: chance + 0.02).
    :param seed: classifier seed.
    :returns: an `Eraser` (``info["accuracies"]``: balanced accuracy at every iteration).
    """
    from sklearn.metrics import balanced_accuracy_score

    x = _as_2d(x)
    y = np.asarray(y)
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"INLP needs at least two classes, got only {classes.tolist()}")
    if min_accuracy is None:
        min_accuracy = 1.0 / len(classes) + 0.02
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    xs = (x - mean) / scale
    xt = None if x_test is None else (_as_2d(x_test) - mean) / scale
    basis = np.zeros((x.shape[1], 0))  # orthonormal, in raw units
    accuracies: list[float] = []
    while basis.shape[1] < rank:
        # project in raw units, then standardise (the classifier sees the erased data)
        keep = xs - ((xs * scale) @ basis) @ basis.T / scale
        clf = _linear_classifier(keep, y, seed, c)
        if xt is not None:
            held = xt - ((xt * scale) @ basis) @ basis.T / scale
            acc = float(balanced_accuracy_score(y_test, clf.predict(held)))
        else:
            acc = float(balanced_accuracy_score(y, clf.predict(keep)))
        accuracies.append(acc)
        if acc <= min_accuracy:
            break
        directions = (clf.coef_ / scale).T  # a classifier normal in raw units
        directions = directions - basis @ (basis.T @ directions)
        new = _basis(directions)
        if new.shape[1] == 0:
            break
        basis = np.concatenate([basis, new], axis=1)
    basis = basis[:, :rank]
    log.info("INLP removed %d directions; accuracies %s", basis.shape[1], np.round(accuracies, 3).tolist())
    return Eraser(basis @ basis.T, mean, int(basis.shape[1]), "inlp", {"accuracies": accuracies})


def random_subspace_eraser(dim: int, rank: int, seed: int = 0, mean: np.ndarray | None = None,
                           cov: np.ndarray | None = None) -> Eraser:
    """A control eraser of the same rank that removes a random subspace.

    :param dim: feature dimension D.
    :param rank: dimension of the removed subspace.
    :param seed: random seed.
    :param mean: the point the projection keeps fixed (default the origin).
    :param cov: if given, the subspace is random in coordinates whitened by `cov` and the
        eraser has LEACE's form ``W^+ Q Q^T W`` (LEACE's matched control); otherwise it is an
        orthogonal projection (INLP's control).
    """
    if not 0 <= rank <= dim:
        raise ValueError(f"rank must be in 0..{dim}, got {rank}")
    rng = np.random.default_rng(seed)
    mean = np.zeros(dim) if mean is None else np.asarray(mean, dtype=np.float64)
    if cov is None:
        q = _basis(rng.standard_normal((dim, rank))) if rank else np.zeros((dim, 0))
        return Eraser(q @ q.T, mean, rank, "random")
    w, w_pinv = _whitening(np.asarray(cov, dtype=np.float64))
    # random directions inside the whitened support (dead units stay out, as for LEACE)
    q = _basis(w @ w_pinv @ rng.standard_normal((dim, rank))) if rank else np.zeros((dim, 0))
    return Eraser(w_pinv @ q @ q.T @ w, mean, int(q.shape[1]), "random-whitened")


def covariance(x: np.ndarray) -> np.ndarray:
    """Population covariance ``[D, D]`` of the rows of `x`."""
    x = _as_2d(x)
    xc = x - x.mean(axis=0)
    return xc.T @ xc / len(x)


# ---------------------------------------------------------------------------- directions
def random_direction_like(direction: np.ndarray, seed: int = 0) -> np.ndarray:
    """A uniformly random direction with the same shape and Euclidean norm as `direction`."""
    direction = np.asarray(direction, dtype=np.float64)
    v = np.random.default_rng(seed).standard_normal(direction.shape)
    return v * (np.linalg.norm(direction) / np.linalg.norm(v))


# ---------------------------------------------------------------------------- hooks
def _module(model: nn.Module, layer: str) -> nn.Module:
    modules = dict(model.named_modules())
    if layer not in modules:
        sample = ", ".join(n for n in list(modules)[1:10])
        raise ValueError(f"{type(model).__name__} has no submodule named {layer!r}; some it has: {sample}, ...")
    return modules[layer]


@contextmanager
def edit_output(model: nn.Module, layer: str, edit: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Within the block, replace `layer`'s output ``o`` by ``edit(o)`` (same shape, e.g. ``[N, C, H, W]``).

    Tuple outputs have their first element edited. The hook is removed on exit, even on errors.
    """
    module = _module(model, layer)

    def hook(m, inputs, output):
        first = output[0] if isinstance(output, (tuple, list)) else output
        if not isinstance(first, torch.Tensor):
            raise TypeError(f"layer {layer!r} returns {type(first).__name__}, not a tensor")
        edited = edit(first)
        if edited.shape != first.shape:
            raise ValueError(f"an edit of layer {layer!r} changed its output's shape {tuple(first.shape)} "
                             f"to {tuple(edited.shape)}")
        if isinstance(output, (tuple, list)):
            return type(output)([edited, *output[1:]])
        return edited

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def intervene(model: nn.Module, layer: str, edit: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Within the block, replace `layer`'s output ``o`` by ``edit(o.flatten(1)).reshape(o.shape)``."""
    with edit_output(model, layer, lambda out: edit(out.reshape(len(out), -1)).reshape(out.shape)):
        yield


@contextmanager
def steer(model: nn.Module, layer: str, direction: np.ndarray | torch.Tensor, alpha: float) -> Iterator[None]:
    """Add ``alpha * direction`` (flattened-activation space, reshaped to the output) to `layer`'s output."""
    vec = torch.as_tensor(np.asarray(direction, dtype=np.float32).reshape(-1))

    def add(flat: torch.Tensor) -> torch.Tensor:
        if flat.shape[1] != vec.numel():
            raise ValueError(f"steering direction has {vec.numel()} features, layer {layer!r} has {flat.shape[1]}")
        return flat + alpha * vec.to(dtype=flat.dtype, device=flat.device)

    with intervene(model, layer, add):
        yield


@contextmanager
def erase(model: nn.Module, layer: str, eraser: Eraser) -> Iterator[None]:
    """Apply `eraser` to `layer`'s (flattened) output."""
    with intervene(model, layer, eraser.apply_torch):
        yield
