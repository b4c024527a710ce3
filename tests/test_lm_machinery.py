"""Weightless tests of hooks, ablations, patching and metrics on a constructed hooked module."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from lm_interp.machinery.ablation import Reference, Site, head_sites, run_ablated
from lm_interp.machinery.hooks import (
    activations_at,
    axes,
    check_hook_names,
    hook_kind,
    hook_name,
    run_with_cache,
)
from lm_interp.machinery.metrics import ioi_metric, logit_diff
from lm_interp.machinery.patching import activation_patching
from lm_interp.models.loading import ModelNotAvailableError, load_model
from lm_interp.models.tokenizer import TokenBatch

torch.set_num_threads(1)


class ToyHeads(HookedRootModule):
    """Two 'heads' per position: z[b, p, h] = embedding[token] * scale[h]; output = sum of heads -> logits.

    Head 0 reads the token itself, head 1 its double; the logit of vocabulary item v is
    ``sum_h z[..., h, :] @ unembed[:, v]`` plus an MLP-like term from ``mlp.hook_post``.
    """

    def __init__(self, vocab: int = 7, d: int = 3) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.embed = nn.Parameter(torch.randn(vocab, d, generator=gen))
        self.unembed = nn.Parameter(torch.randn(d, vocab, generator=gen))
        self.cfg = SimpleNamespace(n_layers=1, n_heads=2)
        self.hook_resid = HookPoint()
        self.hook_z = HookPoint()
        self.hook_post = HookPoint()
        self.setup()
        # TransformerLens-style names for the three hook points
        self.mod_dict = {"blocks.0.hook_resid_pre": self.hook_resid, "blocks.0.attn.hook_z": self.hook_z,
                         "blocks.0.mlp.hook_post": self.hook_post}
        self.hook_dict = dict(self.mod_dict)
        for name, hp in self.hook_dict.items():
            hp.name = name

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        resid = self.hook_resid(self.embed[tokens])                      # [b, p, d]
        z = self.hook_z(torch.stack([resid, 2 * resid], dim=2))          # [b, p, 2, d]
        post = self.hook_post(torch.relu(resid))                         # [b, p, d]
        return (z.sum(2) + post) @ self.unembed                          # [b, p, vocab]


@pytest.fixture()
def toy():
    return ToyHeads()


def _batch(rows: list[list[int]]) -> TokenBatch:
    width = max(len(r) for r in rows)
    tokens = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, :len(r)] = torch.tensor(r)
    return TokenBatch(tokens, torch.tensor([len(r) for r in rows]))


def test_hook_names_and_axes():
    assert hook_name("z", 3) == "blocks.3.attn.hook_z" and hook_kind("blocks.3.attn.hook_z") == "z"
    assert hook_name("mlp_post", 0) == "blocks.0.mlp.hook_post" and hook_kind("hook_embed") == "other"
    assert axes("blocks.1.attn.hook_pattern") == (2, 1) and axes("blocks.1.hook_resid_post") == (1, None)
    with pytest.raises(ValueError, match="unknown hook kind"):
        hook_name("resid", 0)
    with pytest.raises(ValueError, match="non-negative"):
        hook_name("z", -1)


def test_unknown_hook_names_are_reported_with_suggestions(toy):
    with pytest.raises(ValueError, match="blocks.0.attn.hook_z"):
        check_hook_names(toy, ["blocks.0.attn.hook_zz"])
    with pytest.raises(ValueError, match="no head axis"):
        Site("blocks.0.hook_resid_pre", head=0)
    with pytest.raises(ValueError, match="neurons"):
        Site("blocks.0.attn.hook_z", neuron=1)


def test_run_with_cache_and_positions(toy):
    batch = _batch([[1, 2, 3], [4, 5]])
    logits, cache, _ = run_with_cache(toy, batch, ["blocks.0.attn.hook_z"])
    assert logits.shape == (2, 3, 7) and cache["blocks.0.attn.hook_z"].shape == (2, 3, 2, 3)
    assert torch.allclose(cache["blocks.0.attn.hook_z"][:, :, 1], 2 * cache["blocks.0.attn.hook_z"][:, :, 0])


def test_zero_ablation_of_one_head_matches_hand_computation(toy):
    batch = _batch([[1, 2, 3], [4, 5, 6]])
    out = run_ablated(toy, batch, [Site("blocks.0.attn.hook_z", head=1)], "zero")
    resid = toy.embed[batch.tokens]
    expected = (resid + torch.relu(resid)) @ toy.unembed  # head 1 (2 * resid) removed
    assert torch.allclose(out, expected, atol=1e-6)


def test_mean_ablation_uses_masked_per_position_means(toy):
    ref = _batch([[1, 2, 3], [4, 5]])  # the second row is padded at position 2
    reference = Reference(toy, ref, ["blocks.0.hook_resid_pre"])
    mean = reference.mean("blocks.0.hook_resid_pre")
    emb = toy.embed.detach()
    assert torch.allclose(mean[0, 0], (emb[1] + emb[4]) / 2) and torch.allclose(mean[0, 2], emb[3])
    overall = reference.mean("blocks.0.hook_resid_pre", per_position=False)
    assert torch.allclose(overall[0, 0], emb[[1, 2, 3, 4, 5]].mean(0))
    batch = _batch([[6, 6, 6, 6]])  # longer than any reference prompt: position 3 gets the overall mean
    out = run_ablated(toy, batch, [Site("blocks.0.hook_resid_pre")], "mean", reference)
    resid = torch.cat([mean[0], overall[0]])[None]
    expected = (3 * resid + torch.relu(resid)) @ toy.unembed
    assert torch.allclose(out, expected, atol=1e-6)


def test_resample_ablation_takes_one_reference_row_per_input(toy):
    ref = _batch([[1, 2], [3, 4], [5, 6]])
    reference = Reference(toy, ref, ["blocks.0.attn.hook_z"])
    batch = _batch([[0, 0], [0, 0], [0, 0], [0, 0]])
    site = Site("blocks.0.attn.hook_z", head=0, position=1)
    out = run_ablated(toy, batch, [site], "resample", reference, seed=5)
    rows = reference.sample_rows(4, seed=5)
    resid = toy.embed[batch.tokens].clone()
    z = torch.stack([resid, 2 * resid], dim=2)
    z[:, 1, 0] = toy.embed[ref.tokens[rows, 1]]
    expected = (z.sum(2) + torch.relu(resid)) @ toy.unembed
    assert torch.allclose(out, expected, atol=1e-6)
    with pytest.raises(ValueError, match="needs a Reference"):
        run_ablated(toy, batch, [site], "mean")
    with pytest.raises(ValueError, match="unknown ablation"):
        run_ablated(toy, batch, [site], "gaussian", reference)


def test_head_sites_cover_every_head(toy):
    assert [str(s) for s in head_sites(toy)] == ["blocks.0.attn.hook_z[head=0]", "blocks.0.attn.hook_z[head=1]"]


def test_activation_patching_restores_and_localises(toy):
    clean, corrupted = _batch([[1, 2, 3], [4, 5, 6]]), _batch([[1, 2, 0], [4, 5, 0]])
    good, bad = torch.tensor([1, 2]), torch.tensor([3, 4])

    def metric(logits):
        return logit_diff(logits, clean.lengths, good, bad).mean()

    sites = [Site("blocks.0.hook_resid_pre"), Site("blocks.0.hook_resid_pre", position=0),
             Site("blocks.0.attn.hook_z", head=0, position=2)]
    result = activation_patching(toy, clean, corrupted, sites, metric)
    norm = result.normalised
    assert norm[sites[0]] == pytest.approx(1.0)          # the whole residual restores everything
    assert norm[sites[1]] == pytest.approx(0.0, abs=1e-6)  # an unchanged position restores nothing
    assert 0.0 < abs(norm[sites[2]]) and result.table()[0]["site"] == "blocks.0.hook_resid_pre"
    noised = activation_patching(toy, clean, corrupted, sites[:1], metric, direction="noise")
    assert noised.patched[sites[0]] == pytest.approx(noised.corrupted)
    with pytest.raises(ValueError, match="position-aligned"):
        activation_patching(toy, clean, _batch([[1, 2], [3, 4]]), sites, metric)


def test_ioi_metric_reads_the_last_real_token():
    logits = torch.zeros(2, 3, 5)
    logits[0, 2, 1], logits[0, 2, 2] = 3.0, 1.0   # row 0 has length 3
    logits[1, 1, 1], logits[1, 1, 2] = -1.0, 1.0  # row 1 has length 2 (position 2 is padding)
    diff = ioi_metric(logits, torch.tensor([3, 2]), torch.tensor([1, 1]), torch.tensor([2, 2]))
    assert diff.tolist() == [2.0, -2.0]


def test_activations_at_needs_valid_positions(toy):
    with pytest.raises(ValueError, match="texts need a LoadedLM"):
        activations_at(toy, ["a b"], ["blocks.0.hook_resid_pre"])


# ---------------------------------------------------------------------------------- loader errors

def test_bad_specs_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="non-empty string"):
        load_model("")
    with pytest.raises(ValueError, match="looks like a path"):
        load_model("./no/such/checkpoint")
    (tmp_path / "ckpt").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        load_model(str(tmp_path / "ckpt"))


def test_uncached_hub_name_offline_fails_fast_and_names_the_offline_tiers(monkeypatch):
    import socket

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    attempts = []  # "fails fast" means: no connection is even tried (no retries, no timeouts to wait out)

    def no_network(self, address, *args):
        attempts.append(address)
        raise OSError(f"test: network access to {address} attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    with pytest.raises(ModelNotAvailableError, match="offline") as err:
        load_model("solvedlens-no-such-org/no-such-model-xyz")
    assert attempts == []
    assert "tiny" in str(err.value) and "smollm2" in str(err.value) and "offline" in str(err.value)
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_checkpoint_without_tokenizer_or_with_a_foreign_one(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from lm_interp.models.tokenizer import train_word_tokenizer

    folder = tmp_path / "ckpt"
    GPT2LMHeadModel(GPT2Config(vocab_size=6, n_positions=8, n_embd=8, n_layer=1, n_head=2)).save_pretrained(folder)
    with pytest.raises(ValueError, match="save the tokenizer"):
        load_model(str(folder))
    train_word_tokenizer(["one two three four five six seven eight nine"], folder)  # 13 tokens > vocab 6
    with pytest.raises(ValueError, match="do not belong together"):
        load_model(str(folder))
