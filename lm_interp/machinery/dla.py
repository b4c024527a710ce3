"""Direct logit attribution (DLA) of attention heads through the final norm.

A head's direct effect on the IOI logit difference is its output at the last position,
``r = z @ W_O[layer, head]`` (in the residual stream), pushed through the final norm as a
linear map with the norm scale held fixed, and projected on ``W_U[:, IO] - W_U[:, S]``:

* LayerNorm: ``dla = (r - mean(r)) / scale * gamma . (W_U[IO] - W_U[S])``;
* RMSNorm: ``dla = r / scale * gamma . (W_U[IO] - W_U[S])``;

where ``scale`` is the final norm's scale of the run being measured (or, as an option,
frozen from the clean run, to separate norm rescaling from head-level compensation). With
the scale of the run itself, the components (embeddings, every head, attention biases,
MLPs, the norm's bias, the unembedding bias) add up to the logit difference exactly
(`dla_decomposition`).

`Readout` collects the weights this needs from a `TransformerBridge` (raw weights), a
`HookedTransformer`, or any hooked module exposing the same attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lm_interp.machinery.hooks import hooked_module

NORMS = ("LN", "RMS", "none")


@dataclass
class Readout:
    """What DLA needs from a model: per-head output weights, the final norm and the unembedding.

    :param W_O: ``[n_layers, n_heads, d_head, d_model]``; :param b_O: ``[n_layers, d_model]`` (zeros if bias-free).
    :param W_U: ``[d_model, vocab]``; :param b_U: ``[vocab]`` (zeros if bias-free).
    :param norm: ``LN`` (mean-centred), ``RMS`` or ``none`` (no final norm).
    :param norm_weight, norm_bias: the final norm's gain ``[d_model]`` and bias (zeros for RMSNorm).
    :param eps: the final norm's epsilon.
    """

    W_O: torch.Tensor
    b_O: torch.Tensor
    W_U: torch.Tensor
    b_U: torch.Tensor
    norm: str
    norm_weight: torch.Tensor
    norm_bias: torch.Tensor
    eps: float

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"unknown final norm {self.norm!r}; norms: {NORMS}")
        if self.W_O.ndim != 4:
            raise ValueError(f"W_O must be [n_layers, n_heads, d_head, d_model], got shape {tuple(self.W_O.shape)}")

    @property
    def n_layers(self) -> int:
        return self.W_O.shape[0]

    @property
    def n_heads(self) -> int:
        return self.W_O.shape[1]

    @classmethod
    def from_model(cls, model) -> "Readout":
        """The readout weights of a bridge / HookedTransformer / constructed module (detached copies).

        :raises ValueError: a model without attention heads (no ``W_O`` or ``cfg.n_heads``).
        """
        module = hooked_module(model)
        cfg = getattr(module, "cfg", None)
        if cfg is None or not getattr(cfg, "n_heads", 0) or not getattr(cfg, "n_layers", 0):
            raise ValueError(f"{type(module).__name__} has no attention heads (cfg.n_heads / cfg.n_layers); "
                             f"backup-head analysis needs a transformer with multi-head attention")
        try:
            W_O = module.W_O.detach().float()
        except AttributeError:
            raise ValueError(f"{type(module).__name__} exposes no per-head output weights W_O "
                             f"[n_layers, n_heads, d_head, d_model]") from None
        d_model = W_O.shape[-1]
        W_U = module.W_U.detach().float()
        b_O = _optional(module, "b_O", (W_O.shape[0], d_model))
        b_U = _optional(module, "b_U", (W_U.shape[1],))
        kind = getattr(cfg, "normalization_type", None)
        norm = "LN" if kind in ("LN", "LNPre") else "RMS" if kind in ("RMS", "RMSPre") else "none"
        weight, bias = torch.ones(d_model), torch.zeros(d_model)
        if norm != "none":
            ln = getattr(module, "ln_final", None)
            for name, p in (ln.named_parameters() if ln is not None else []):
                leaf = name.rsplit(".", 1)[-1]
                if leaf in ("weight", "w"):
                    weight = p.detach().float().clone()
                elif leaf in ("bias", "b"):
                    bias = p.detach().float().clone()
            if kind in ("LNPre", "RMSPre"):  # folded into W_U by weight processing
                weight, bias = torch.ones(d_model), torch.zeros(d_model)
        return cls(W_O, b_O, W_U, b_U, norm, weight, bias, float(getattr(cfg, "eps", 1e-5)))

    def direction(self, io_ids: torch.Tensor, s_ids: torch.Tensor) -> torch.Tensor:
        """``gamma * (W_U[:, IO] - W_U[:, S])`` per prompt ``[batch, d_model]``, mean-centred for LayerNorm.

        Centring the direction instead of each component gives the same dot products.
        """
        d = (self.W_U[:, io_ids] - self.W_U[:, s_ids]).T * self.norm_weight
        return d - d.mean(-1, keepdim=True) if self.norm == "LN" else d

    def scale(self, resid: torch.Tensor) -> torch.Tensor:
        """The final norm's scale of residual vectors ``[..., d_model] -> [..., 1]`` (1 without a norm)."""
        if self.norm == "LN":
            centred = resid - resid.mean(-1, keepdim=True)
            return (centred.pow(2).mean(-1, keepdim=True) + self.eps).sqrt()
        if self.norm == "RMS":
            return (resid.pow(2).mean(-1, keepdim=True) + self.eps).sqrt()
        return torch.ones_like(resid[..., :1])

    def head_dla(self, z_last: torch.Tensor, direction: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """DLA of every head ``[batch, n_layers, n_heads]``.

        :param z_last: ``[batch, n_layers, n_heads, d_head]`` head values (``hook_z``) at the last position.
        :param direction: `direction` ``[batch, d_model]``; :param scale: ``[batch, 1]`` final-norm scale.
        """
        w = torch.einsum("lhdm,bm->blhd", self.W_O, direction)
        return torch.einsum("blhd,blhd->blh", z_last.float(), w) / scale.reshape(-1, 1, 1)

    def vector_dla(self, vec: torch.Tensor, direction: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """DLA of residual-stream vectors ``[batch, d_model]`` (or ``[batch, k, d_model]``) -> ``[batch(, k)]``."""
        if vec.ndim == 3:
            return torch.einsum("bkm,bm->bk", vec.float(), direction) / scale.reshape(-1, 1)
        return (vec.float() * direction).sum(-1) / scale.reshape(-1)

    def constant_dla(self, io_ids: torch.Tensor, s_ids: torch.Tensor) -> torch.Tensor:
        """The norm bias and unembedding bias terms of the logit difference ``[batch]``."""
        bias = ((self.W_U[:, io_ids] - self.W_U[:, s_ids]).T * self.norm_bias).sum(-1)
        return bias + self.b_U[io_ids] - self.b_U[s_ids]


def _optional(module, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """A bias attribute, or zeros where the model has none (bias-free projections raise or return None)."""
    try:
        value = getattr(module, name)
    except AttributeError:
        value = None
    return torch.zeros(shape) if value is None else value.detach().float().reshape(shape).clone()
