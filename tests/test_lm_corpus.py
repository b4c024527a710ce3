"""Weightless tests of the LM corpus: the world, sentences, held-out splits, prompts, tokenizer."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from lm_interp.models import corpus as C
from lm_interp.models.tokenizer import encode, train_word_tokenizer, unknown_words
from lm_interp.models.world import RELATIONS, make_world


@pytest.fixture(scope="module")
def world():
    return make_world(0)


def test_world_is_deterministic_and_consistent(world):
    assert make_world(0) == world
    assert make_world(1).landmark_city != world.landmark_city
    assert len(world.countries) == 6 and len(world.cities) == 18 and len(world.landmarks) == 36
    for country in world.countries:
        assert sum(c == country for c in world.city_country.values()) == 3
    for lm, city in world.landmark_city.items():  # the transitive chain is stated consistently
        assert world.object_of(lm, "country") == world.city_country[city] == world.country_of(lm)
    for person, attrs in world.persons.items():  # married_to is symmetric
        assert world.persons[attrs["spouse"]]["spouse"] == person
        assert world.object_of(attrs["spouse"], "spouse") == person


def test_every_relation_has_disjoint_train_and_heldout_templates():
    for rel in RELATIONS.values():
        assert len(rel.train_templates) >= 2 and len(rel.heldout_templates) >= 1
        assert not set(rel.train_templates) & set(rel.heldout_templates)
        assert all("{s}" in t for t in rel.templates("all"))
    with pytest.raises(ValueError, match="unknown split"):
        RELATIONS["city"].templates("test")


def test_neighbours_share_objects(world):
    fact = world.facts_of(relation="city")[0]
    neighbours = world.neighbours(fact)
    assert neighbours and fact.subject not in neighbours
    assert all(world.object_of(n, "city") == fact.object for n in neighbours)


def test_sentence_stream_is_deterministic_and_mixed(world):
    first = list(itertools.islice(C.sentences(world, seed=3), 1500))
    assert first == list(itertools.islice(C.sentences(world, seed=3), 1500))
    assert first != list(itertools.islice(C.sentences(world, seed=4), 1500))
    text = " ".join(first)
    assert "[" in text and "=" in text and " gave " in text and "city of" in text


def _template_regex(template: str) -> re.Pattern:
    """A training sentence made from `template`: any subject, then the template's words, then the object."""
    head, tail = template.split("{s}")
    return re.compile("^" + re.escape(C._capitalise(head)) + ".+" + re.escape(tail) + " ")


def test_training_text_never_uses_heldout_templates(world):
    train = list(itertools.islice(C.sentences(world, seed=0, mix={"fact": 1.0}), 4000))
    for rel in RELATIONS.values():
        for template in rel.heldout_templates:
            pattern = _template_regex(template)
            assert not any(pattern.match(s) for s in train), template
    ioi = list(itertools.islice(C.sentences(world, seed=0, mix={"ioi": 1.0}), 2000))
    held = C.heldout_name_pairs()
    for s in ioi:
        names = frozenset(w.strip(".,") for w in s.split() if w.strip(".,") in C.IOI_NAMES)
        assert len(names) == 2 and names not in held, s


def test_heldout_ioi_templates_are_not_training_templates():
    assert not set(C.IOI_TEMPLATES_HELDOUT) & set(C.IOI_TEMPLATES_TRAIN)
    rng = random.Random(0)
    train = {C.ioi_sentence(rng, "train").rsplit(" ", 1)[0] for _ in range(500)}
    for p in C.ioi_prompts(60, "heldout"):
        assert p.text not in train


def test_ioi_prompts_structure():
    prompts = C.ioi_prompts(24, "heldout", seed=1)
    assert prompts == C.ioi_prompts(24, "heldout", seed=1)
    assert [p.order for p in prompts[:4]] == ["ABBA", "BABA", "ABBA", "BABA"]
    held = C.heldout_name_pairs()
    for p in prompts:
        assert p.io != p.s and {p.io, p.s} == set(p.names) and p.s2 == p.s
        assert frozenset(p.names) in held and p.template.startswith("heldout")
        assert p.text.endswith(" to") and p.text.count(p.s) == 2 and p.text.count(p.io) == 1
        assert (p.names[0] == p.io) == (p.order == "ABBA")
    with pytest.raises(ValueError, match="unknown IOI template"):
        C.ioi_prompts(2, "train", templates=["heldout0"])


