"""Backup name-mover heads: IOI data, per-head DLA under head ablations, backup scores and their robustness.

The experiment (Wang et al. 2022, §6 of the research notes): find the name movers (heads with
the largest direct logit attribution, confirmed by patching their outputs from ABC prompts),
ablate them under several ablation distributions (`DISTRIBUTIONS`), and score every other
head by how much its DLA rises (its *backup score*, ΔDLA). Ablating the movers plus the top
backups and measuring again finds backup-backup heads (`backup_analysis`, ``depth``).
Heads with negative clean DLA (e.g. copy suppression) are reported apart from positive backups.

Prompts are processed per template (`IOIGroup`): every prompt of a group has the same token
length, so per-position means over ABC or clean prompts replace each position by the mean of
the same position in the same template. The other-template distribution is not position-
aligned, so its mean is over all positions.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from lm_interp.backup.intervals import PromptMeasurements, backup_intervals
from lm_interp.backup.results import (
    AblationLevel,
    BackupResult,
    BackupSettings,
    BackupVerdict,
    CleanRun,
    HeadDLA,
    NegativeHeadChange,
    NegativeVerdict,
    PatchedHead,
    RisingHead,
    Robustness,
)
from lm_interp.machinery.ablation import Reference, Site, ablation_hooks
from lm_interp.machinery.dla import Readout
from lm_interp.machinery.hooks import gather_positions, hook_name, hooked_module
from lm_interp.machinery.metrics import answer_ids
from lm_interp.machinery.patching import activation_patching, ioi_metric_fn
from lm_interp.models.corpus import (
    IOI_NAMES,
    IOIPrompt,
    ioi_corrupt,
    ioi_prompts,
    ioi_templates,
)
from lm_interp.models.tokenizer import TokenBatch, encode, single_token_words

log = logging.getLogger(__name__)

Head = tuple[int, int]

# name -> (ablation kind of lm_interp.machinery.ablation, reference prompt set, per-position mean)
DISTRIBUTIONS: dict[str, tuple[str, str | None, bool]] = {
    "zero": ("zero", None, True),
    "mean_abc": ("mean", "abc", True),
    "mean_clean": ("mean", "clean", True),
    "resample_abc": ("resample", "abc", True),
    "mean_other_template": ("mean", "other", False),
}


# ------------------------------------------------------------------------------------------- heads

def head_label(head: Head) -> str:
    """``(9, 6) -> "9.6"``."""
    return f"{head[0]}.{head[1]}"


def parse_head(text: str, n_layers: int, n_heads: int) -> Head:
    """``"9.6" -> (9, 6)``, checked against the model's shape.

    :raises ValueError: malformed, or layer / head out of range.
    """
    m = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", str(text))
    if not m:
        raise ValueError(f"unknown head {text!r}: write heads as 'LAYER.HEAD', e.g. '9.6'")
    layer, head = int(m.group(1)), int(m.group(2))
    if layer >= n_layers or head >= n_heads:
        raise ValueError(f"head {text!r} is out of range: the model has layers 0..{n_layers - 1} and heads "
                         f"0..{n_heads - 1} per layer")
    return layer, head


def parse_heads(spec: str | Sequence[str] | None, n_layers: int, n_heads: int) -> list[Head] | None:
    """A comma-separated list (or sequence) of ``L.H`` heads, or None."""
    if spec is None or spec == "":
        return None
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    heads = [parse_head(t, n_layers, n_heads) for t in items if str(t).strip()]
    if len(set(heads)) != len(heads):
        raise ValueError(f"duplicate heads in {spec!r}")
    return heads


def check_heads(heads: Sequence[Head], n_layers: int, n_heads: int) -> list[Head]:
    """The heads as ``(layer, head)`` int tuples; ValueError if any is out of range."""
    out = []
    for h in heads:
        layer, head = int(h[0]), int(h[1])
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise ValueError(f"head {layer}.{head} is out of range: layers 0..{n_layers - 1}, heads 0..{n_heads - 1}")
        out.append((layer, head))
    return out


# -------------------------------------------------------------------------------------------- data

@dataclass
class IOIGroup:
    """Position-aligned IOI prompts of one template: clean, ABC (S2 -> a third name) and other-template.

    All clean and ABC rows have the same token length; other-template rows are another template
    with the same names (used for an all-position mean only).
    """

    template: str
    clean: list[IOIPrompt]
    abc: list[IOIPrompt]
    other: list[IOIPrompt]
    clean_batch: TokenBatch
    abc_batch: TokenBatch
    other_batch: TokenBatch
    io_ids: torch.Tensor
    s_ids: torch.Tensor

    def __len__(self) -> int:
        return len(self.clean_batch)

    def batch(self, which: str) -> TokenBatch:
        """``clean``, ``abc`` or ``other``."""
        return {"clean": self.clean_batch, "abc": self.abc_batch, "other": self.other_batch}[which]


def ioi_names(tokenizer, names: Sequence[str] = IOI_NAMES) -> list[str]:
    """The names that are single tokens after a space for this tokenizer (at least 4 are needed)."""
    ok = single_token_words(tokenizer, names)
    if len(ok) < 4:
        raise ValueError(f"only {len(ok)} of {len(names)} IOI names are single tokens for this tokenizer; need >= 4")
    return ok


def ioi_dataset(lm, n_per_template: int = 16, split: str = "heldout", templates: Sequence[str] | None = None,
                seed: int = 0, names: Sequence[str] | None = None) -> list[IOIGroup]:
    """IOI prompt groups (one per template) for `lm` (a `LoadedLM`), deterministic by seed.

    Names are checked against the tokenizer (single tokens after a space). Within a template,
    only prompts of the template's most common token length are kept (places and objects can
    be several tokens in a BPE vocabulary), so every group is position-aligned.
    """
    if n_per_template < 2:
        raise ValueError(f"n_per_template must be >= 2, got {n_per_template}")
    names = ioi_names(lm.tokenizer, names if names is not None else IOI_NAMES)
    ids = list(templates) if templates is not None else list(ioi_templates(split))
    groups = []
    for k, tid in enumerate(ids):
        pool = ioi_prompts(4 * n_per_template, split, seed + 7919 * k, names, [tid], pair_split=None)
        lengths = encode(lm.tokenizer, [p.text for p in pool], lm.prepend_bos).lengths.tolist()
        modal = Counter(lengths).most_common(1)[0][0]
        clean = [p for p, n in zip(pool, lengths) if n == modal][:n_per_template]
        abc = ioi_corrupt(clean, "abc", seed + k, names)
        keep = [i for i, n in enumerate(encode(lm.tokenizer, [p.text for p in abc], lm.prepend_bos).lengths.tolist())
                if n == modal]
        clean, abc = [clean[i] for i in keep], [abc[i] for i in keep]
        if len(clean) < 2:
            log.warning("template %s: fewer than 2 position-aligned prompts; skipped", tid)
            continue
        other = ioi_corrupt(clean, "other_template", seed + k)
        groups.append(IOIGroup(
            tid, clean, abc, other,
            encode(lm.tokenizer, [p.text for p in clean], lm.prepend_bos),
            encode(lm.tokenizer, [p.text for p in abc], lm.prepend_bos),
            encode(lm.tokenizer, [p.text for p in other], lm.prepend_bos),
            answer_ids(lm.tokenizer, [p.io for p in clean]), answer_ids(lm.tokenizer, [p.s for p in clean])))
    if not groups:
        raise ValueError(f"no position-aligned IOI prompts for templates {ids}")
    return groups


# -------------------------------------------------------------------------------------------- runs

@dataclass
class RunRecord:
    """Per-prompt measurements of one (possibly ablated) run.

    :param logit_diff: ``[batch]``; :param dla: ``[batch, n_layers, n_heads]`` with the run's own norm scale;
    :param dla_frozen: the same with the clean run's scale (None for the clean run itself);
    :param scale: ``[batch, 1]`` final-norm scale at the last position.
    """

    logit_diff: torch.Tensor
    dla: torch.Tensor
    dla_frozen: torch.Tensor | None
    scale: torch.Tensor
    components: dict[str, torch.Tensor] | None = None


def z_hooks(n_layers: int) -> list[str]:
    """``blocks.L.attn.hook_z`` for every layer."""
    return [hook_name("z", layer) for layer in range(n_layers)]


def measure_run(model, readout: Readout, batch: TokenBatch, io_ids: torch.Tensor, s_ids: torch.Tensor,
                fwd_hooks: Sequence = (), clean_scale: torch.Tensor | None = None,
                components: bool = False) -> RunRecord:
    """Run `batch` with `fwd_hooks` (e.g. ablations) and measure logit difference and every head's DLA.

    The measuring hooks are added after `fwd_hooks`, so they see ablated values.
    :param components: also decompose the logit difference (see `dla_decomposition`).
    """
    module = hooked_module(model)
    n_layers = readout.n_layers
    last = batch.lengths - 1
    final = hook_name("resid_post", n_layers - 1)
    wanted = z_hooks(n_layers) + [final]
    if components:
        wanted += [hook_name("resid_pre", 0)] + [h for h in (hook_name("mlp_out", layer) for layer in range(n_layers))
                                                 if h in module.hook_dict]
    store: dict[str, torch.Tensor] = {}

    def keeper(name: str):
        # bridge hooks can be aliases (resid_post -> hook_out): store under the name asked for
        def keep(act: torch.Tensor, hook=None) -> None:
            store[name] = gather_positions(act.detach(), last, 1)
        return keep

    with torch.no_grad():
        logits = module.run_with_hooks(batch.tokens, fwd_hooks=list(fwd_hooks) + [(h, keeper(h)) for h in wanted])
    rows = torch.arange(len(batch))
    final_logits = logits[rows, last].float()
    ld = final_logits[rows, io_ids] - final_logits[rows, s_ids]
    resid = store[final].float()
    scale = readout.scale(resid)
    direction = readout.direction(io_ids, s_ids)
    z = torch.stack([store[h] for h in z_hooks(n_layers)], dim=1)  # [batch, layer, head, d_head]
    dla = readout.head_dla(z, direction, scale)
    frozen = readout.head_dla(z, direction, clean_scale) if clean_scale is not None else None
    parts = None
    if components:
        parts = {"embed": readout.vector_dla(store[hook_name("resid_pre", 0)], direction, scale)}
        for layer in range(n_layers):
            for h in range(readout.n_heads):
                parts[f"head {layer}.{h}"] = dla[:, layer, h]
            parts[f"attn bias {layer}"] = readout.vector_dla(readout.b_O[layer].expand(len(batch), -1), direction,
                                                             scale)
            mlp = hook_name("mlp_out", layer)
            if mlp in store:
                parts[f"mlp {layer}"] = readout.vector_dla(store[mlp], direction, scale)
        parts["norm and unembed bias"] = readout.constant_dla(io_ids, s_ids)
    return RunRecord(ld, dla, frozen, scale, parts)


def dla_decomposition(model, batch: TokenBatch, io_ids: torch.Tensor, s_ids: torch.Tensor,
                      readout: Readout | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Every component's DLA ``{name: [batch]}`` and the true logit difference ``[batch]``.

    Components: embeddings (``blocks.0.hook_resid_pre``), each head, each layer's attention bias,
    each MLP, and the final norm's bias plus the unembedding bias. Their sum equals the logit
    difference when the residual stream is exactly these components (GPT-2, Llama).
    """
    readout = readout if readout is not None else Readout.from_model(model)
    run = measure_run(model, readout, batch, io_ids, s_ids, components=True)
    return run.components, run.logit_diff


