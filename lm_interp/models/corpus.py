"""Generated corpus: training sentences and evaluation prompts, deterministic by seed.

Sentence kinds (mixed by `DEFAULT_MIX`):

* ``ioi``: indirect-object sentences ("When Mary and John went to the store, John gave a
  drink to Mary."), ABBA and BABA orders, several templates, single-token names;
* ``fact``: a `World` fact through one of its relation's *training* templates;
* ``distractor``: a subject in an unrelated context ("Nobody talks about the Jade Gate anymore.");
* ``filler``: numbers and counting, bracketed citations, lists, code-like lines, plain
  sentences and repeated sequences (copying), so MLP neurons have varied text to specialise on.

What is held out (never in training; see ``docs/lm.md``): IOI templates in
`IOI_TEMPLATES_HELDOUT` and the name pairs `heldout_name_pairs` (any order); every relation's
``heldout_templates`` (the facts themselves are all trained: recall of an untrained fact is
impossible). Evaluation prompts are small frozen dataclasses (`IOIPrompt`, `FactPrompt`)
carrying everything later experiments need (subject, relation, target, template, split, kind).
"""

from __future__ import annotations

import functools
import itertools
import random
from dataclasses import dataclass, replace
from typing import Iterator, Sequence

from lm_interp.models.world import RELATIONS, Fact, World

IOI_NAMES = ("Mary", "John", "Anna", "Peter", "Laura", "David", "Emma", "Paul", "Sarah", "Mark", "Julia", "James",
             "Kate", "Tom", "Alice", "Daniel", "Rose", "Henry", "Clara", "Simon", "Lucy", "Oscar", "Nina", "Victor",
             "Helen", "Adam", "Grace", "Leo", "Maria", "Ivan")
PLACES = ("store", "garden", "park", "school", "station", "restaurant", "office", "house", "market", "hospital",
          "library", "beach")
OBJECTS = ("drink", "ring", "book", "bone", "bottle", "basketball", "computer", "necklace", "snack", "letter",
           "kite", "cake")

# {A} and {B} are introduced, {S} (one of them) acts, the other one (IO) completes the sentence.
IOI_TEMPLATES_TRAIN = (
    "Then, {A} and {B} went to the {place}. {S} gave a {object} to",
    "When {A} and {B} got a {object} at the {place}, {S} decided to give it to",
    "After {A} and {B} went to the {place}, {S} gave a {object} to",
    "While {A} and {B} were working at the {place}, {S} gave a {object} to",
    "Then, {A} and {B} had a long argument, and afterwards {S} said to",
    "Friends {A} and {B} found a {object} at the {place}. {S} gave it to",
    "When {A} and {B} arrived at the {place}, {S} handed the {object} to",
    "{A} and {B} were at the {place}. {S} passed the {object} to",
    "Afterwards, {A} and {B} went to the {place}. {S} brought a {object} to",
    "The {place} was busy, so {A} and {B} left. {S} gave a {object} to",
)
IOI_TEMPLATES_HELDOUT = (
    "When {A} and {B} went to the {place}, {S} gave a {object} to",
    "Then, {A} and {B} were working at the {place}, and {S} handed a {object} to",
    "After {A} and {B} found a {object} at the {place}, {S} decided to give it to",
)

DISTRACTOR_TEMPLATES_TRAIN = (
    "{s} was in the news again.", "Yesterday I read a long story about {s}.", "Nobody talks about {s} anymore.",
    "Many people like {s}.", "I saw a photo of {s} last year.", "My friend told me about {s}.",
)
DISTRACTOR_TEMPLATES_HELDOUT = ("{s} is very old.", "{s} is very famous.")

DEFAULT_MIX = {"ioi": 0.4, "fact": 0.33, "distractor": 0.07, "filler": 0.2}
HELDOUT_SEED_OFFSET = 1_000_003  # held-out text: same distribution, another random stream

_NOUNS = ("apples", "pears", "plums", "bread", "milk", "eggs", "rice", "tea", "paper", "stones", "boxes", "chairs",
          "lamps", "shoes", "coins", "maps")