def test_ioi_corruptions_keep_positions_and_answers():
    prompts = C.ioi_prompts(12, "train", seed=2)
    abc = C.ioi_corrupt(prompts, "abc", seed=0)
    for p, q in zip(prompts, abc):
        assert q.s2 not in p.names and (q.io, q.s) == (p.io, p.s) and q.corruption == "abc"
        assert len(q.text.split()) == len(p.text.split()) and q.text.count(p.s) == 1
    for p, q in zip(prompts, C.ioi_corrupt(prompts, "abc_all", seed=0)):
        assert len(q.text.split()) == len(p.text.split()) and (q.io, q.s) == (p.io, p.s)
    for p, q in zip(prompts, C.ioi_corrupt(prompts, "other_template", seed=0)):
        assert q.template != p.template and set(q.names) == set(p.names) and q.io == p.io
    with pytest.raises(ValueError, match="unknown IOI corruption"):
        C.ioi_corrupt(prompts, "swap")


def test_fact_prompts_for_later_experiments(world):
    held = C.fact_prompts(world, "heldout")
    assert {p.relation for p in held} == set(RELATIONS)
    assert all(p.split == "heldout" and p.kind == "fact" for p in held)
    assert len(held) == sum(len(RELATIONS[f.relation].heldout_templates) for f in world.facts)
    fact = world.facts_of(relation="city")[0]
    assert {p.target for p in C.neighbourhood_prompts(world, fact)} == {fact.target}
    new_city = next(c for c in world.cities if world.city_country[c] != world.city_country[fact.object])
    implied = C.implication_prompts(world, fact, new_object=new_city)
    assert implied and {p.target for p in implied} == {world.city_country[new_city]}
    spouse = world.facts_of(relation="spouse")[0]
    reverse = C.implication_prompts(world, spouse)
    assert {p.target for p in reverse} == {spouse.subject.split()[0]} and reverse[0].subject == spouse.object
    essence = C.essence_prompts(world, [fact.subject])[0]
    assert essence.text.endswith(" is a") and essence.target == world.essence(fact.subject)
    loud = C.with_prefix(C.neighbourhood_prompts(world, fact)[0], C.distractor_sentences(fact.subject)[0])
    assert loud.kind == "distractor" and loud.text.startswith(loud.prefix) and fact.subject.split()[-1] in loud.prefix
    with pytest.raises(ValueError, match="unknown relations"):
        C.fact_prompts(world, "train", ["capital"])


def test_word_tokenizer_round_trip(tmp_path, world):
    texts = list(itertools.islice(C.sentences(world, seed=0), 20000))
    tok = train_word_tokenizer(texts, tmp_path / "tok")
    fact = world.facts_of(relation="city")[0]
    held = ([p.text for p in C.fact_prompts(world, "heldout")] + [p.text for p in C.ioi_prompts(60, "heldout")]
            + C.distractor_sentences(fact.subject) + [p.text for p in C.implication_prompts(world, fact)])
    assert unknown_words(tok, held) == set()  # held-out templates recombine words seen in training
    assert tok.bos_token == "<bos>" and tok.pad_token_id == 0
    sample = texts[:50] + [p.text for p in C.ioi_prompts(10, "heldout")]
    for text in sample:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids
        assert tok(tok.decode(ids), add_special_tokens=False)["input_ids"] == ids
    assert tok.decode(tok("Then, Mary went home.", add_special_tokens=False)["input_ids"]) == "Then, Mary went home."
    assert unknown_words(tok, ["Mary zyxxy"]) == {"zyxxy"}
    batch = encode(tok, ["Mary went", "When Mary and John went"], prepend_bos=True)
    assert batch.lengths.tolist() == [3, 6] and batch.tokens[0, 0] == tok.bos_token_id
    assert batch.tokens[0, 3:].eq(tok.pad_token_id).all() and batch.last_positions.tolist() == [2, 5]
    with pytest.raises(ValueError, match="list of texts"):
        encode(tok, "Mary", prepend_bos=True)