def distribution_hooks(heads: Sequence[Head], distribution: str, group: IOIGroup,
                       references: dict[str, Reference], seed: int = 0) -> list:
    """``fwd_hooks`` that ablate `heads` at ``hook_z`` under `distribution` (a key of `DISTRIBUTIONS`).

    :param references: ``{"abc" | "clean" | "other": Reference}`` of the group (z hooks cached).
    """
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown ablation distribution {distribution!r}; distributions: {list(DISTRIBUTIONS)}")
    if not heads:
        return []
    kind, ref_name, per_position = DISTRIBUTIONS[distribution]
    sites = [Site(hook_name("z", layer), head=h) for layer, h in heads]
    reference = references[ref_name] if ref_name is not None else None
    return ablation_hooks(sites, kind, reference, len(group), seed, per_position)


class _References:
    """Lazily built `Reference` sets (z at every layer) per group and prompt set."""

    def __init__(self, model, groups: Sequence[IOIGroup], n_layers: int) -> None:
        self.model, self.groups, self.hooks = model, groups, z_hooks(n_layers)
        self._cache: dict[tuple[int, str], Reference] = {}

    def of(self, g: int) -> dict[str, Reference]:
        return _LazyRefs(self, g)

    def get(self, g: int, which: str) -> Reference:
        if (g, which) not in self._cache:
            self._cache[(g, which)] = Reference(self.model, self.groups[g].batch(which), self.hooks)
        return self._cache[(g, which)]


