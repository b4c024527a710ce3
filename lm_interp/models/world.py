"""The synthetic world the tiny LM learns: invented countries, cities, landmarks and people.

A `World` is a deterministic function of a seed: which city lies in which country, which
landmark stands in which city, who plays which instrument and who is married to whom.
Relations and their paraphrase templates (train and held-out) live in `RELATIONS`; the
corpus (`lm_interp.models.corpus`) turns facts into sentences and evaluation prompts.

Chains: landmark -> city -> country (transitive; landmark -> country is also stated
directly in training so implication probes have a ground truth the model knows) and
person <-> person (married_to, symmetric: both directions are stated in training).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

COUNTRIES = ("Arvenia", "Belmora", "Calvesh", "Dorunia", "Estmark", "Fenwald")
CITIES = ("Varno", "Tessik", "Lumen", "Corvash", "Pellin", "Oradel", "Miskar", "Halvet", "Quorra",
          "Silbet", "Rennick", "Atheny", "Dovrel", "Kestin", "Palmyr", "Zeldor", "Norvik", "Iselin")
LANDMARK_ADJECTIVES = ("Amber", "Silver", "Crimson", "Golden", "Ivory", "Jade", "Copper", "Marble", "Azure",
                       "Scarlet", "Emerald", "Onyx")
LANDMARK_TYPES = ("Tower", "Bridge", "Museum", "Palace", "Gate", "Cathedral")
PERSON_FIRST_NAMES = ("Carla", "Hugo", "Ines", "Felix", "Greta", "Boris", "Yara", "Milo", "Petra", "Otto", "Vera",
                      "Igor", "Dora", "Axel", "Lena", "Rolf", "Tilda", "Emil", "Sonja", "Karl", "Ada", "Jonas",
                      "Mira", "Nils")
SURNAMES = ("Benton", "Harlow", "Quill", "Vance", "Marsh", "Draper", "Fenn", "Colby", "Ashby", "Thorne", "Pryce",
            "Wilde")
INSTRUMENTS = ("piano", "violin", "guitar", "flute", "drums", "cello")
LANGUAGES = ("Latin", "Greek", "Dutch", "Polish", "Hindi", "Swahili")
PROFESSIONS = ("doctor", "teacher", "pilot", "farmer", "lawyer", "baker", "painter", "nurse")


@dataclass(frozen=True)
class Relation:
    """A relation with paraphrase templates; ``{s}`` is the subject, the object follows the template.

    :param name: relation id (``city``, ``country``, ``spouse``, ...).
    :param train_templates: templates whose sentences appear in the training corpus.
    :param heldout_templates: templates used only in evaluation prompts (never trained on).
    :param subject_kinds: kinds of subject (``landmark``, ``city``, ``person``) it applies to.
    :param symmetric: ``r(a, b)`` implies ``r(b, a)`` (both directions are in training).
    """

    name: str
    train_templates: tuple[str, ...]
    heldout_templates: tuple[str, ...]
    subject_kinds: tuple[str, ...]
    symmetric: bool = False

    def templates(self, split: str) -> tuple[str, ...]:
        """Templates of a split: ``train``, ``heldout`` or ``all``."""
        if split == "train":
            return self.train_templates
        if split == "heldout":
            return self.heldout_templates
        if split == "all":
            return self.train_templates + self.heldout_templates
        raise ValueError(f"unknown split {split!r}; splits: train, heldout, all")


# Held-out templates reuse words of the training corpus in new combinations (no unknown tokens).
RELATIONS: dict[str, Relation] = {r.name: r for r in (
    Relation("city",
             ("{s} is located in the city of", "{s} stands in the city of", "{s} can be found in the city of",
              "Tourists visit {s} in the city of", "Every year many people travel to see {s} in the city of"),
             ("{s} is found in the city of", "Many tourists travel to {s} in the city of"),
             ("landmark",)),
    Relation("country",
             ("{s} is located in the country of", "{s} lies in the country of", "{s} can be found in the country of",
              "The home of {s} is the country of"),
             ("{s} is in the country of", "Tourists travel to {s} in the country of"),
             ("landmark", "city")),
    Relation("instrument",
             ("{s} plays the", "{s} is very good at playing the", "Every day, {s} practises the",
              "The favourite instrument of {s} is the"),
             ("{s} is good at playing the", "Every evening, {s} plays the"),
             ("person",)),
    Relation("language",
             ("{s} speaks", "The native language of {s} is", "{s} writes letters in", "At home, {s} speaks"),
             ("Every day, {s} speaks", "The language of {s} is"),
             ("person",)),
    Relation("profession",
             ("{s} works as a", "By profession, {s} is a", "{s} has a job as a"),
             ("{s} is working as a", "Every day, {s} works as a"),
             ("person",)),
    Relation("home",
             ("{s} lives in the city of", "The home of {s} is in the city of", "{s} has a house in the city of"),
             ("Every evening, {s} went home to the city of", "{s} has a home in the city of"),
             ("person",)),
    Relation("spouse",
             ("{s} is married to", "The spouse of {s} is", "{s} got married to"),
             ("Yesterday I read that {s} is married to", "{s} is happily married to"),
             ("person",), symmetric=True),
    Relation("essence",
             ("{s} is a", "Yesterday I read that {s} is a"),
             ("I read that {s} is a",),
             ("landmark", "city", "person")),
)}


@dataclass(frozen=True)
class Fact:
    """One subject-relation-object triple; `target` is the object's first word (what is predicted)."""

    subject: str
    relation: str
    object: str

    @property
    def target(self) -> str:
        return self.object.split()[0]


