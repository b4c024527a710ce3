"""ROME and editing baselines: the closed form on a linear memory, metric bookkeeping, edits of the tiny model."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

from lm_interp import load_model  # noqa: E402
from lm_interp.editing.cases import EditCase, Probe, keep_known, tiny_cases  # noqa: E402
from lm_interp.editing.evaluation import (  # noqa: E402
    aggregate,
    case_metrics,
    kl_nats,
    markdown_table,
    pair_metrics,
    run_probes,
)
from lm_interp.editing.finetune import FTConfig, finetune_edit  # noqa: E402
from lm_interp.editing.rome import ROMEConfig, ROMEEditor, rank_one_update  # noqa: E402
from lm_interp.editing.weights import EditRequest, MLPProjection, score_targets  # noqa: E402
from lm_interp.models.world import make_world  # noqa: E402

# ------------------------------------------------------------------------------ the closed form

def _memory(seed: int = 0, d_in: int = 12, d_out: int = 7):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d_out, d_in, generator=g, dtype=torch.float64)
    A = torch.randn(d_in, 3 * d_in, generator=g, dtype=torch.float64)
    C = A @ A.T / (3 * d_in) + 0.1 * torch.eye(d_in, dtype=torch.float64)
    k = torch.randn(d_in, generator=g, dtype=torch.float64)
    v = torch.randn(d_out, generator=g, dtype=torch.float64)
    return W, C, k, v, g


def test_rank_one_update_stores_the_new_association_exactly():
    W, C, k, v, g = _memory()
    W_new = W + rank_one_update(W, k, v, C)
    assert torch.allclose(W_new @ k, v, atol=1e-10)
    # keys orthogonal to k under C^-1 (x^T C^-1 k = 0) keep their values
    u = torch.linalg.solve(C, k)
    for _ in range(5):
        x = torch.randn(len(k), generator=g, dtype=torch.float64)
        x = x - (x @ u) / (u @ u) * u
        assert abs(float(x @ u)) < 1e-10
        assert torch.allclose(W_new @ x, W @ x, atol=1e-10)
    # the update is rank one
    assert torch.linalg.matrix_rank(W_new - W) == 1


def test_rank_one_update_identity_covariance_and_legacy_residual_key():
    W, C, k, v, g = _memory(1)
    W_id = W + rank_one_update(W, k, v, None)
    assert torch.allclose(W_id @ k, v, atol=1e-10)
    x = torch.randn(len(k), generator=g, dtype=torch.float64)
    x = x - (x @ k) / (k @ k) * k  # plain orthogonality when C = I
    assert torch.allclose(W_id @ x, W @ x, atol=1e-10)
    k_bare = k + 0.3 * torch.randn(len(k), generator=g, dtype=torch.float64)
    W_legacy = W + rank_one_update(W, k, v, C, residual_key=k_bare)
    assert torch.allclose(W_legacy @ k_bare, v, atol=1e-10)  # legacy ROME stores v* at the bare key
    assert not torch.allclose(W_legacy @ k, v, atol=1e-6)
    with pytest.raises(ValueError, match="degenerate"):
        rank_one_update(W, torch.zeros_like(k), v, C)


# ----------------------------------------------------------------------------- metric bookkeeping

def test_pair_metrics_and_kl_on_hand_made_probabilities():
    m = pair_metrics([0.9, 0.2, 0.5], [0.1, 0.4, 0.5])
    assert m["n"] == 3 and m["score"] == pytest.approx(1 / 3)  # ties do not count
    assert m["magnitude"] == pytest.approx((0.8 - 0.2 + 0.0) / 3)
    assert m["p_good"] == pytest.approx(1.6 / 3) and m["p_bad"] == pytest.approx(1.0 / 3)
    assert math.isnan(pair_metrics([], [])["score"])
    with pytest.raises(ValueError, match=r"\(1,\) good vs \(2,\) bad probabilities"):
        pair_metrics([0.1], [0.1, 0.2])
    p = torch.tensor([[0.5, 0.5], [0.9, 0.1]]).log()
    q = torch.tensor([[0.5, 0.5], [0.5, 0.5]]).log()
    kl = kl_nats(p, q)
    assert kl[0] == pytest.approx(0.0, abs=1e-7)
    assert kl[1] == pytest.approx(0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5), rel=1e-5)


def test_case_metrics_and_aggregate_bookkeeping():
    lp = torch.tensor([[0.5, 0.5]]).log()
    before = {"efficacy": {"p_good": [0.1], "p_bad": [0.8]},
              "neighbourhood": {"p_good": [0.7, 0.6], "p_bad": [0.1, 0.2]},
              "_first_logprobs": {"neighbourhood": lp.repeat(2, 1)}}
    after = {"efficacy": {"p_good": [0.9], "p_bad": [0.05]},
             "neighbourhood": {"p_good": [0.7, 0.1], "p_bad": [0.1, 0.8]},
             "_first_logprobs": {"neighbourhood": torch.tensor([[0.5, 0.5], [0.9, 0.1]]).log()}}
    m0, m1 = case_metrics(before), case_metrics(before, after)
    assert m0["efficacy"]["score"] == 0.0 and m1["efficacy"]["score"] == 1.0
    assert m0["neighbourhood"]["nkl"] == 0.0
    assert m1["neighbourhood"]["score"] == 0.5
    assert m1["neighbourhood"]["nkl"] == pytest.approx(float(kl_nats(after["_first_logprobs"]["neighbourhood"],
                                                                      lp.repeat(2, 1)).mean()))
    agg = aggregate([m1, case_metrics(before, before)])
    assert agg["n_edits"] == 2
    assert agg["efficacy"]["score"]["mean"] == 0.5 and agg["neighbourhood"]["score"]["mean"] == 0.75
    table = markdown_table({"unedited": aggregate([m0]), "ROME": agg})
    assert "| Efficacy: P(new) > P(old) | 0.000 | 0.500 |" in table


def test_probe_groups_follow_counterfact_plus():
    case = EditCase("c", "city", EditRequest("The Louvre is located in the city of", "the Louvre", "Rome", "Paris"),
                    ["Where is the Louvre? It is in the city of"], [("The Eiffel Tower is located in the city of",
                                                                     "Paris")],
                    "The Louvre is very famous.", [Probe("The Louvre is in the country of", "Italy", "France")],
                    "transitive")
    g = case.probes()
    assert g["efficacy"] == [Probe("The Louvre is located in the city of", "Rome", "Paris")]
    assert g["nplus"][0].prompt == ("The Louvre is located in the city of Rome. The Eiffel Tower is located in the "
                                    "city of")
    assert g["nplus"][0].good == "Paris" and g["nplus"][0].bad == "Rome"
    assert g["loud_fact"][0].prompt.startswith("The Louvre is very famous. The Eiffel")
    assert g["implication_transitive"][0].good == "Italy"
    assert EditCase.from_dict(json.loads(json.dumps(case.to_dict()))) == case
    with pytest.raises(ValueError, match="does not occur"):
        EditRequest("Paris is nice", "the Louvre", "Rome")


# ------------------------------------------------------------------------ projections and layouts

def test_projection_orientation_for_linear_layout():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=1)).eval()
    proj = MLPProjection(model, 1)
    assert not proj.transposed and proj.W.shape == (16, 24) and proj.name.endswith("down_proj")
    with proj.capture() as store:
        model(torch.tensor([[1, 2, 3]]))
    assert torch.allclose(proj.value_of(store["keys"]), store["outputs"], atol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        MLPProjection(model, 2)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny")  # edits are always restored; tests check it


def test_projection_orientation_for_gpt2_conv1d(tiny):
    proj = MLPProjection(tiny.hf_model, 1)
    assert proj.transposed and proj.W.shape == (128, 512)
    with proj.capture() as store:
        tiny.hf_model(torch.tensor([[1, 5, 6, 7]]))
    assert torch.allclose(proj.value_of(store["keys"]) + proj.bias, store["outputs"], atol=1e-5)


# ------------------------------------------------------------------------------- edits end to end

def test_rome_edit_of_the_tiny_model_succeeds_reaches_the_bridge_and_restores(tiny):
    case = tiny_cases(make_world(0), 1)[0]
    assert keep_known(tiny, [case])[0] == [case]
    r = case.request
    editor = ROMEEditor(tiny, ROMEConfig(layer=1, ridge=0.1, cov_corpus="generated", cov_n_texts=200)).prepare()
    before = score_targets(tiny, [r.prompt], [(r.target_new, r.target_true)]).prob[0]
    assert before[0] < before[1]
    from lm_interp.models.tokenizer import encode

    batch = encode(tiny.tokenizer, [r.prompt], tiny.prepend_bos)
    new_id = tiny.tokenizer(" " + r.target_new, add_special_tokens=False)["input_ids"][0]
    with torch.no_grad():
        bridge_before = tiny.model(batch.tokens)[0, -1]
    w0 = editor.projection.param.detach().clone()
    edit = editor.edit(r)
    try:
        after = score_targets(tiny, [r.prompt], [(r.target_new, r.target_true)]).prob[0]
        assert after[0] > after[1] and after[0] > 0.5
        with torch.no_grad():
            assert int(tiny.model(batch.tokens)[0, -1].argmax()) == new_id  # the bridge sees the raw edit
        assert 0 < edit.info["relative_fro"] and edit.info["layer"] == 1
    finally:
        edit.restore()
    assert torch.equal(editor.projection.param, w0)  # bit-identical
    with torch.no_grad():
        assert torch.equal(tiny.model(batch.tokens)[0, -1], bridge_before)


def test_ft_l_respects_its_bound_and_restores(tiny):
    case = tiny_cases(make_world(0), 2)[1]
    proj = MLPProjection(tiny.hf_model, 1)
    w0 = proj.param.detach().clone()
    edit = finetune_edit(tiny, case.request, FTConfig(layer=1, lr=5e-3, steps=5, linf=1e-3))
    assert 0 < edit.info["delta_max_abs"] <= 1e-3 + 1e-7
    assert all(p.requires_grad for p in tiny.hf_model.parameters())  # gradients switched back on
    edit.restore()
    assert torch.equal(proj.param, w0)


def test_metrics_of_an_unedited_case_are_sane(tiny):
    case = tiny_cases(make_world(0), 1)[0]
    m = case_metrics(run_probes(tiny, case))
    assert m["efficacy"]["score"] == 0.0 and m["neighbourhood"]["score"] == 1.0
    assert set(m) >= {"paraphrase", "nplus", "loud_fact", "implication_transitive"}


def test_errors_are_clear(tiny):
    with pytest.raises(ValueError, match="key_mode"):
        ROMEConfig(key_mode="other")
    with pytest.raises(ValueError, match="out of range"):
        ROMEEditor(tiny, ROMEConfig(layer=9))
    with pytest.raises(ValueError, match="equals target_true"):
        EditRequest("The Amber Bridge is located in the city of", "the Amber Bridge", "Varno", "Varno")


def test_causal_trace_on_the_tiny_model(tiny):
    from lm_interp.machinery.tracing import causal_trace

    case = tiny_cases(make_world(0), 1)[0]
    r = case.request
    tr = causal_trace(tiny, r.prompt, r.subject, r.target_true, n_samples=3)
    grid = torch.tensor(tr["p_restored"])
    assert grid.shape == (4, len(tr["tokens"]))
    assert tr["p_clean"] > tr["p_corrupt"]
    # restoring the last position after the last block gives back the clean run
    assert grid[-1, -1] == pytest.approx(tr["p_clean"], abs=1e-4)


def test_run_writes_json_table_and_pngs(tmp_path):
    from lm_interp.editing.report import read_rome_report
    from lm_interp.editing.run import run_rome

    out = tmp_path / "run"
    run_rome("tiny", out, editors="rome,ft-l", n_edits=2, trace_cases=1, cov_n_texts=100, v_steps=10)
    report = json.loads((out / "summary.json").read_text())
    assert report["n_edits"] == 2 and set(report["summary"]) == {"unedited", "rome", "ft-l"}
    assert "| metric | unedited | ROME | FT-L |" in (out / "table.md").read_text()
    assert (out / "causal_trace.png").stat().st_size > 0 and (out / "probabilities.png").stat().st_size > 0
    assert len(list((out / "edits" / "rome").glob("*.json"))) == 2
    assert read_rome_report(out).to_json() == report
    with pytest.raises(ValueError, match="unknown editors"):
        run_rome("tiny", out, editors="memit")