class _LazyRefs(dict):
    def __init__(self, refs: _References, g: int) -> None:
        super().__init__()
        self.refs, self.g = refs, g

    def __missing__(self, which: str) -> Reference:
        return self.refs.get(self.g, which)


def _cat(records: Sequence[RunRecord], field: str) -> torch.Tensor:
    return torch.cat([getattr(r, field) for r in records])


# ---------------------------------------------------------------------------------------- analysis

def rank_correlation(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); nan if either side is constant."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _heads_table(values: np.ndarray, heads: Sequence[Head]) -> dict[str, float]:
    return {head_label(h): round(float(values[h]), 4) for h in heads}


def _top(values: np.ndarray, candidates: Sequence[Head], k: int, reverse: bool = True) -> list[Head]:
    return sorted(candidates, key=lambda h: values[h], reverse=reverse)[:k]


@dataclass
class CleanMeasurement:
    """The clean runs of every group and what the analysis derives from them.

    :param runs: one `RunRecord` per group (components included); :param logit_diff: ``[n_prompts]``;
    :param dla: ``[n_layers, n_heads]`` mean clean DLA.
    """

    runs: list[RunRecord]
    logit_diff: torch.Tensor
    dla: np.ndarray
    summary: CleanRun


def measure_clean(module, readout: Readout, groups: Sequence[IOIGroup]) -> CleanMeasurement:
    """Clean and ABC runs of every group: logit differences, every head's DLA and the DLA-sum check."""
    clean = [measure_run(module, readout, g.clean_batch, g.io_ids, g.s_ids, components=True) for g in groups]
    clean_ld = _cat(clean, "logit_diff")
    clean_dla = _cat(clean, "dla").mean(0).numpy()
    comp_sum = sum(torch.cat([r.components[k] for r in clean]) for k in clean[0].components)
    abc_ld = torch.cat([measure_run(module, readout, g.abc_batch, g.io_ids, g.s_ids).logit_diff for g in groups])
    summary = CleanRun(logit_diff=float(clean_ld.mean()), logit_diff_std=float(clean_ld.std()),
                       accuracy=float((clean_ld > 0).float().mean()),
                       dla_sum_max_abs_error=float((comp_sum - clean_ld).abs().max()),
                       abc_logit_diff=float(abc_ld.mean()))
    return CleanMeasurement(clean, clean_ld, clean_dla, summary)