_ADJECTIVES = ("small", "large", "old", "new", "cold", "warm", "bright", "dark", "quiet", "busy", "famous", "happy")
_PEOPLE = ("The old man", "A child", "My friend", "The farmer", "Her brother", "The driver", "A neighbour", "Our guest",
           "Many tourists", "Many people", "The class")
_VERBS = ("carried", "painted", "counted", "found", "sold", "bought", "cleaned", "moved", "watched", "opened")
_ADVERBS = ("happily", "slowly", "quickly", "quietly", "again", "every day", "every evening", "for years")


@dataclass(frozen=True)
class IOIPrompt:
    """One IOI prompt: `text` ends just before the indirect object.

    :param io: the correct next name (indirect object); :param s: the subject (repeated name).
    :param s2: the name actually written at the second subject position (`s`, or a third
        name C in an ABC-corrupted prompt); :param order: ``ABBA`` or ``BABA``.
    """

    text: str
    io: str
    s: str
    s2: str
    names: tuple[str, str]
    template: str
    order: str
    place: str
    obj: str
    split: str
    corruption: str = "clean"


@dataclass(frozen=True)
class FactPrompt:
    """One fact prompt: `text` ends just before `target` (the object's first word).

    :param kind: ``fact`` (the subject's own fact), ``neighbourhood`` (another subject with
        the same object), ``essence`` (``{s} is a``), ``distractor`` (a sentence about some
        subject prepended) or ``implication`` (a symmetric or transitive consequence).
    :param prefix: text prepended to the template (distractor / loud-fact probes).
    """

    text: str
    subject: str
    relation: str
    target: str
    template: str
    split: str
    kind: str = "fact"
    prefix: str = ""


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def render(template: str, subject: str) -> str:
    """A relation or distractor template with its subject, sentence-initial letter capitalised."""
    return _capitalise(template.format(s=subject))


def fact_sentence(fact: Fact, template: str) -> str:
    """The training sentence of a fact: ``"{template(subject)} {object}."``."""
    return f"{render(template, fact.subject)} {fact.object}."


# ---------------------------------------------------------------------------------------------- IOI

def heldout_name_pairs(names: Sequence[str] = IOI_NAMES, fraction: float = 0.2, seed: int = 0) -> frozenset:
    """Unordered name pairs that never share an IOI sentence in training (``frozenset`` of frozensets)."""
    pairs = [frozenset(p) for p in itertools.combinations(sorted(names), 2)]
    random.Random(seed).shuffle(pairs)
    return frozenset(pairs[:int(len(pairs) * fraction)])


def _ioi_from(template: str, template_id: str, a: str, b: str, io: str, s2: str, place: str, obj: str,
              split: str, corruption: str = "clean") -> IOIPrompt:
    s = b if io == a else a
    text = template.format(A=a, B=b, S=s2, place=place, object=obj)
    return IOIPrompt(text, io, s, s2, (a, b), template_id, "ABBA" if io == a else "BABA", place, obj, split,
                     corruption)


def ioi_templates(split: str) -> dict[str, str]:
    """Template id -> template for ``train``, ``heldout`` or ``all``."""
    train = {f"train{i}": t for i, t in enumerate(IOI_TEMPLATES_TRAIN)}
    held = {f"heldout{i}": t for i, t in enumerate(IOI_TEMPLATES_HELDOUT)}
    if split == "train":
        return train
    if split == "heldout":
        return held
    if split == "all":
        return {**train, **held}
    raise ValueError(f"unknown split {split!r}; splits: train, heldout, all")


@functools.lru_cache(maxsize=16)
def _name_pairs(names: tuple[str, ...], pair_split: str | None) -> tuple[tuple[str, str], ...]:
    held: frozenset = frozenset()
    if set(names) <= set(IOI_NAMES):  # the held-out pairs of the full list, restricted to `names`
        held = frozenset(p for p in heldout_name_pairs() if p <= set(names))
    pairs = tuple(p for p in itertools.combinations(names, 2)
                  if pair_split is None or (frozenset(p) in held) == (pair_split == "heldout"))
    if not pairs:
        raise ValueError(f"no name pairs left for pair_split {pair_split!r} among {len(names)} names")
    return pairs


