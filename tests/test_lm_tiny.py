"""Tests on the committed tiny model (data/lm/tiny): targets, hooks, ablations, patching, probes, re-training."""

from __future__ import annotations

import json
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

from lm_interp import load_model  # noqa: E402
from lm_interp.machinery.ablation import Reference, Site, head_sites, run_ablated  # noqa: E402
from lm_interp.machinery.hooks import hook_name, run_with_cache  # noqa: E402
from lm_interp.machinery.metrics import (  # noqa: E402
    answer_ids,
    evaluate_facts,
    evaluate_ioi,
    ioi_metric,
)
from lm_interp.machinery.patching import activation_patching, ioi_metric_fn  # noqa: E402
from lm_interp.models import corpus as C  # noqa: E402
from lm_interp.models.loading import TINY_DIR  # noqa: E402
from lm_interp.models.tokenizer import encode, unknown_words  # noqa: E402
from lm_interp.models.world import make_world  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny")


@pytest.fixture(scope="module")
def world(tiny):
    return make_world(tiny.info["recipe"]["config"]["world_seed"])


def test_committed_checkpoint_is_small_and_documented():
    files = {p.name: p.stat().st_size for p in TINY_DIR.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "recipe.json"} <= set(files)
    assert sum(files.values()) < 8 * 2**20
    recipe = json.loads((TINY_DIR / "recipe.json").read_text())
    assert {"config", "command", "metrics", "train_seconds", "n_params"} <= set(recipe)
    assert recipe["config"]["seed"] == 0 and "train_lm.py" in recipe["command"]


def test_loads_with_its_tokenizer_and_matches_the_raw_hf_model(tiny):
    model, tokenizer = tiny
    assert tiny.prepend_bos and tokenizer.bos_token == "<bos>" and not tiny.processed
    batch = encode(tokenizer, ["When Mary and John went to the store, John gave a drink to"], True)
    with torch.no_grad():
        assert torch.allclose(model(batch.tokens), tiny.hf_model(batch.tokens).logits, atol=1e-4)


def test_heldout_prompts_use_only_known_words(tiny, world):
    texts = [p.text for p in C.ioi_prompts(60, "heldout")] + [p.text for p in C.fact_prompts(world, "heldout")]
    assert unknown_words(tiny.tokenizer, texts) == set()


def test_ioi_accuracy_on_heldout_templates_and_pairs(tiny):
    scores = evaluate_ioi(tiny.model, tiny.tokenizer, C.ioi_prompts(96, "heldout", seed=7), tiny.prepend_bos)
    assert scores["accuracy"] >= 0.95 and scores["logit_diff"] > 1.0


def test_fact_recall_on_heldout_paraphrases(tiny, world):
    scores = evaluate_facts(tiny.model, tiny.tokenizer, C.fact_prompts(world, "heldout"), tiny.prepend_bos)
    assert scores["recall"] >= 0.95


def test_hook_shapes(tiny):
    cfg = tiny.model.cfg
    names = [hook_name(k, 1) for k in ("resid_pre", "resid_post", "z", "pattern", "mlp_post", "result", "attn_out")]
    logits, cache, batch = run_with_cache(tiny, ["Then, Mary and John went to the park.", "Mary went"], names)
    b, p = batch.tokens.shape
    assert logits.shape == (b, p, cfg.d_vocab)
    assert cache[names[0]].shape == cache[names[1]].shape == (b, p, cfg.d_model)
    assert cache[names[2]].shape == (b, p, cfg.n_heads, cfg.d_head)
    assert cache[names[3]].shape == (b, cfg.n_heads, p, p)
    assert cache[names[4]].shape == (b, p, cfg.d_mlp)
    assert cache[names[5]].shape == (b, p, cfg.n_heads, cfg.d_model)
    # per-head outputs add up to the attention output (up to the output bias)
    bias = tiny.hf_model.transformer.h[1].attn.c_proj.bias
    assert torch.allclose(cache[names[5]].sum(2) + bias, cache[names[6]], atol=1e-4)
    assert torch.allclose(cache[names[3]].sum(-1), torch.ones(b, cfg.n_heads, p), atol=1e-5)