def patching_confirmation(module, groups: Sequence[IOIGroup], movers: Sequence[Head], clean_dla: np.ndarray,
                          n_patch: int) -> list[PatchedHead]:
    """Clean runs with one head's output taken from the ABC run: the movers and the top `n_patch` heads by |DLA|."""
    L, H = clean_dla.shape
    all_heads = [(layer, h) for layer in range(L) for h in range(H)]
    n = sum(len(g) for g in groups)
    cands = sorted(set(movers) | set(_top(np.abs(clean_dla), all_heads, n_patch)))
    sites = [Site(hook_name("z", layer), head=h) for layer, h in cands]
    drops = np.zeros(len(cands))
    for g in groups:
        pr = activation_patching(module, g.clean_batch, g.abc_batch, sites, ioi_metric_fn(g.clean_batch, g.io_ids,
                                 g.s_ids), direction="noise")
        drops += np.array([pr.clean - pr.patched[s] for s in sites]) * len(g) / n
    return [PatchedHead(head=head_label(h), dla=round(float(clean_dla[h]), 4), ld_drop=round(float(d), 4),
                        mover=h in movers, confirmed=bool(d > 0.2 * clean_dla[h] > 0))
            for h, d in sorted(zip(cands, drops), key=lambda t: -t[1])]


