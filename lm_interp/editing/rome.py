"""ROME (Meng et al. 2022): a rank-one edit of one MLP output projection, written from the paper.

1. Context prefixes sampled from the model (``"{}"`` plus ``"<prefix>. {}"``); the key ``k*``
   is the projection input at the subject's last token, averaged over them.
2. ``C = E[k kᵀ]`` over keys of a local corpus (model samples or the generated corpus),
   cached on disk, with a ridge ``λ·mean(diag C)·I``; or ``C = I`` (``covariance="identity"``).
3. ``v*`` = the projection output on the bare prompt plus a vector ``δ`` optimised (Adam) for
   the new target's NLL over all contexts + ``kl_factor``·KL on the essence prompt
   "{subject} is a" + ``weight_decay``·‖δ‖/‖v_init‖², with ‖δ‖ clamped to ``clamp``·‖v_init‖.
4. ``W += (v* − W k)(C⁻¹k*)ᵀ / ((C⁻¹k*)ᵀ k)`` (`rank_one_update`), where ``k`` is ``k*``
   (``key_mode="consistent"``, r-ROME, Gupta et al. 2024) or the bare prompt's key as in the
   original code (``"legacy"``). Then ``W' k = v*`` exactly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from common.atomic import atomic_target, atomic_write_text
from lm_interp.editing.weights import (
    EditRequest,
    MLPProjection,
    WeightEdit,
    frozen,
    rewrite_batch,
    target_nll,
)
from lm_interp.models.loading import cache_root
from lm_interp.models.tokens import (
    forward_logits,
    pad_rows,
    prompt_ids,
    sample_texts,
    subject_last_index,
)

log = logging.getLogger(__name__)

KEY_MODES = ("consistent", "legacy")
COVARIANCES = ("corpus", "identity")
SEED_WORDS = ("The", "Therefore", "Because", "I", "You", "In", "It", "She", "We", "A")


@dataclass(frozen=True)
class ROMEConfig:
    """ROME hyper-parameters (defaults: the paper's GPT-2 settings, with 10 context prefixes).

    :param layer: block whose MLP output projection is edited.
    :param key_mode: ``consistent`` (k* in the whole update, r-ROME) or ``legacy`` (original code).
    :param covariance: ``corpus`` (second moment of keys from a local corpus) or ``identity`` (C = I).
    :param cov_corpus: ``samples`` (text sampled from the model) or ``generated`` (lm_interp.models.corpus text).
    :param cov_n_texts: texts whose keys (every position) estimate C; :param cov_text_tokens: tokens per sample.
    :param ridge: C += ridge · mean(diag C) · I.
    :param context_lengths: ((tokens, count), ...) of the sampled prefixes.
    :param v_lr, v_steps, kl_factor, weight_decay, clamp: the v* optimisation.
    :param early_stop_nll: stop once the target NLL drops below this.
    :param seed: prefix / corpus sampling and optimisation seed.
    """

    layer: int = 1
    key_mode: str = "consistent"
    covariance: str = "corpus"
    cov_corpus: str = "samples"
    cov_n_texts: int = 64
    cov_text_tokens: int = 48
    ridge: float = 1e-3
    context_lengths: tuple[tuple[int, int], ...] = ((5, 5), (10, 5))
    v_lr: float = 0.5
    v_steps: int = 20
    kl_factor: float = 0.0625
    weight_decay: float = 0.5
    clamp: float = 4.0
    early_stop_nll: float = 5e-2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.key_mode not in KEY_MODES:
            raise ValueError(f"unknown key_mode {self.key_mode!r}; modes: {KEY_MODES}")
        if self.covariance not in COVARIANCES:
            raise ValueError(f"unknown covariance {self.covariance!r}; options: {COVARIANCES}")
        if self.cov_corpus not in ("samples", "generated"):
            raise ValueError(f"unknown cov_corpus {self.cov_corpus!r}; options: samples, generated")


# ------------------------------------------------------------------------------------ closed form

def rank_one_update(W: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cov: torch.Tensor | None = None,
                    residual_key: torch.Tensor | None = None) -> torch.Tensor:
    """The ROME update ``ΔW = (v − W k_r)(C⁻¹k)ᵀ / ((C⁻¹k)ᵀ k_r)`` of a memory ``v = W k`` (``[out, in]``).

    After ``W + ΔW``, ``k_r`` maps to `value` exactly, and every key ``x`` with ``xᵀC⁻¹k = 0``
    maps where it did. ``k_r`` is `residual_key` (legacy ROME: the bare prompt's key) or `key`.

    :param W: ``[out, in]``; :param key: ``k*`` ``[in]``; :param value: ``v*`` ``[out]`` (no bias).
    :param cov: ``C`` ``[in, in]`` (symmetric positive definite); None for ``C = I``.
    """
    W64 = W.detach().double()
    k = key.detach().double()
    kr = k if residual_key is None else residual_key.detach().double()
    u = k if cov is None else torch.linalg.solve(cov.double(), k)
    denom = u @ kr
    if abs(float(denom)) < 1e-12:
        raise ValueError("the update is degenerate: (C^-1 k*)^T k is ~0")
    delta = torch.outer(value.detach().double() - W64 @ kr, u) / denom
    return delta.to(W.dtype)


# ------------------------------------------------------------------------------- text and statistics

def model_cache_key(lm) -> str:
    """A short id of the model for cache file names (name plus a hash of its folder)."""
    digest = hashlib.sha1(str(Path(lm.path).resolve()).encode()).hexdigest()[:8]
    return f"{lm.name}-{digest}"


def sampled_texts(lm, n: int, length: int, seed: int = 0) -> list[str]:
    """`n` texts of `length` tokens sampled from the model (top-50), each started from one of `SEED_WORDS`."""
    rows = sample_texts(lm, n, length - 1, seed, seed_words=SEED_WORDS, top_k=50)
    return [lm.tokenizer.decode(ids, skip_special_tokens=True) for ids in rows]


def context_templates(lm, cfg: ROMEConfig) -> list[str]:
    """``["{}"] + [prefix + ". {}" ...]`` with prefixes sampled from the model (cached on disk)."""
    path = cache_root() / "rome" / f"contexts-{model_cache_key(lm)}-{cfg.context_lengths}-{cfg.seed}.json"
    path = path.with_name(path.name.replace(" ", "").replace("(", "").replace(")", ""))
    if path.exists():
        return json.loads(path.read_text())
    templates = ["{}"]
    for i, (length, count) in enumerate(cfg.context_lengths):
        for text in sampled_texts(lm, count, length, seed=cfg.seed + 101 * i):
            clean = " ".join(text.replace("{", " ").replace("}", " ").split())
            templates.append(clean + ". {}")
    atomic_write_text(json.dumps(templates, indent=1), path)
    return templates


def covariance_texts(lm, cfg: ROMEConfig) -> list[str]:
    """The texts whose keys estimate C: model samples, or sentences of the generated corpus."""
    if cfg.cov_corpus == "samples":
        return sampled_texts(lm, cfg.cov_n_texts, cfg.cov_text_tokens, seed=cfg.seed + 7)
    from lm_interp.models.corpus import varied_text
    from lm_interp.models.world import make_world

    sentences = varied_text(make_world(0), cfg.cov_n_texts * 4, seed=cfg.seed)
    return [" ".join(sentences[i:i + 4]) for i in range(0, len(sentences), 4)]


def key_second_moment(lm, layer: int, texts: Sequence[str], batch_size: int = 16, progress: bool = False
                      ) -> tuple[torch.Tensor, int]:
    """Uncentred ``E[k kᵀ]`` of the projection input over every real token of `texts`, and the key count."""
    proj = MLPProjection(lm.hf_model, layer)
    tok = lm.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    total, count = None, 0
    max_len = min(getattr(lm.hf_model.config, "n_positions", None) or
                  getattr(lm.hf_model.config, "max_position_embeddings", 256), 256)
    starts = range(0, len(texts), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"covariance L{layer}", unit="batch", leave=False)
    with torch.no_grad():
        for s in starts:
            rows = [prompt_ids(tok, t, lm.prepend_bos)[:max_len] for t in texts[s:s + batch_size]]
            tokens, lengths = pad_rows(rows, pad)
            with proj.capture() as store:
                forward_logits(lm.hf_model, tokens)
            mask = torch.arange(tokens.shape[1])[None] < lengths[:, None]
            keys = store["keys"][mask].double()
            total = keys.T @ keys if total is None else total + keys.T @ keys
            count += len(keys)
    return (total / max(count, 1)).float(), count


def cached_second_moment(lm, cfg: ROMEConfig, progress: bool = True) -> tuple[torch.Tensor, dict]:
    """`key_second_moment` for (model, layer, corpus, n), cached under ``cache_root()/rome`` (atomic .npz)."""
    name = f"cov-{model_cache_key(lm)}-L{cfg.layer}-{cfg.cov_corpus}-n{cfg.cov_n_texts}x{cfg.cov_text_tokens}" \
           f"-s{cfg.seed}.npz"
    path = cache_root() / "rome" / name
    if path.exists():
        data = np.load(path)
        return torch.from_numpy(data["mom2"]), {"path": str(path), "n_keys": int(data["n_keys"]), "cached": True}
    t0 = time.perf_counter()
    mom2, n = key_second_moment(lm, cfg.layer, covariance_texts(lm, cfg), progress=progress)
    with atomic_target(path, suffix=".npz") as tmp:
        np.savez(tmp, mom2=mom2.numpy(), n_keys=n)
    log.info("second moment of layer %d keys from %d keys in %.1f s -> %s", cfg.layer, n, time.perf_counter() - t0,
             path)
    return mom2, {"path": str(path), "n_keys": n, "cached": False, "seconds": round(time.perf_counter() - t0, 1)}


# ----------------------------------------------------------------------------------------- editor

def contextualise(templates: Sequence[str], prompt: str) -> tuple[list[str], list[int]]:
    """Each template filled with `prompt`, and where the prompt starts in it (to find its subject)."""
    texts = [t.replace("{}", prompt) for t in templates]
    return texts, [t.index("{}") for t in templates]


class ROMEEditor:
    """Rank-one model editing of one layer; reuses its context prefixes and C across edits.

    :param lm: a `LoadedLM` on raw weights. :param cfg: `ROMEConfig`.
    """

    def __init__(self, lm, cfg: ROMEConfig = ROMEConfig()) -> None:
        if getattr(lm, "processed", False):
            raise ValueError("ROME edits raw weights: load the model with processed=False")
        self.lm, self.cfg = lm, cfg
        self.projection = MLPProjection(lm.hf_model, cfg.layer)
        self.templates_: list[str] | None = None
        self.cov_: torch.Tensor | None = None
        self.cov_info_: dict = {}

    def prepare(self) -> "ROMEEditor":
        """Sample the context prefixes and estimate (or load) C once."""
        if self.templates_ is None:
            self.templates_ = context_templates(self.lm, self.cfg)
        if self.cov_ is None and self.cfg.covariance == "corpus":
            mom2, self.cov_info_ = cached_second_moment(self.lm, self.cfg)
            eye = torch.eye(len(mom2))
            self.cov_ = mom2 + self.cfg.ridge * mom2.diagonal().mean() * eye
        return self

    def keys(self, texts: Sequence[str], subject: str, starts: Sequence[int]) -> torch.Tensor:
        """Projection inputs at the subject's last token of each text ``[n, d_mlp]``."""
        tok, bos = self.lm.tokenizer, self.lm.prepend_bos
        rows = [prompt_ids(tok, t, bos) for t in texts]
        pos = [subject_last_index(tok, t, subject, bos, s) for t, s in zip(texts, starts)]
        tokens, _ = pad_rows(rows, tok.pad_token_id if tok.pad_token_id is not None else 0)
        with torch.no_grad(), self.projection.capture(pos) as store:
            forward_logits(self.lm.hf_model, tokens)
        return store["keys"]

    def compute_value(self, request: EditRequest, texts: Sequence[str], starts: Sequence[int]
                      ) -> tuple[torch.Tensor, dict]:
        """``v*`` (projection output with bias) and the optimisation record."""
        cfg, lm = self.cfg, self.lm
        essence = f"{request.subject[:1].upper()}{request.subject[1:]} is a"
        tokens, subj, spans = rewrite_batch(lm, texts, request.subject, request.target_new, starts)
        tok = lm.tokenizer
        ess_ids = prompt_ids(tok, essence, lm.prepend_bos)
        ess_pos = subject_last_index(tok, essence, request.subject, lm.prepend_bos)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        ess_tokens, _ = pad_rows([ess_ids], pad)
        with torch.no_grad():
            with self.projection.capture([subj[0]]) as store:
                forward_logits(lm.hf_model, tokens[:1])
            v_init = store["outputs"][0]
            init_logp = forward_logits(lm.hf_model, ess_tokens)[0, ess_pos].float().log_softmax(-1)
        torch.manual_seed(cfg.seed)
        delta = torch.zeros_like(v_init, requires_grad=True)
        opt = torch.optim.Adam([delta], lr=cfg.v_lr)
        max_norm = cfg.clamp * v_init.norm()
        history = []
        with frozen(lm.hf_model):
            for step in range(cfg.v_steps):
                opt.zero_grad()
                with self.projection.add_to_output(delta, subj):
                    nll = target_nll(forward_logits(lm.hf_model, tokens).float(), spans)
                with self.projection.add_to_output(delta, [ess_pos]):
                    logp = forward_logits(lm.hf_model, ess_tokens)[0, ess_pos].float().log_softmax(-1)
                kl = torch.sum(logp.exp() * (logp - init_logp))  # KL(P_edited || P_orig)
                decay = delta.norm() / v_init.norm() ** 2
                loss = nll + cfg.kl_factor * kl + cfg.weight_decay * decay
                history.append({"step": step, "nll": round(float(nll), 4), "kl": round(float(kl), 5),
                                "delta_norm": round(float(delta.norm()), 4)})
                if float(nll) < cfg.early_stop_nll:
                    break
                loss.backward()
                opt.step()
                with torch.no_grad():
                    if delta.norm() > max_norm:
                        delta.mul_(max_norm / delta.norm())
        return (v_init + delta).detach(), {"v_init_norm": float(v_init.norm()), "delta_norm": float(delta.norm()),
                                           "steps": len(history), "final_nll": history[-1]["nll"],
                                           "history": history}

    def edit(self, request: EditRequest) -> WeightEdit:
        """Apply the rank-one edit for `request`; returns the handle (``.restore()`` undoes it)."""
        t0 = time.perf_counter()
        self.prepare()
        texts, starts = contextualise(self.templates_, request.prompt)
        keys = self.keys(texts, request.subject, starts)
        k_star, k_bare = keys.mean(0), keys[0]
        value, record = self.compute_value(request, texts, starts)
        bias = self.projection.bias
        v_star = value - (bias.detach() if bias is not None else 0.0)  # the memory holds W k, not W k + b
        residual = k_bare if self.cfg.key_mode == "legacy" else None
        delta = rank_one_update(self.projection.W, k_star, v_star, self.cov_, residual_key=residual)
        edit = self.projection.apply_delta(delta)
        edit.info = {"editor": "rome", "layer": self.cfg.layer, "key_mode": self.cfg.key_mode,
                     "covariance": self.cfg.covariance, "n_contexts": len(texts), **record,
                     **edit.norms(), "seconds": round(time.perf_counter() - t0, 2)}
        edit.info.pop("history", None)
        edit.info["nll_history"] = [h["nll"] for h in record["history"]]
        return edit

    def config_dict(self) -> dict:
        """The configuration and the covariance / context facts, for reports."""
        return {**asdict(self.cfg), "cov_info": self.cov_info_, "contexts": self.templates_}
