"""Ablations over a reference distribution: zero, mean and resample, per hook or per head.

A `Site` names what is replaced: a hook, optionally one head (hooks with a head axis) or
one MLP neuron (``mlp_pre``/``mlp_post``), optionally one position. Replacement values:

* ``zero``: 0;
* ``mean``: the mean over a reference prompt set (`Reference`), per position by default
  (reference prompts should be position-aligned with the inputs, e.g. the same IOI
  templates; positions past the reference's longest prompt get the mean over all positions);
* ``resample``: per input row, the activation of one reference prompt drawn at random
  (seeded), position by position.

Works on any module with TransformerLens' ``run_with_hooks`` / ``run_with_cache`` (a
`TransformerBridge` or a toy `HookedRootModule`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from lm_interp.machinery.hooks import axes, check_hook_names, hook_kind, hooked_module
from lm_interp.models.tokenizer import TokenBatch

ABLATIONS = ("zero", "mean", "resample")


@dataclass(frozen=True)
class Site:
    """What to replace: `hook`, optionally one `head` or MLP `neuron`, optionally one `position`."""

    hook: str
    head: int | None = None
    neuron: int | None = None
    position: int | None = None

    def __post_init__(self) -> None:
        if self.head is not None and axes(self.hook)[1] is None:
            raise ValueError(f"hook {self.hook!r} has no head axis; heads live at attn.hook_z/q/k/v/result/pattern")
        if self.neuron is not None and hook_kind(self.hook) not in ("mlp_pre", "mlp_post"):
            raise ValueError(f"neurons are indexed at mlp.hook_pre / mlp.hook_post, not {self.hook!r}")
        if self.head is not None and self.neuron is not None:
            raise ValueError("a site is a head or a neuron, not both")

    def __str__(self) -> str:
        parts = [f"head={self.head}"] if self.head is not None else []
        parts += [f"neuron={self.neuron}"] if self.neuron is not None else []
        parts += [f"pos={self.position}"] if self.position is not None else []
        return f"{self.hook}[{', '.join(parts)}]" if parts else self.hook

    def index(self, ndim: int) -> tuple:
        """The indexing tuple that selects this site in a hook tensor of `ndim` dims."""
        pos_axis, head_axis = axes(self.hook)
        idx: list = [slice(None)] * ndim
        if self.head is not None:
            idx[head_axis] = self.head
        if self.neuron is not None:
            idx[ndim - 1] = self.neuron
        if self.position is not None:
            idx[pos_axis] = self.position
        return tuple(idx)


def head_sites(model, kind: str = "z", layers: Sequence[int] | None = None) -> list[Site]:
    """One site per attention head (at hook `kind`, default ``z``), layer-major."""
    from lm_interp.machinery.hooks import hook_name

    cfg = hooked_module(model).cfg
    layers = range(cfg.n_layers) if layers is None else layers
    return [Site(hook_name(kind, layer), head=h) for layer in layers for h in range(cfg.n_heads)]


def replace_site(act: torch.Tensor, site: Site, value: torch.Tensor) -> torch.Tensor:
    """`act` with the slice `site` selects taken from `value` (broadcastable to `act`)."""
    out = act.clone()
    idx = site.index(act.ndim)
    out[idx] = value.to(act.dtype).to(act.device).expand_as(act)[idx]
    return out


def _fit_positions(values: torch.Tensor, width: int, pos_axis: int, fill: torch.Tensor) -> torch.Tensor:
    """Cut or extend `values` along `pos_axis` to `width` positions (extension: `fill`)."""
    have = values.shape[pos_axis]
    if have >= width:
        return values.narrow(pos_axis, 0, width)
    shape = list(values.shape)
    shape[pos_axis] = width - have
    return torch.cat([values, fill.expand(shape)], dim=pos_axis)


class Reference:
    """Cached activations of a reference prompt set at some hooks (for mean and resample ablation).

    :param model: a hooked module or `LoadedLM`; :param batch: the reference prompts.
    :param hooks: hook names to cache.
    """

    def __init__(self, model, batch: TokenBatch, hooks: Sequence[str]) -> None:
        module = hooked_module(model)
        self.hooks = sorted(set(hooks))
        check_hook_names(module, self.hooks)
        with torch.no_grad():
            _, cache = module.run_with_cache(batch.tokens, names_filter=self.hooks)
        self.acts = {h: cache[h].detach() for h in self.hooks}
        self.lengths = batch.lengths.clone()
        self._means: dict[tuple[str, bool], torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.lengths)

    def _mask(self, hook: str) -> torch.Tensor:
        """``[N, pos]`` float mask of real (non-padding) positions, shaped to broadcast at the hook."""
        act = self.acts[hook]
        pos_axis = axes(hook)[0]
        width = act.shape[pos_axis]
        real = (torch.arange(width)[None, :] < self.lengths[:, None]).to(act.dtype)  # [N, pos]
        shape = [1] * act.ndim
        shape[0], shape[pos_axis] = len(real), width
        return real.reshape(shape)

    def mean(self, hook: str, per_position: bool = True) -> torch.Tensor:
        """Mean activation, ``[1, ...]`` shaped like one row: per position or over all real positions."""
        key = (hook, per_position)
        if key not in self._means:
            act, mask = self.acts[hook], self._mask(hook)
            pos_axis = axes(hook)[0]
            total = (act * mask).sum(0, keepdim=True)
            if per_position:
                count = mask.sum(0, keepdim=True).clamp(min=1)
                mean = total / count
                # positions no reference prompt reaches: the overall mean
                overall = self.mean(hook, per_position=False)
                unreached = (mask.sum(0, keepdim=True) == 0).expand_as(mean)
                mean = torch.where(unreached, overall.expand_as(mean), mean)
            else:
                count = mask.sum(dim=(0, pos_axis), keepdim=True).clamp(min=1)
                mean = total.sum(dim=pos_axis, keepdim=True) / count
            self._means[key] = mean
        return self._means[key]

    def sample_rows(self, n: int, seed: int = 0) -> torch.Tensor:
        """`n` reference row indices drawn with replacement (seeded)."""
        gen = torch.Generator().manual_seed(seed)
        return torch.randint(0, len(self), (n,), generator=gen)


def ablation_value(kind: str, act: torch.Tensor, hook: str, reference: Reference | None, rows: torch.Tensor | None,
                   per_position: bool = True) -> torch.Tensor:
    """The replacement tensor (broadcastable to `act`) of ablation `kind` at `hook`."""
    if kind == "zero":
        return torch.zeros_like(act)
    if reference is None:
        raise ValueError(f"{kind} ablation needs a Reference (activations of a reference prompt set)")
    if hook not in reference.acts:
        raise ValueError(f"the reference has no activations at {hook!r}; it cached {reference.hooks}")
    pos_axis = axes(hook)[0]
    overall = reference.mean(hook, per_position=False)
    width = act.shape[pos_axis]
    if kind == "mean":
        mean = reference.mean(hook, per_position) if per_position else overall
        return _fit_positions(mean, width, pos_axis, overall) if per_position else mean
    if kind == "resample":
        if rows is None or len(rows) != len(act):
            raise ValueError("resample ablation needs one reference row per input row")
        return _fit_positions(reference.acts[hook][rows], width, pos_axis, overall)
    raise ValueError(f"unknown ablation {kind!r}; ablations: {ABLATIONS}")


def ablation_hooks(sites: Sequence[Site], kind: str, reference: Reference | None = None, n_rows: int | None = None,
                   seed: int = 0, per_position: bool = True) -> list[tuple[str, Callable]]:
    """``fwd_hooks`` for ``run_with_hooks`` that ablate every site (sites of one hook share a hook).

    :param n_rows: the input batch size (needed for ``resample``: one reference row per input row).
    """
    if kind not in ABLATIONS:
        raise ValueError(f"unknown ablation {kind!r}; ablations: {ABLATIONS}")
    rows = reference.sample_rows(n_rows, seed) if kind == "resample" and reference is not None and n_rows else None
    by_hook: dict[str, list[Site]] = {}
    for site in sites:
        by_hook.setdefault(site.hook, []).append(site)

    def make(hook: str, group: list[Site]) -> Callable:
        def fn(act: torch.Tensor, hook=None) -> torch.Tensor:  # noqa: ARG001 - TransformerLens passes the HookPoint
            value = ablation_value(kind, act, hook_name_, reference, rows, per_position)
            for site in group:
                act = replace_site(act, site, value)
            return act

        hook_name_ = hook
        return fn

    return [(hook, make(hook, group)) for hook, group in by_hook.items()]


def run_ablated(model, batch: TokenBatch, sites: Sequence[Site], kind: str, reference: Reference | None = None,
                seed: int = 0, per_position: bool = True) -> torch.Tensor:
    """Logits of `batch` with every site ablated (`kind`: zero / mean / resample)."""
    module = hooked_module(model)
    check_hook_names(module, sorted({s.hook for s in sites}))
    hooks = ablation_hooks(sites, kind, reference, len(batch), seed, per_position)
    with torch.no_grad():
        return module.run_with_hooks(batch.tokens, fwd_hooks=hooks)
