"""Sparse autoencoders and transcoders on activations: a small torch implementation with SAELens' conventions.

A sparse autoencoder (SAE) writes each activation vector ``x`` as a sparse, non-negative
combination of learned directions: ``f = act(W_enc (x - b_dec) + b_enc)``, ``x_hat = W_dec f +
b_dec``. A transcoder is the same model fitted from a layer's input to its output
(``fit(X, Y)``), so its features explain what the layer computes rather than what it holds.

Conventions follow SAELens (the reference library for LM SAEs), whose trainer is built around
language-model activation stores: we train on arbitrary arrays here instead of installing it
(its wheel also brings datasets, nltk, plotly and transformers).

* **Architectures**: ``topk`` (Gao et al. 2024: keep the k largest pre-activations, ReLU; no
  sparsity penalty to tune) and ``relu`` (the standard SAE with an L1 penalty on the feature
  activations weighted by the decoder norms, warmed up linearly over the first steps).
* **Normalisation**: inputs (and outputs) are scaled by one constant so that their mean
  squared norm is ``d`` (SAELens' ``expected_average_only_in``); reconstructions are returned in
  the original units.
* **Initialisation**: decoder rows random unit vectors, encoder = decoder transposed, ``b_dec``
  the mean of the (scaled) data; decoder rows are kept at unit norm after every step.
* **Schedule**: Adam, linear learning-rate warm-up over the first 5% of steps and linear decay
  over the last 20%.
* **Dead features**: features that did not fire for a window of steps are resampled at 25%,
  50% and 75% of training (Bricken et al. 2023): their decoder row points at an input the
  model reconstructs badly (drawn with probability proportional to its squared error), their
  encoder row is that direction scaled to 0.2 times the mean alive encoder norm, bias 0, and
  their Adam moments are reset.

`SparseAutoencoder` is a scikit-learn estimator (``fit``, ``transform`` = feature activations,
``inverse_transform`` = decoding, ``score`` = variance explained on held-out data) and also
edits torch activations in place (`SparseAutoencoder.reconstruct_torch`,
`SparseAutoencoder.ablate_torch`) for splicing into a network. Deterministic by ``seed``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from torch import nn

from common.atomic import atomic_target

log = logging.getLogger(__name__)

ARCHITECTURES = ("topk", "relu")
RESAMPLE_AT = (0.25, 0.5, 0.75)  # fractions of training at which dead features are resampled


class SAEModule(nn.Module):
    """The torch model behind `SparseAutoencoder`, in normalised units.

    :param d_in: input width.
    :param d_sae: number of features.
    :param d_out: output width (``d_in`` for an autoencoder; a transcoder's output width otherwise).
    :param architecture: ``topk`` or ``relu``.
    :param k: active features per input (``topk``).
    :param subtract_decoder_bias: subtract ``b_dec`` from the input before encoding (autoencoders).
    """

    def __init__(self, d_in: int, d_sae: int, d_out: int, architecture: str, k: int,
                 subtract_decoder_bias: bool) -> None:
        super().__init__()
        self.architecture, self.k, self.subtract_decoder_bias = architecture, k, subtract_decoder_bias
        self.W_enc = nn.Parameter(torch.empty(d_in, d_sae))
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.W_dec = nn.Parameter(torch.empty(d_sae, d_out))
        self.b_dec = nn.Parameter(torch.zeros(d_out))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Feature activations ``[N, d_sae]`` (non-negative; at most k non-zero for ``topk``)."""
        if self.subtract_decoder_bias:
            x = x - self.b_dec
        pre = x @ self.W_enc + self.b_enc
        if self.architecture == "topk":
            top = torch.topk(pre, self.k, dim=-1)
            return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
        return torch.relu(pre)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        return f @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.encode(x)
        return self.decode(f), f

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        self.W_dec.data /= self.W_dec.data.norm(dim=1, keepdim=True).clamp_min(1e-8)


@dataclass
class TrainingHistory:
    """What training did: losses and sparsity every ``every`` steps, resampling events, time."""

    every: int = 0
    mse: list[float] = field(default_factory=list)
    l0: list[float] = field(default_factory=list)
    resampled: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"every": self.every, "mse": self.mse, "l0": self.l0, "resampled": self.resampled,
                "seconds": round(self.seconds, 2)}