def _random_ioi(rng: random.Random, table: dict[str, str], tid: str, pairs: Sequence[tuple[str, str]], abba: bool,
                split: str) -> IOIPrompt:
    a, b = rng.choice(pairs)
    a, b = (a, b) if rng.random() < 0.5 else (b, a)
    io = a if abba else b
    s = b if abba else a
    return _ioi_from(table[tid], tid, a, b, io, s, rng.choice(PLACES), rng.choice(OBJECTS), split)


def ioi_prompts(n: int, split: str = "heldout", seed: int = 0, names: Sequence[str] = IOI_NAMES,
                templates: Sequence[str] | None = None, pair_split: str | None = "default") -> list[IOIPrompt]:
    """`n` IOI prompts: templates in turn, each once ABBA and once BABA, random names, places, objects.

    :param split: template split (``train`` / ``heldout`` / ``all``).
    :param templates: template ids to use (default: all of the split).
    :param pair_split: ``heldout`` draws only held-out name pairs, ``train`` only the others,
        ``None`` any pair; ``"default"`` follows `split` (any pair for ``all``).
    :param names: single-token names to draw from (for a real model, see `single_token_words`).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    table = ioi_templates(split)
    ids = list(templates) if templates is not None else list(table)
    unknown = [t for t in ids if t not in table]
    if unknown or not ids:
        raise ValueError(f"unknown IOI template ids {unknown or ids} for split {split!r}; ids: {list(table)}")
    if pair_split == "default":
        pair_split = split if split in ("train", "heldout") else None
    pairs = _name_pairs(tuple(names), pair_split)
    rng = random.Random(seed)
    return [_random_ioi(rng, table, ids[(i // 2) % len(ids)], pairs, i % 2 == 0, split) for i in range(n)]


def ioi_corrupt(prompts: Sequence[IOIPrompt], kind: str = "abc", seed: int = 0,
                names: Sequence[str] = IOI_NAMES) -> list[IOIPrompt]:
    """Corrupted copies of IOI prompts, position-aligned with them where the kind allows.

    * ``abc``: the second subject occurrence becomes a third name C ("...A and B..., C gave...");
    * ``abc_all``: A, B and S2 all become fresh distinct names (Wang et al.'s p_ABC);
    * ``other_template``: the same names and place/object in another template of the same split.

    The `io` and `s` fields keep the clean prompt's names, so metrics read the clean answer.
    """
    rng = random.Random(seed)
    out = []
    for p in prompts:
        if kind == "abc":
            c = rng.choice([n for n in names if n not in p.names])
            text = ioi_templates("all")[p.template].format(A=p.names[0], B=p.names[1], S=c, place=p.place,
                                                          object=p.obj)
            out.append(replace(p, text=text, s2=c, corruption=kind))
        elif kind == "abc_all":
            a, b, c = rng.sample(list(names), 3)
            text = ioi_templates("all")[p.template].format(A=a, B=b, S=c, place=p.place, object=p.obj)
            out.append(replace(p, text=text, s2=c, corruption=kind))
        elif kind == "other_template":
            table = ioi_templates(p.split if p.split in ("train", "heldout") else "all")
            tid = rng.choice([t for t in table if t != p.template] or [p.template])
            out.append(replace(_ioi_from(table[tid], tid, p.names[0], p.names[1], p.io, p.s, p.place, p.obj,
                                         p.split), corruption=kind))
        else:
            raise ValueError(f"unknown IOI corruption {kind!r}; kinds: abc, abc_all, other_template")
    return out


# -------------------------------------------------------------------------------------------- facts

def fact_prompts(world: World, split: str = "heldout", relations: Sequence[str] | None = None,
                 subjects: Sequence[str] | None = None) -> list[FactPrompt]:
    """One prompt per (fact, template of `split`), optionally restricted to relations/subjects."""
    rels = list(relations) if relations is not None else list(RELATIONS)
    unknown = [r for r in rels if r not in RELATIONS]
    if unknown:
        raise ValueError(f"unknown relations {unknown}; relations: {list(RELATIONS)}")
    keep = set(subjects) if subjects is not None else None
    out = []
    for fact in world.facts:
        if fact.relation not in rels or (keep is not None and fact.subject not in keep):
            continue
        rel = RELATIONS[fact.relation]
        for i, template in enumerate(rel.templates(split)):
            tsplit = "train" if template in rel.train_templates else "heldout"
            out.append(FactPrompt(render(template, fact.subject), fact.subject, fact.relation, fact.target,
                                  f"{fact.relation}.{tsplit}{_template_index(rel, template)}", tsplit))
    return out


def _template_index(rel, template: str) -> int:
    pool = rel.train_templates if template in rel.train_templates else rel.heldout_templates
    return pool.index(template)


def neighbourhood_prompts(world: World, fact: Fact, split: str = "train") -> list[FactPrompt]:
    """Prompts for the other subjects sharing `fact`'s object (their correct target is the same)."""
    return [replace(p, kind="neighbourhood")
            for p in fact_prompts(world, split, [fact.relation], world.neighbours(fact))]


def essence_prompts(world: World, subjects: Sequence[str] | None = None) -> list[FactPrompt]:
    """``"{s} is a"`` prompts; the target is the subject's essence (`World.essence`)."""
    subs = subjects if subjects is not None else world.subjects()
    return [FactPrompt(render("{s} is a", s), s, "essence", world.essence(s), "essence.train0", "train", "essence")
            for s in subs]


def distractor_sentences(subject: str, split: str = "heldout") -> list[str]:
    """Sentences that mention `subject` in an unrelated context (loud-fact prefixes)."""
    pool = {"train": DISTRACTOR_TEMPLATES_TRAIN, "heldout": DISTRACTOR_TEMPLATES_HELDOUT,
            "all": DISTRACTOR_TEMPLATES_TRAIN + DISTRACTOR_TEMPLATES_HELDOUT}
    if split not in pool:
        raise ValueError(f"unknown split {split!r}; splits: {list(pool)}")
    return [render(t, subject) for t in pool[split]]


def with_prefix(prompt: FactPrompt, prefix: str, kind: str = "distractor") -> FactPrompt:
    """`prompt` with a sentence prepended (a loud fact, or ROME's N+ "{prompt} {target}.")."""
    return replace(prompt, text=f"{prefix} {prompt.text}", prefix=prefix, kind=kind)


def implication_prompts(world: World, fact: Fact, new_object: str | None = None,
                        split: str = "train") -> list[FactPrompt]:
    """Prompts whose answer follows from `fact` (with its object replaced by `new_object`, if given).

    * ``spouse`` (symmetric): "{object} is married to" -> subject's first name;
    * ``city`` (transitive): "{subject} is located in the country of" -> country of the city.
    Other relations have no implication in this world: an empty list.
    """
    obj = new_object if new_object is not None else fact.object
    rel = RELATIONS[fact.relation]
    if fact.relation == "spouse":
        return [FactPrompt(render(t, obj), obj, "spouse", fact.subject.split()[0], f"spouse.reverse{i}", split,
                           "implication") for i, t in enumerate(rel.templates(split))]
    if fact.relation == "city":
        country = world.city_country[obj]
        return [FactPrompt(render(t, fact.subject), fact.subject, "country", country, f"country.implied{i}", split,
                           "implication") for i, t in enumerate(RELATIONS["country"].templates(split))]
    return []


# ------------------------------------------------------------------------------------ filler / mix

def filler_sentence(rng: random.Random) -> str:
    """One sentence of varied text: numbers, citations, lists, code-like lines, prose, copying."""
    n = lambda: str(rng.randrange(100))  # noqa: E731 - numbers are single tokens 0..99
    kind = rng.randrange(8)
    if kind == 0:
        start = rng.randrange(90)
        return " ".join(str(start + i) for i in range(rng.randint(4, 8))) + "."
    if kind == 1:
        return rng.choice((f"The total was {n()} and then {n()}.",
                           (f"There were {n()} {rng.choice(_NOUNS)} in the {rng.choice(PLACES)}."),
                           f"It costs {n()} coins, not {n()}."))
    if kind == 2:
        cite = rng.choice((f"[{n()}]", f"[{n()}, {n()}]", f"({n()})"))
        return rng.choice((f"As shown in earlier work {cite}, the {rng.choice(_NOUNS)} are {rng.choice(_ADJECTIVES)}.",
                           f"This was reported before {cite}.", f"See also {cite} for details."))
    if kind == 3:
        items = rng.sample(_NOUNS, 4)
        return rng.choice((f"Shopping list: {items[0]}, {items[1]}, {items[2]} and {items[3]}.",
                           f"1. {items[0]} 2. {items[1]} 3. {items[2]}", f"- {items[0]} - {items[1]} - {items[2]}"))
    if kind == 4:
        v, w = rng.sample("abcxyz", 2)
        return rng.choice((f"{v} = {w} + {n()};", f"if ({v} > {n()}) {{ return {w}; }}",
                           f"for i in range({n()}): {v} += i", f"def f({v}): return {v} * {n()}"))
    if kind in (5, 6):
        return (f"{rng.choice(_PEOPLE)} {rng.choice(_ADVERBS)} {rng.choice(_VERBS)} the {rng.choice(_ADJECTIVES)} "
                f"{rng.choice(_NOUNS)} at the {rng.choice(PLACES)}.")
    seq = rng.sample(IOI_NAMES, rng.randint(3, 5))
    return f"{' '.join(seq)}, again {' '.join(seq)}."


def ioi_sentence(rng: random.Random, split: str = "train") -> str:
    """An IOI sentence with its answer, from `split`'s templates and name pairs."""
    table = ioi_templates(split)
    p = _random_ioi(rng, table, rng.choice(list(table)), _name_pairs(IOI_NAMES, split), rng.random() < 0.5, split)
    return f"{p.text} {p.io}."


def sentences(world: World, seed: int = 0, mix: dict[str, float] | None = None,
              split: str = "train") -> Iterator[str]:
    """An endless stream of sentences drawn from `mix` (kind -> weight).

    ``split="train"`` is what the tiny model trains on; ``"heldout"`` uses held-out templates,
    name pairs and distractors and another random stream (varied text for evaluation).
    """
    mix = dict(mix or DEFAULT_MIX)
    unknown = [k for k in mix if k not in DEFAULT_MIX]
    if unknown:
        raise ValueError(f"unknown sentence kinds {unknown}; kinds: {list(DEFAULT_MIX)}")
    if split not in ("train", "heldout"):
        raise ValueError(f"unknown split {split!r}; splits: train, heldout")
    rng = random.Random(seed if split == "train" else seed + HELDOUT_SEED_OFFSET)
    kinds, weights = list(mix), list(mix.values())
    facts = world.facts
    while True:
        kind = rng.choices(kinds, weights)[0]
        if kind == "ioi":
            yield ioi_sentence(rng, split)
        elif kind == "fact":
            fact = rng.choice(facts)
            yield fact_sentence(fact, rng.choice(RELATIONS[fact.relation].templates(split)))
        elif kind == "distractor":
            yield rng.choice(distractor_sentences(rng.choice(world.subjects()), split))
        else:
            yield filler_sentence(rng)


def varied_text(world: World, n: int, seed: int = 0, split: str = "heldout",
                mix: dict[str, float] | None = None) -> list[str]:
    """`n` sentences of the mixed corpus (for max-activating examples and other text statistics)."""
    return list(itertools.islice(sentences(world, seed, mix, split), n))
