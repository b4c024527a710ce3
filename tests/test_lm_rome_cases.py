"""Real-fact edit cases: landmarks from two sources (transitive), couples and antonyms (symmetric)."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from lm_interp.editing.cases import interleave_relations
from lm_interp.editing.real_cases import (
    check_subject_slot,
    landmark_table,
    load_real_facts,
    real_cases,
    symmetric_cases,
)
from lm_interp.models.real_facts import REAL_LANDMARKS

ANTONYM_TEMPLATES = {"fact": "The opposite of {} is", "paraphrases": ["The antonym of {} is"],
                     "reverse": ["The opposite of {} is", "The antonym of {} is"], "loud": ["The word {} is short."]}


def test_antonym_cases_have_correct_symmetric_probes():
    pairs = [["hot", "cold"], ["big", "small"], ["wet", "dry"], ["fast", "slow"]]
    partner = {a: b for a, b in pairs} | {b: a for a, b in pairs}
    cases = symmetric_cases(pairs, "antonym", ANTONYM_TEMPLATES, random.Random(0), n_neighbours=3)
    assert [c.request.subject for c in cases] == ["hot", "big", "wet", "fast", "cold", "small", "dry", "slow"]
    for c in cases:
        r = c.request
        s, new = r.subject, r.target_new
        assert c.case_id.startswith("real-antonym-") and c.relation == "antonym"
        assert r.prompt == f"The opposite of {s} is" and r.target_true == partner[s]
        assert new not in (s, partner[s]) and new in partner
        assert c.implication_kind == "symmetric"
        # after s -> new, "the opposite of new" should be s, not new's own antonym
        assert [(p.prompt, p.good, p.bad) for p in c.implications] == [
            (f"The opposite of {new} is", s, partner[new]), (f"The antonym of {new} is", s, partner[new])]
        assert c.paraphrases == [f"The antonym of {s} is"] and c.loud_prefix == f"The word {s} is short."
        assert len(c.neighbourhood) == 3
        for prompt, own in c.neighbourhood:  # other words, with their own antonym, never the new object
            word = prompt.removeprefix("The opposite of ").removesuffix(" is")
            assert word not in (s, partner[s], new) and own == partner[word] and own != new
        groups = c.probes()
        assert groups["implication_symmetric"] == c.implications
        assert groups["nplus"][0].prompt.startswith(f"The opposite of {s} is {new}. The opposite of ")


def test_symmetric_cases_reject_bad_pairs():
    rng = random.Random(0)
    with pytest.raises(ValueError, match="'hot' occurs in two pairs"):
        symmetric_cases([["hot", "cold"], ["hot", "warm"], ["a", "b"]], "antonym", ANTONYM_TEMPLATES, rng)
    with pytest.raises(ValueError, match="not two different names"):
        symmetric_cases([["hot", "hot"], ["a", "b"]], "antonym", ANTONYM_TEMPLATES, rng)
    with pytest.raises(ValueError, match="need at least two pairs"):
        symmetric_cases([["hot", "cold"]], "antonym", ANTONYM_TEMPLATES, rng)
    # "on" would be found inside "antonym": the edit could not locate its subject
    bad = dict(ANTONYM_TEMPLATES, fact="The antonym of {} is")
    with pytest.raises(ValueError, match="'on' occurs before its slot"):
        symmetric_cases([["on", "off"], ["hot", "cold"]], "antonym", bad, rng)
    assert check_subject_slot("The opposite of {} is", "on") == "The opposite of on is"


def test_landmarks_from_both_sources_with_countries():
    data = load_real_facts()
    landmark_city, city_country = landmark_table(data)
    assert all(landmark_city[k] == v for k, v in REAL_LANDMARKS.items())  # the probe demo's facts, unchanged
    assert len(landmark_city) == len(REAL_LANDMARKS) + len(data["landmarks"])
    assert landmark_city["the Taj Mahal"] == "Agra" and city_country["Agra"] == "India"
    for name, city, _ in data["landmarks"]:
        assert city.lower() not in name.lower()  # no landmark named after its city
    with pytest.raises(ValueError, match="has two countries"):
        landmark_table({"landmarks": [["the Bridge X", "Paris", "Spain"]]})
    with pytest.raises(ValueError, match="listed twice"):
        landmark_table({"landmarks": [["the Louvre", "Paris", "France"]]})
    with pytest.raises(ValueError, match="is not \\[landmark, city, country\\]"):
        landmark_table({"landmarks": [["the Bridge X", "Paris"]]})


def test_real_cases_cover_three_relations_and_are_deterministic():
    data = load_real_facts()
    cases = real_cases(seed=0)
    by_rel = Counter(c.relation for c in cases)
    assert by_rel == {"city": len(REAL_LANDMARKS) + len(data["landmarks"]), "spouse": 2 * len(data["couples"]),
                      "antonym": 2 * len(data["antonyms"])}
    assert len({c.case_id for c in cases}) == len(cases)
    assert [c.to_dict() for c in real_cases(seed=0)] == [c.to_dict() for c in cases]
    _, city_country = landmark_table(data)
    taj = next(c for c in cases if c.request.subject == "the Taj Mahal")
    assert taj.implication_kind == "transitive" and taj.request.target_true == "Agra"
    assert {(p.good, p.bad) for p in taj.implications} == {(city_country[taj.request.target_new], "India")}
    assert city_country[taj.request.target_new] != "India" and taj.request.target_new in data["new_cities"]
    mixed = interleave_relations(cases)
    assert [c.relation for c in mixed[:3]] == ["city", "spouse", "antonym"]


def test_real_fact_file_errors_name_the_file(tmp_path):
    path = tmp_path / "facts.json"
    path.write_text(json.dumps({"templates": {}, "new_cities": []}))
    with pytest.raises(ValueError, match="lacks \\['couples', 'templates.city'"):
        load_real_facts(path)
    path.write_text("{")
    with pytest.raises(ValueError, match="cannot read the real-fact file"):
        load_real_facts(path)


@pytest.mark.slow
def test_smollm2_knows_enough_candidates_for_the_recorded_run():
    """The recorded run (--n-edits 72) needs >= 60 known edits, >= 20 symmetric and >= 30 transitive."""
    import torch

    from lm_interp import load_model
    from lm_interp.editing.cases import keep_known

    torch.set_num_threads(1)
    lm = load_model("smollm2")
    kept, record = keep_known(lm, interleave_relations(real_cases(seed=0)))
    chosen = Counter(c.implication_kind for c in kept[:72])
    assert len(kept[:72]) >= 60 and chosen["symmetric"] >= 20 and chosen["transitive"] >= 30
    assert len(record) == len(real_cases(seed=0))