def test_mean_ablating_every_head_hurts_ioi_more_than_one_head(tiny):
    prompts = C.ioi_prompts(32, "heldout", seed=3)
    batch = encode(tiny.tokenizer, [p.text for p in prompts], True)
    ref_batch = encode(tiny.tokenizer, [p.text for p in C.ioi_corrupt(prompts, "abc_all", seed=1)], True)
    io, s = answer_ids(tiny.tokenizer, [p.io for p in prompts]), answer_ids(tiny.tokenizer, [p.s for p in prompts])
    sites = head_sites(tiny)
    reference = Reference(tiny, ref_batch, sorted({x.hook for x in sites}))
    with torch.no_grad():
        clean = ioi_metric(tiny.model(batch.tokens), batch.lengths, io, s).mean()
    one = ioi_metric(run_ablated(tiny, batch, sites[:1], "mean", reference), batch.lengths, io, s).mean()
    every = ioi_metric(run_ablated(tiny, batch, sites, "mean", reference), batch.lengths, io, s).mean()
    resampled = ioi_metric(run_ablated(tiny, batch, sites, "resample", reference), batch.lengths, io, s).mean()
    assert every < clean - 1.0 and every < one and resampled < clean - 1.0


def test_patching_abc_heads_gives_a_finite_score_per_head(tiny):
    prompts = C.ioi_prompts(16, "heldout", seed=4)
    clean = encode(tiny.tokenizer, [p.text for p in prompts], True)
    corrupted = encode(tiny.tokenizer, [p.text for p in C.ioi_corrupt(prompts, "abc")], True)
    io, s = answer_ids(tiny.tokenizer, [p.io for p in prompts]), answer_ids(tiny.tokenizer, [p.s for p in prompts])
    sites = head_sites(tiny) + [Site(hook_name("resid_post", tiny.model.cfg.n_layers - 1))]
    result = activation_patching(tiny, clean, corrupted, sites, ioi_metric_fn(clean, io, s))
    assert result.clean > result.corrupted
    norm = result.normalised
    assert norm[sites[-1]] == pytest.approx(1.0, abs=1e-4)
    assert all(torch.isfinite(torch.tensor(v)) for v in norm.values())


def test_processed_bridge_keeps_predictions(tiny):
    processed = load_model("tiny", processed=True)
    batch = encode(tiny.tokenizer, ["Then, Mary and John went to the park. John gave a book to"], True)
    with torch.no_grad():
        raw = tiny.model(batch.tokens).log_softmax(-1)
        folded = processed.model(batch.tokens).log_softmax(-1)
    assert processed.processed and torch.allclose(raw, folded, atol=1e-3)


def test_raw_weight_edits_reach_the_bridge():
    lm = load_model("tiny")  # a private copy: the edit must not leak into other tests
    batch = encode(lm.tokenizer, ["Mary went to the"], True)
    with torch.no_grad():
        before = lm.model(batch.tokens).clone()
        lm.hf_model.transformer.h[1].mlp.c_proj.weight.mul_(0.0)
        after = lm.model(batch.tokens)
    assert not torch.allclose(before, after)


def test_probe_demo_pipeline_on_tiny(tiny, world):
    from lm_interp.machinery.probing import (
        fit_layer_probes,
        subject_prompts,
        tiny_probe_contexts,
    )

    prompts = subject_prompts(world, tiny_probe_contexts()[:4])
    rows = fit_layer_probes(tiny, prompts, layers=[0, tiny.model.cfg.n_layers - 1], n_boot=0)
    assert [r.layer for r in rows] == ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post",
                                       f"blocks.{tiny.model.cfg.n_layers - 1}.hook_resid_post"]
    assert all(0.0 <= r.accuracy <= 1.0 for r in rows) and rows[0].n_test > 0


def test_short_retrain(tmp_path):
    from lm_interp.train import LMTrainConfig, train_tiny_lm

    out = tmp_path / "tiny"
    train_tiny_lm(LMTrainConfig(steps=3, n_examples=64, eval_every=0, threads=1), out, progress=False)
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["config"]["steps"] == 3 and "ioi_heldout" in recipe["metrics"]
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    lm = load_model(str(out))  # tier 3: a local checkpoint folder
    assert lm.prepend_bos and lm.model.cfg.n_layers == 4


def test_corpus_still_reproduces_the_committed_tokenizer(tmp_path, tiny):
    """Guards the checkpoint's reproducibility: a change to the training stream changes the vocabulary counts."""
    import itertools

    from lm_interp.models.tokenizer import train_word_tokenizer

    cfg = tiny.info["recipe"]["config"]
    texts = itertools.islice(C.sentences(make_world(cfg["world_seed"]), cfg["seed"], cfg["mix"], "train"),
                             cfg["tokenizer_sentences"])
    train_word_tokenizer(texts, tmp_path)
    assert (tmp_path / "tokenizer.json").read_bytes() == (TINY_DIR / "tokenizer.json").read_bytes()