def ablation_sweep(module, readout: Readout, groups: Sequence[IOIGroup], refs: _References, distribution: str,
                   movers: Sequence[Head], clean: CleanMeasurement, negative: Sequence[Head], threshold: float,
                   depth: int, backups_per_level: int, backup_pool: str, seed: int
                   ) -> tuple[list[AblationLevel], np.ndarray, RunRecord]:
    """Ablate the movers under one distribution, then the movers plus the top backups, level by level.

    :returns: the levels, the level-0 mean ΔDLA ``[n_layers, n_heads]`` (movers ablated) and the level-0
        per-prompt record (logit difference and DLA of every prompt, groups concatenated).
    """
    L, H = readout.n_layers, readout.n_heads
    all_heads = [(layer, h) for layer in range(L) for h in range(H)]
    clean_dla, clean_ld = clean.dla, clean.logit_diff
    ablated = list(movers)
    levels: list[AblationLevel] = []
    level0, level0_prompts = None, None
    for level in range(depth + 1):
        runs = [measure_run(module, readout, g.clean_batch, g.io_ids, g.s_ids,
                            distribution_hooks(ablated, distribution, g, refs.of(i), seed + i), clean.runs[i].scale,
                            components=True)
                for i, g in enumerate(groups)]
        # non-head components (embeddings, MLPs, biases): their DLA change, own-run scale
        other_delta = {k: round(float(torch.cat([r.components[k] for r in runs]).mean()
                                      - torch.cat([r.components[k] for r in clean.runs]).mean()), 4)
                       for k in runs[0].components if not k.startswith("head ")}
        ld = _cat(runs, "logit_diff")
        dla = _cat(runs, "dla").mean(0).numpy()
        frozen = _cat(runs, "dla_frozen").mean(0).numpy()
        delta, delta_frozen = dla - clean_dla, frozen - clean_dla
        candidates = [h for h in all_heads if h not in ablated and h not in negative]
        ranked = _top(delta, candidates, len(candidates))
        pool = ranked if backup_pool == "positive" else _top(delta, [h for h in all_heads if h not in ablated],
                                                             len(all_heads))
        backups = [h for h in pool[:backups_per_level] if delta[h] > threshold]
        # logit difference if only the ablated heads' direct effects changed (clean norm scale):
        # the rest (heads, MLPs, norm rescaling) is compensation
        naive = float(clean_ld.mean()) + float(sum(delta_frozen[h] for h in ablated))
        levels.append(AblationLevel(
            level=level, ablated=[head_label(h) for h in ablated],
            logit_diff=float(ld.mean()), accuracy=float((ld > 0).float().mean()),
            logit_diff_without_compensation=naive, compensation=float(ld.mean()) - naive,
            top_backups=[RisingHead(head=head_label(h), delta_dla=round(float(delta[h]), 4),
                                    delta_dla_frozen_scale=round(float(delta_frozen[h]), 4),
                                    clean_dla=round(float(clean_dla[h]), 4)) for h in ranked[:5]],
            negative_heads=[NegativeHeadChange(head=head_label(h), clean_dla=round(float(clean_dla[h]), 4),
                                               delta_dla=round(float(delta[h]), 4),
                                               delta_dla_frozen_scale=round(float(delta_frozen[h]), 4))
                            for h in negative if h not in ablated],
            sum_positive_delta_dla=float(sum(max(delta[h], 0.0) for h in candidates)),
            component_delta_dla=other_delta,
            delta_dla=delta.round(4).tolist(), delta_dla_frozen_scale=delta_frozen.round(4).tolist(),
            backups=[head_label(h) for h in backups]))
        if level == 0:
            level0 = delta
            level0_prompts = RunRecord(ld, _cat(runs, "dla"), _cat(runs, "dla_frozen"), _cat(runs, "scale"))
        log.info("%s level %d: ablated %s, LD %.3f, top backup %s", distribution, level,
                 [head_label(h) for h in ablated], float(ld.mean()), levels[-1].top_backups[:1])
        if not backups:
            break
        ablated = ablated + backups
    return levels, level0, level0_prompts


def robustness(level0: dict[str, np.ndarray], movers: Sequence[Head], negative: Sequence[Head],
               clean_dla: np.ndarray, threshold: float) -> Robustness:
    """Agreement of the distributions at level 0: rank correlations and per-head backup verdicts."""
    L, H = clean_dla.shape
    all_heads = [(layer, h) for layer in range(L) for h in range(H)]
    candidates = [h for h in all_heads if h not in movers and h not in negative]
    pairs = {f"{a} vs {b}": rank_correlation([level0[a][h] for h in candidates], [level0[b][h] for h in candidates])
             for a, b in itertools.combinations(list(level0), 2)}
    verdicts = {}
    for h in candidates:
        under = [d for d in level0 if level0[d][h] > threshold]
        if under:
            verdicts[head_label(h)] = BackupVerdict(verdict="all" if len(under) == len(level0) else "some",
                                                    under=under,
                                                    delta_dla={d: round(float(level0[d][h]), 4) for d in level0})
    # negative heads apart: a rise there is less suppression, not a head taking over the movers' job
    negative_verdicts = {}
    for h in negative:
        if h in movers:
            continue
        under = [d for d in level0 if level0[d][h] > threshold]
        negative_verdicts[head_label(h)] = NegativeVerdict(
            verdict="all" if len(under) == len(level0) else "some" if under else "none", under=under,
            clean_dla=round(float(clean_dla[h]), 4), delta_dla={d: round(float(level0[d][h]), 4) for d in level0})
    return Robustness(rank_correlation=pairs, verdicts=verdicts,
                      n_heads_backup_under_none=len(candidates) - len(verdicts), negative_verdicts=negative_verdicts)


