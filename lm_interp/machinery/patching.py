"""Activation patching between two position-aligned prompt sets.

``denoise`` (default): run the corrupted prompts with one site's activation taken from the
clean run, and measure how much of the clean metric comes back. ``noise``: run the clean
prompts with one site from the corrupted run, and measure how much is lost. Row i of the
clean set is paired with row i of the corrupted set; both must have the same token lengths
(e.g. IOI prompts and their ABC corruptions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from lm_interp.machinery.ablation import Site, replace_site
from lm_interp.machinery.hooks import check_hook_names, hooked_module
from lm_interp.machinery.metrics import ioi_metric
from lm_interp.models.tokenizer import TokenBatch

Metric = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class PatchingResult:
    """Metric of the clean run, the corrupted run, and each patched run (by site).

    ``normalised[site] = (patched - corrupted) / (clean - corrupted)``: 1 means the site
    alone restores (denoise) or the metric is unchanged by it (noise: 1 = no loss).
    """

    clean: float
    corrupted: float
    patched: dict[Site, float] = field(default_factory=dict)
    direction: str = "denoise"

    @property
    def normalised(self) -> dict[Site, float]:
        gap = self.clean - self.corrupted
        if abs(gap) < 1e-12:
            return {s: float("nan") for s in self.patched}
        return {s: (v - self.corrupted) / gap for s, v in self.patched.items()}

    def table(self) -> list[dict]:
        """Rows ``{site, hook, head, neuron, position, metric, normalised}`` for a DataFrame."""
        norm = self.normalised
        return [{"site": str(s), "hook": s.hook, "head": s.head, "neuron": s.neuron, "position": s.position,
                 "metric": v, "normalised": norm[s]} for s, v in self.patched.items()]


def ioi_metric_fn(batch: TokenBatch, io_ids: torch.Tensor, s_ids: torch.Tensor) -> Metric:
    """A metric for `activation_patching`: mean IOI logit difference on `batch`'s prompts."""
    return lambda logits: ioi_metric(logits, batch.lengths, io_ids, s_ids).mean()


def activation_patching(model, clean: TokenBatch, corrupted: TokenBatch, sites: Sequence[Site], metric: Metric,
                        direction: str = "denoise", progress: bool = False) -> PatchingResult:
    """Patch every site, one at a time, between the clean and corrupted runs; see the module docstring.

    :param metric: ``logits [batch, pos, vocab] -> scalar`` (e.g. `ioi_metric_fn`).
    """
    if direction not in ("denoise", "noise"):
        raise ValueError(f"direction must be 'denoise' or 'noise', got {direction!r}")
    if clean.tokens.shape != corrupted.tokens.shape or not torch.equal(clean.lengths, corrupted.lengths):
        raise ValueError(f"clean and corrupted prompts are not position-aligned: shapes {tuple(clean.tokens.shape)} vs "
                         f"{tuple(corrupted.tokens.shape)}; every pair must have the same token length")
    module = hooked_module(model)
    hooks = sorted({s.hook for s in sites})
    check_hook_names(module, hooks)
    source, target = (clean, corrupted) if direction == "denoise" else (corrupted, clean)
    with torch.no_grad():
        _, cache = module.run_with_cache(source.tokens, names_filter=hooks)
        result = PatchingResult(float(metric(module(clean.tokens))), float(metric(module(corrupted.tokens))),
                                direction=direction)
        iterator = sites
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(sites, desc="patching", unit="site", leave=False)
        for site in iterator:
            stored = cache[site.hook]

            def fn(act: torch.Tensor, hook=None, site=site, stored=stored) -> torch.Tensor:  # noqa: ARG001
                return replace_site(act, site, stored)

            logits = module.run_with_hooks(target.tokens, fwd_hooks=[(site.hook, fn)])
            result.patched[site] = float(metric(logits))
    return result