def variance_explained(target: np.ndarray, reconstruction: np.ndarray) -> float:
    """``1 - sum ||y - y_hat||^2 / sum ||y - mean(y)||^2`` over rows (the fraction of variance explained)."""
    y = np.asarray(target, dtype=np.float64).reshape(len(target), -1)
    r = np.asarray(reconstruction, dtype=np.float64).reshape(len(reconstruction), -1)
    total = ((y - y.mean(axis=0)) ** 2).sum()
    return float(1.0 - ((y - r) ** 2).sum() / total) if total > 0 else float("nan")


class SparseAutoencoder(BaseEstimator, TransformerMixin):
    """A sparse autoencoder (``fit(X)``) or transcoder (``fit(X, Y)``) as a scikit-learn estimator.

    :param n_features: dictionary size.
    :param architecture: ``topk`` or ``relu`` (see the module docstring).
    :param k: active features per input for ``topk``.
    :param l1_coefficient: sparsity penalty for ``relu`` (on normalised activations).
    :param n_steps: optimiser steps.
    :param batch_size: rows per step.
    :param lr: Adam's learning rate.
    :param seed: seed of the initialisation, batches and resampling.
    :param progress: show a progress bar.
    """

    def __init__(self, n_features: int = 256, architecture: str = "topk", k: int = 8, l1_coefficient: float = 1.0,
                 n_steps: int = 3000, batch_size: int = 1024, lr: float = 1e-3, seed: int = 0,
                 progress: bool = False) -> None:
        self.n_features = n_features
        self.architecture = architecture
        self.k = k
        self.l1_coefficient = l1_coefficient
        self.n_steps = n_steps
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.progress = progress

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        for name in ("n_features", "n_steps", "batch_size", "k"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.architecture == "topk" and self.k > self.n_features:
            raise ValueError(f"k={self.k} exceeds n_features={self.n_features}")
        if not (self.lr > 0 and self.l1_coefficient >= 0):
            raise ValueError(f"lr must be positive and l1_coefficient non-negative, got {self.lr}, {self.l1_coefficient}")

    @staticmethod
    def _as_rows(X: np.ndarray, name: str) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or len(X) == 0:
            raise ValueError(f"{name} must be a non-empty [rows, features] array, got shape {X.shape}")
        if not np.isfinite(X).all():
            raise ValueError(f"{name} holds NaN or infinite values")
        return X

    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise RuntimeError("this SparseAutoencoder is not fitted yet; call fit(X) first")

    def _check_width(self, X: np.ndarray, width: int, what: str) -> None:
        if X.shape[1] != width:
            raise ValueError(f"{what} has {X.shape[1]} features; this dictionary was fitted on {width}")

    # ------------------------------------------------------------------ training
    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "SparseAutoencoder":
        """Train on rows `X` (an autoencoder), or map `X` to the rows `y` (a transcoder)."""
        self._check_params()
        X = self._as_rows(X, "X")
        Y = X if y is None else self._as_rows(y, "y")
        if len(Y) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(Y)}")
        self.transcoder_ = y is not None
        self.n_features_in_ = X.shape[1]
        self.n_outputs_ = Y.shape[1]
        self.scale_in_ = float(math.sqrt(X.shape[1]) / max(np.sqrt((X.astype(np.float64) ** 2).sum(1).mean()), 1e-12))
        self.scale_out_ = (self.scale_in_ if y is None else
                           float(math.sqrt(Y.shape[1]) / max(np.sqrt((Y.astype(np.float64) ** 2).sum(1).mean()), 1e-12)))
        torch.manual_seed(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        x_all = torch.as_tensor(X) * self.scale_in_
        y_all = torch.as_tensor(Y) * self.scale_out_
        module = SAEModule(X.shape[1], self.n_features, Y.shape[1], self.architecture, int(self.k),
                           subtract_decoder_bias=not self.transcoder_)
        with torch.no_grad():
            module.W_dec.data = torch.randn(self.n_features, Y.shape[1], generator=generator)
            module.normalise_decoder()
            if self.transcoder_:
                module.W_enc.data = torch.randn(X.shape[1], self.n_features, generator=generator) / math.sqrt(X.shape[1])
            else:
                module.W_enc.data = module.W_dec.data.T.clone()
            module.b_dec.data = y_all.mean(dim=0)
        self.history_ = self._train(module, x_all, y_all, generator)
        self.module_ = module.eval()
        return self

    def _train(self, module: SAEModule, x_all: torch.Tensor, y_all: torch.Tensor,
               generator: torch.Generator) -> TrainingHistory:
        import time

        started = time.perf_counter()
        opt = torch.optim.Adam(module.parameters(), lr=self.lr)
        warm = max(1, self.n_steps // 20)
        decay_from = int(self.n_steps * 0.8)

        def lr_factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            if step >= decay_from:
                return max(0.0, (self.n_steps - step) / max(1, self.n_steps - decay_from))
            return 1.0

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
        history = TrainingHistory(every=max(1, self.n_steps // 50))
        last_fired = torch.zeros(self.n_features, dtype=torch.long)
        window = max(50, self.n_steps // 8)
        resample_steps = {int(self.n_steps * f) for f in RESAMPLE_AT}
        n = len(x_all)
        batch = min(self.batch_size, n)
        steps = range(self.n_steps)
        if self.progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="dictionary", unit="step", leave=False)
        for step in steps:
            rows = torch.randint(0, n, (batch,), generator=generator)
            x, y = x_all[rows], y_all[rows]
            out, f = module(x)
            mse = (out - y).pow(2).sum(dim=-1).mean()
            loss = mse
            if self.architecture == "relu":
                l1_scale = min(1.0, (step + 1) / warm)
                loss = mse + self.l1_coefficient * l1_scale * (f * module.W_dec.norm(dim=1)).sum(dim=-1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            module.normalise_decoder()
            with torch.no_grad():
                last_fired[(f > 0).any(dim=0)] = step
                if step % history.every == 0:
                    history.mse.append(float(mse) / float(y.pow(2).sum(dim=-1).mean()))
                    history.l0.append(float((f > 0).float().sum(dim=-1).mean()))
            if step in resample_steps and step >= window:
                dead = torch.nonzero(step - last_fired >= window).flatten()
                history.resampled.append(int(len(dead)))
                if len(dead):
                    self._resample(module, opt, dead, x_all, y_all, generator)
                    last_fired[dead] = step
        history.seconds = time.perf_counter() - started
        return history

    @torch.no_grad()
    def _resample(self, module: SAEModule, opt: torch.optim.Optimizer, dead: torch.Tensor, x_all: torch.Tensor,
                  y_all: torch.Tensor, generator: torch.Generator) -> None:
        rows = torch.randint(0, len(x_all), (min(len(x_all), 8192),), generator=generator)
        x, y = x_all[rows], y_all[rows]
        err = (module(x)[0] - y).pow(2).sum(dim=-1)
        if float(err.sum()) <= 0:
            return
        picks = torch.multinomial(err, len(dead), replacement=len(dead) > len(err), generator=generator)
        target = y[picks] - module.b_dec
        direction = target / target.norm(dim=1, keepdim=True).clamp_min(1e-8)
        alive = torch.ones(module.W_enc.shape[1], dtype=torch.bool)
        alive[dead] = False
        enc_norm = float(module.W_enc[:, alive].norm(dim=0).mean()) if alive.any() else 1.0
        module.W_dec.data[dead] = direction
        source = direction if not self.transcoder_ else x[picks] / x[picks].norm(dim=1, keepdim=True).clamp_min(1e-8)
        module.W_enc.data[:, dead] = (source * 0.2 * enc_norm).T
        module.b_enc.data[dead] = 0.0
        for param, index in ((module.W_dec, (dead,)), (module.W_enc, (slice(None), dead)), (module.b_enc, (dead,))):
            state = opt.state.get(param, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key][index] = 0.0

    # ------------------------------------------------------------------ numpy API
    def transform(self, X: np.ndarray) -> np.ndarray:
        """Feature activations ``[N, n_features]`` of rows `X` (in normalised units)."""
        self._check_fitted()
        X = self._as_rows(X, "X")
        self._check_width(X, self.n_features_in_, "X")
        out = []
        with torch.no_grad():
            for start in range(0, len(X), 65536):
                out.append(self.module_.encode(torch.as_tensor(X[start:start + 65536]) * self.scale_in_).numpy())
        return np.concatenate(out)

    def inverse_transform(self, codes: np.ndarray) -> np.ndarray:
        """Decode feature activations back to rows in the original units."""
        self._check_fitted()
        codes = np.asarray(codes, dtype=np.float32)
        self._check_width(codes, self.n_features, "codes")
        with torch.no_grad():
            return (self.module_.decode(torch.as_tensor(codes)) / self.scale_out_).numpy()

    def reconstruct(self, X: np.ndarray) -> np.ndarray:
        """``inverse_transform(transform(X))``: the dictionary's reconstruction (a transcoder's prediction)."""
        return self.inverse_transform(self.transform(X))

    def score(self, X: np.ndarray, y: np.ndarray | None = None) -> float:
        """Fraction of variance explained on rows `X` (of `y` for a transcoder)."""
        target = np.asarray(X if y is None else y, dtype=np.float32)
        return variance_explained(target, self.reconstruct(X))

    def feature_directions(self) -> np.ndarray:
        """Decoder rows ``[n_features, d_out]`` in the original units' directions (unit norm)."""
        self._check_fitted()
        return self.module_.W_dec.detach().numpy().copy()

    # ------------------------------------------------------------------ torch API (splicing into networks)
    def reconstruct_torch(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of rows ``[K, d_in]`` (a transcoder's prediction), in the original units."""
        self._check_fitted()
        out, _ = self.module_(x * self.scale_in_)
        return out / self.scale_out_

    def ablate_torch(self, x: torch.Tensor, features: np.ndarray | list[int], value: float | None = None) -> torch.Tensor:
        """Rows `x` with `features` set to 0 (or clamped to `value`), everything else kept exactly.

        The change is ``decode(f') - decode(f)`` added to `x`, so the dictionary's own error does
        not enter the edit: only the named features change.
        """
        self._check_fitted()
        index = torch.as_tensor(np.asarray(features, dtype=np.int64))
        if len(index) == 0:
            return x
        f = self.module_.encode(x * self.scale_in_)
        delta = -f[:, index] if value is None else float(value) - f[:, index]
        return x + (delta @ self.module_.W_dec[index]) / self.scale_out_

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write parameters and weights to `path` atomically (``torch.save``)."""
        self._check_fitted()
        payload = {"params": self.get_params(), "state": self.module_.state_dict(), "scale_in": self.scale_in_,
                   "scale_out": self.scale_out_, "transcoder": self.transcoder_, "d_in": self.n_features_in_,
                   "d_out": self.n_outputs_, "history": self.history_.to_dict()}
        with atomic_target(path, suffix=".pt") as tmp:
            torch.save(payload, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "SparseAutoencoder":
        """A fitted dictionary written by `save`; a clear error when the file is missing or damaged."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no dictionary at {path}")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=False)
            sae = cls(**payload["params"])
            sae.transcoder_ = payload["transcoder"]
            sae.n_features_in_, sae.n_outputs_ = payload["d_in"], payload["d_out"]
            sae.scale_in_, sae.scale_out_ = payload["scale_in"], payload["scale_out"]
            module = SAEModule(sae.n_features_in_, sae.n_features, sae.n_outputs_, sae.architecture, int(sae.k),
                               subtract_decoder_bias=not sae.transcoder_)
            module.load_state_dict(payload["state"])
        except (KeyError, RuntimeError, EOFError, TypeError) as exc:
            raise ValueError(f"{path} is not a dictionary written by SparseAutoencoder.save ({exc})") from exc
        sae.module_ = module.eval()
        history = payload.get("history", {})
        sae.history_ = TrainingHistory(history.get("every", 0), history.get("mse", []), history.get("l0", []),
                                       history.get("resampled", []), history.get("seconds", 0.0))
        return sae


def dictionary_statistics(codes: np.ndarray) -> dict[str, float]:
    """Sparsity of feature activations ``[N, F]``: mean L0, fraction of dead features (never fire) and of
    dense ones (fire on more than half the rows)."""
    fired = codes > 0
    freq = fired.mean(axis=0)
    return {"l0": float(fired.sum(axis=1).mean()), "dead_fraction": float((freq == 0).mean()),
            "dense_fraction": float((freq > 0.5).mean()), "n_features": int(codes.shape[1])}