def backup_analysis(lm, groups: Sequence[IOIGroup], n_movers: int = 3, movers: Sequence[Head] | None = None,
                    distributions: Sequence[str] = tuple(DISTRIBUTIONS), depth: int = 2, backups_per_level: int = 1,
                    n_patch: int = 8, backup_fraction: float = 0.05, negative_fraction: float = 0.1,
                    seed: int = 0, backup_pool: str = "positive", progress: bool = True,
                    readout: Readout | None = None, n_boot: int = 1000, cache_dir: str | Path | None = None
                    ) -> BackupResult:
    """The whole backup-head experiment on `groups` (see ``docs/lm.md``): clean runs, name movers, patching
    confirmation, the ablation sweep per distribution and the robustness across distributions.

    :param lm: a `LoadedLM` or hooked module.
    :param n_movers: name movers = the heads with the largest mean clean DLA (unless `movers` is given).
    :param distributions: keys of `DISTRIBUTIONS`.
    :param depth: backup-backup levels after the first ablation (0: ablate the movers only).
    :param backups_per_level: top backups added to the ablated set at each level.
    :param n_patch: heads (top by |DLA|, movers included) whose outputs are patched clean <- ABC (0: none).
    :param backup_fraction: a head is a backup when its ΔDLA exceeds this fraction of the movers' summed clean DLA.
    :param negative_fraction: a head is negative when its clean DLA is below minus this fraction of the top DLA.
    :param backup_pool: heads eligible as backups for the next level: ``positive`` (not negative heads) or
        ``all`` (negative heads whose suppression drops count too, e.g. to ablate a copy-suppression head).
    :param n_boot: bootstrap resamples over prompts for the intervals (`lm_interp.backup.intervals`); 0: none.
    :param cache_dir: keep each finished distribution's sweep here, so that an interrupted run resumes where it
        stopped (a cache made with other prompts, model or settings is ignored).
    """
    if backup_pool not in ("positive", "all"):
        raise ValueError(f"backup_pool must be 'positive' or 'all', got {backup_pool!r}")
    unknown = [d for d in distributions if d not in DISTRIBUTIONS]
    if unknown or not distributions:
        raise ValueError(f"unknown ablation distributions {unknown or distributions}; known: {list(DISTRIBUTIONS)}")
    if depth < 0 or backups_per_level < 1 or n_movers < 1:
        raise ValueError(f"need depth >= 0, backups_per_level >= 1 and n_movers >= 1 (got {depth}, "
                         f"{backups_per_level}, {n_movers})")
    module = hooked_module(lm)
    readout = readout if readout is not None else Readout.from_model(module)
    L, H = readout.n_layers, readout.n_heads
    all_heads = [(layer, h) for layer in range(L) for h in range(H)]

    clean = measure_clean(module, readout, groups)
    clean_dla = clean.dla
    if movers is None:
        movers = _top(clean_dla, all_heads, n_movers)
    movers = check_heads(movers, L, H)
    top_dla = float(np.abs(clean_dla).max())
    negative = [h for h in all_heads if clean_dla[h] < -negative_fraction * top_dla]
    removed = float(sum(clean_dla[h] for h in movers))
    threshold = backup_fraction * abs(removed)
    patching = patching_confirmation(module, groups, movers, clean_dla, n_patch) if n_patch > 0 else None

    refs = _References(module, groups, L)
    sweeps: dict[str, list[AblationLevel]] = {}
    level0: dict[str, np.ndarray] = {}
    prompts: dict[str, RunRecord] = {}
    cached_seconds = 0.0
    fingerprint = _fingerprint(groups, clean, movers, threshold, depth, backups_per_level, backup_pool, seed,
                               negative)
    jobs = list(distributions)
    if progress:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, desc="ablation distributions", unit="dist", leave=False)
    for dist in jobs:
        cache = Path(cache_dir) / f"sweep_{dist}.pkl" if cache_dir is not None else None
        done, seconds = _read_sweep(cache, fingerprint)
        if done is None:
            t0 = time.perf_counter()
            done = ablation_sweep(module, readout, groups, refs, dist, movers, clean, negative, threshold, depth,
                                  backups_per_level, backup_pool, seed)
            if cache is not None:
                _write_sweep(cache, fingerprint, done, time.perf_counter() - t0)
        else:
            cached_seconds += seconds
            log.info("%s: sweep read from %s (computed in %.0f s)", dist, cache, seconds)
        sweeps[dist], level0[dist], prompts[dist] = done
    intervals = None
    if n_boot > 0:
        clean_dla_prompts = _cat(clean.runs, "dla").numpy()
        templates = np.array([g.template for g in groups for _ in range(len(g))])
        measured = PromptMeasurements(
            templates=templates, splits=np.array([template_split(t) for t in templates]),
            clean_logit_diff=clean.logit_diff.numpy().astype(np.float64), clean_dla=clean_dla_prompts,
            ablated_logit_diff={d: r.logit_diff.numpy() for d, r in prompts.items()},
            delta_dla={d: r.dla.numpy() - clean_dla_prompts for d, r in prompts.items()},
            delta_dla_frozen={d: r.dla_frozen.numpy() - clean_dla_prompts for d, r in prompts.items()})
        intervals = backup_intervals(measured, list(movers), list(negative), threshold, n_boot, seed)

    return BackupResult(
        n_prompts=sum(len(g) for g in groups), templates=[g.template for g in groups],
        n_layers=L, n_heads=H, norm=readout.norm, clean=clean.summary,
        clean_dla=clean_dla.round(4).tolist(),
        top_heads=[HeadDLA(head=head_label(h), dla=round(float(clean_dla[h]), 4))
                   for h in _top(clean_dla, all_heads, 10)],
        movers=[head_label(h) for h in movers], movers_dla=_heads_table(clean_dla, movers),
        negative_heads=_heads_table(clean_dla, _top(clean_dla, negative, len(negative), reverse=False)),
        backup_threshold=threshold,
        settings=BackupSettings(n_movers=n_movers, depth=depth, backups_per_level=backups_per_level, n_patch=n_patch,
                                backup_fraction=backup_fraction, negative_fraction=negative_fraction, seed=seed,
                                distributions=list(distributions), backup_pool=backup_pool),
        patching=patching, sweeps=sweeps, robustness=robustness(level0, movers, negative, clean_dla, threshold),
        intervals=intervals, cached_seconds=round(cached_seconds, 3) if cached_seconds else None)