@dataclass(frozen=True)
class World:
    """Entities and facts of the synthetic world (see the module docstring)."""

    seed: int
    city_country: dict[str, str]
    landmark_city: dict[str, str]
    persons: dict[str, dict[str, str]]
    facts: tuple[Fact, ...] = field(repr=False)

    @property
    def landmarks(self) -> tuple[str, ...]:
        return tuple(self.landmark_city)

    @property
    def cities(self) -> tuple[str, ...]:
        return tuple(self.city_country)

    @property
    def countries(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.city_country.values())))

    def subject_kind(self, subject: str) -> str:
        """``landmark``, ``city`` or ``person``."""
        if subject in self.landmark_city:
            return "landmark"
        if subject in self.city_country:
            return "city"
        if subject in self.persons:
            return "person"
        raise ValueError(f"{subject!r} is not a subject of this world")

    def subjects(self, kind: str | None = None) -> tuple[str, ...]:
        """All subjects, or those of one kind."""
        every = {"landmark": self.landmarks, "city": self.cities, "person": tuple(self.persons)}
        if kind is None:
            return every["landmark"] + every["city"] + every["person"]
        if kind not in every:
            raise ValueError(f"unknown subject kind {kind!r}; kinds: {tuple(every)}")
        return every[kind]

    def country_of(self, subject: str) -> str:
        """Country of a landmark (through its city), of a city, or of a person's home city."""
        kind = self.subject_kind(subject)
        city = {"landmark": lambda: self.landmark_city[subject], "city": lambda: subject,
                "person": lambda: self.persons[subject]["home"]}[kind]()
        return self.city_country[city]

    def essence(self, subject: str) -> str:
        """What a subject is (``{s} is a ...``): a landmark's type, ``city``, or a person's profession."""
        kind = self.subject_kind(subject)
        if kind == "landmark":
            return subject.split()[-1].lower()
        if kind == "city":
            return "city"
        return self.persons[subject]["profession"]

    def facts_of(self, subject: str | None = None, relation: str | None = None) -> list[Fact]:
        """Facts filtered by subject and/or relation."""
        return [f for f in self.facts if (subject is None or f.subject == subject)
                and (relation is None or f.relation == relation)]

    def object_of(self, subject: str, relation: str) -> str:
        found = self.facts_of(subject, relation)
        if not found:
            raise ValueError(f"no fact ({subject!r}, {relation!r}) in this world")
        return found[0].object

    def neighbours(self, fact: Fact) -> list[str]:
        """Other subjects with the same object under the same relation (ROME's neighbourhood)."""
        return [f.subject for f in self.facts if f.relation == fact.relation and f.object == fact.object
                and f.subject != fact.subject]


def make_world(seed: int = 0) -> World:
    """The world of `seed`: 6 countries x 3 cities, 2 landmarks per city, 12 married couples."""
    rng = random.Random(seed)
    cities = list(CITIES)
    rng.shuffle(cities)
    city_country = {city: COUNTRIES[i // 3] for i, city in enumerate(cities)}
    names = [f"the {a} {t}" for a in LANDMARK_ADJECTIVES for t in LANDMARK_TYPES]
    rng.shuffle(names)
    landmarks = sorted(names[:2 * len(cities)])
    # two landmarks per city, in a shuffled order so adjectives do not predict cities
    rng.shuffle(landmarks)
    landmark_city = {lm: cities[i // 2] for i, lm in enumerate(landmarks)}
    landmark_city = dict(sorted(landmark_city.items()))
    firsts = list(PERSON_FIRST_NAMES)
    rng.shuffle(firsts)
    persons: dict[str, dict[str, str]] = {}
    for couple, surname in enumerate(SURNAMES):
        a, b = f"{firsts[2 * couple]} {surname}", f"{firsts[2 * couple + 1]} {surname}"
        home = rng.choice(cities)  # couples share a home city
        for me, other in ((a, b), (b, a)):
            persons[me] = {"spouse": other, "home": home, "instrument": rng.choice(INSTRUMENTS),
                           "language": rng.choice(LANGUAGES), "profession": rng.choice(PROFESSIONS)}
    facts: list[Fact] = []
    for lm, city in landmark_city.items():
        facts.append(Fact(lm, "city", city))
        facts.append(Fact(lm, "country", city_country[city]))
    for city, country in city_country.items():
        facts.append(Fact(city, "country", country))
    for person, attrs in persons.items():
        for rel in ("instrument", "language", "profession", "home", "spouse"):
            facts.append(Fact(person, rel, attrs[rel]))
    world = World(seed, city_country, landmark_city, persons, tuple(facts))
    essences = tuple(Fact(s, "essence", world.essence(s)) for s in world.subjects())
    return World(seed, city_country, landmark_city, persons, tuple(facts) + essences)
