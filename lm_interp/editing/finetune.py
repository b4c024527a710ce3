"""Fine-tuning baselines for model editing: Adam on one MLP output projection, with or without an L∞ bound.

FT (unconstrained) and FT-L (after Zhu et al. 2020, as in ROME's baselines): minimise the new
target's NLL on the rewrite prompt by changing only the projection's weight; FT-L projects
the weight back into ``‖W − W₀‖∞ ≤ linf`` after every step. Same `WeightEdit` handle as ROME.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from lm_interp.editing.weights import (
    EditRequest,
    MLPProjection,
    WeightEdit,
    frozen,
    rewrite_batch,
    target_nll,
)
from lm_interp.models.tokens import forward_logits


@dataclass(frozen=True)
class FTConfig:
    """Fine-tuning hyper-parameters.

    :param layer: block whose MLP output projection is trained.
    :param lr: Adam learning rate; :param steps: gradient steps.
    :param linf: L∞ bound on the change (FT-L); None for unconstrained FT.
    :param early_stop_nll: stop once the target NLL is below this.
    """

    layer: int = 1
    lr: float = 5e-4
    steps: int = 25
    linf: float | None = None
    early_stop_nll: float = 1e-2


def finetune_edit(lm, request: EditRequest, cfg: FTConfig = FTConfig()) -> WeightEdit:
    """Fine-tune the projection of `cfg.layer` towards `request`; returns the undoable edit."""
    if cfg.linf is not None and cfg.linf <= 0:
        raise ValueError(f"linf must be positive or None, got {cfg.linf}")
    t0 = time.perf_counter()
    proj = MLPProjection(lm.hf_model, cfg.layer)
    param = proj.param
    original = param.detach().clone()
    tokens, _, spans = rewrite_batch(lm, [request.prompt], request.subject, request.target_new)
    history = []
    with frozen(lm.hf_model):
        param.requires_grad_(True)
        opt = torch.optim.Adam([param], lr=cfg.lr)
        for _ in range(cfg.steps):
            opt.zero_grad()
            loss = target_nll(forward_logits(lm.hf_model, tokens).float(), spans)
            history.append(round(float(loss), 4))
            if float(loss) < cfg.early_stop_nll:
                break
            loss.backward()
            opt.step()
            if cfg.linf is not None:
                with torch.no_grad():
                    param.copy_(torch.clamp(param, original - cfg.linf, original + cfg.linf))
    param.grad = None
    edit = WeightEdit(proj, original)
    edit.info = {"editor": "ft-l" if cfg.linf is not None else "ft", "layer": cfg.layer, "lr": cfg.lr,
                 "linf": cfg.linf, "steps": len(history), "nll_history": history, **edit.norms(),
                 "seconds": round(time.perf_counter() - t0, 2)}
    return edit