def template_split(template: str) -> str:
    """``train`` or ``heldout`` for the corpus' IOI template ids, the id itself for any other template."""
    for split in ("train", "heldout"):
        if template in ioi_templates(split):
            return split
    return template


def _fingerprint(groups: Sequence[IOIGroup], clean: CleanMeasurement, *settings) -> str:
    """What a cached sweep depends on: prompts, the clean run's logit differences (the model) and the settings."""
    import hashlib
    import json

    text = json.dumps([[g.template, g.clean_batch.tokens.tolist(), g.abc_batch.tokens.tolist()] for g in groups]
                      + [np.round(clean.logit_diff.numpy(), 3).tolist(), repr(settings)])
    return hashlib.sha256(text.encode()).hexdigest()


def _read_sweep(path: Path | None, fingerprint: str):
    """A cached ``ablation_sweep`` result and the seconds it took, or ``(None, 0)`` (no cache, unreadable, or
    made for other prompts, model or settings)."""
    import pickle

    if path is None or not path.is_file():
        return None, 0.0
    try:
        data = pickle.loads(path.read_bytes())
    except Exception:  # a cache is disposable: unreadable means recompute
        log.warning("ignoring unreadable cache %s", path)
        return None, 0.0
    if not isinstance(data, dict) or data.get("fingerprint") != fingerprint:
        return None, 0.0
    return data["sweep"], float(data.get("seconds", 0.0))


def _write_sweep(path: Path, fingerprint: str, sweep, seconds: float) -> None:
    import pickle

    from common.atomic import atomic_target

    with atomic_target(path) as tmp:
        tmp.write_bytes(pickle.dumps({"fingerprint": fingerprint, "sweep": sweep, "seconds": seconds}))
