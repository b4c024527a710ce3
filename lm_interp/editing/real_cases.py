"""Edit cases for pretrained models from the hand-written real-fact file (``data/rome_real_facts.json``).

Three relations, all candidates (the run keeps those the unedited model knows, `cases.keep_known`):

* ``city``: landmark -> city, with a **transitive** implication (the landmark's country should
  become the new city's). Landmarks: `lm_interp.models.real_facts.REAL_LANDMARKS` (left as it is:
  a probe demo rests on it) plus the file's ``landmarks`` rows ``[landmark, city, country]``.
  The new city is a seeded draw among ``new_cities`` in another country.
* ``spouse`` (real couples) and ``antonym`` (English antonym pairs): a **symmetric** relation.
  Every pair gives a candidate in both directions; the edit ``s -> new`` implies ``new -> s``,
  probed on the reverse prompts with ``s`` (implied) against ``new``'s own partner (before the edit).

The file's ``description`` says how the facts were chosen.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Sequence

from lm_interp.editing.cases import EditCase, Probe, fill_template
from lm_interp.editing.weights import EditRequest

REAL_FACTS_PATH = Path(__file__).resolve().parent / "data" / "rome_real_facts.json"
REQUIRED_TEMPLATES = ("city", "city_paraphrases", "country", "spouse", "spouse_paraphrases", "spouse_reverse", "loud",
                      "antonym", "antonym_paraphrases", "antonym_reverse", "loud_word")


def load_real_facts(path: str | Path = REAL_FACTS_PATH) -> dict:
    """The real-fact file as a dict (ValueError naming the file and what is missing if it is malformed)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the real-fact file {path}: {exc}") from None
    missing = [k for k in ("templates", "new_cities", "couples") if k not in data]
    missing += [f"templates.{k}" for k in REQUIRED_TEMPLATES if k not in data.get("templates", {})]
    if missing:
        raise ValueError(f"real-fact file {path} lacks {missing}")
    return data


def landmark_table(data: dict) -> tuple[dict[str, str], dict[str, str]]:
    """``(landmark -> city, city -> country)``: `REAL_LANDMARKS` / `REAL_CITIES` plus the file's ``landmarks``.

    :raises ValueError: a row that is not ``[landmark, city, country]``, a landmark listed twice, or a
        city given two countries.
    """
    from lm_interp.models.real_facts import REAL_CITIES, REAL_LANDMARKS

    city_country = {c: k for k, cs in REAL_CITIES.items() for c in cs}
    landmarks = dict(REAL_LANDMARKS)
    for row in data.get("landmarks", []):
        if not (isinstance(row, list) and len(row) == 3 and all(isinstance(x, str) and x for x in row)):
            raise ValueError(f"landmark row {row!r} is not [landmark, city, country]")
        name, city, country = row
        if name in landmarks:
            raise ValueError(f"landmark {name!r} is listed twice")
        if city_country.setdefault(city, country) != country:
            raise ValueError(f"city {city!r} has two countries: {city_country[city]!r} and {country!r}")
        landmarks[name] = city
    missing = sorted({c for c in landmarks.values() if c not in city_country})
    if missing:
        raise ValueError(f"landmark cities {missing} have no country")
    return landmarks, city_country


def check_subject_slot(template: str, subject: str) -> str:
    """The filled prompt, after checking that its first mention of `subject` is the ``{}`` slot.

    The edit locates the subject by its first case-insensitive occurrence, so e.g. "on" in
    "The antonym of on is" would be found inside "antonym"; such a case is a data error.
    """
    prompt = fill_template(template, subject)
    if "{}" not in template or prompt.lower().find(subject.lower()) != template.index("{}"):
        raise ValueError(f"subject {subject!r} occurs before its slot in {prompt!r} (template {template!r})")
    return prompt


def city_cases(data: dict, rng: random.Random, n_neighbours: int = 5) -> list[EditCase]:
    """Landmark -> city edits to a capital of another country, with the country implication (transitive)."""
    tpl = data["templates"]
    landmark_city, city_country = landmark_table(data)
    capitals = list(data["new_cities"])
    unknown = [c for c in capitals if c not in city_country]
    if unknown:
        raise ValueError(f"new_cities {unknown} have no country")
    names = list(landmark_city)
    cases = []
    for i, s in enumerate(names):
        old = landmark_city[s]
        new = rng.choice([c for c in capitals if city_country[c] != city_country[old]])
        others = [x for x in names if x != s and landmark_city[x] != new]
        others.sort(key=lambda x: (landmark_city[x] != old, rng.random()))  # same-city neighbours first
        neigh = [(fill_template(tpl["city"], x), landmark_city[x]) for x in others[:n_neighbours]]
        impl = [Probe(fill_template(t, s), city_country[new], city_country[old]) for t in tpl["country"]]
        request = EditRequest(check_subject_slot(tpl["city"], s), s, new, old)
        cases.append(EditCase(f"real-city-{i:03d}", "city", request,
                              [fill_template(t, s) for t in tpl["city_paraphrases"]], neigh,
                              fill_template(rng.choice(tpl["loud"]), s), impl, "transitive"))
    return cases


def symmetric_cases(pairs: Sequence[Sequence[str]], relation: str, templates: dict[str, list[str] | str],
                    rng: random.Random, n_neighbours: int = 5) -> list[EditCase]:
    """Edits of a symmetric relation: each pair ``(a, b)`` gives ``a -> new`` and ``b -> new`` candidates.

    :param templates: ``fact`` (the edited prompt), ``paraphrases``, ``reverse`` (the implication
        prompts, filled with the new object) and ``loud`` (sentences mentioning the subject).
    :returns: cases ``real-<relation>-NNN``: new object a random other member of the list; the
        implication ``reverse(new)``: `s` (implied) should beat ``partner(new)`` (before the edit).
    :raises ValueError: a pair that is not two different strings, or a word in two pairs.
    """
    partner: dict[str, str] = {}
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1] or not all(isinstance(x, str) and x for x in pair):
            raise ValueError(f"{relation} pair {pair!r} is not two different names")
        for a, b in (pair, pair[::-1]):
            if a in partner:
                raise ValueError(f"{relation}: {a!r} occurs in two pairs")
            partner[a] = b
    if len(partner) < 4:
        raise ValueError(f"{relation}: need at least two pairs, got {len(partner) // 2}")
    names = [p[0] for p in pairs] + [p[1] for p in pairs]  # first members, then second ones
    fact = templates["fact"]
    cases = []
    for i, s in enumerate(names):
        old = partner[s]
        new = rng.choice([p for p in names if p not in (s, old)])
        others = [x for x in names if x not in (s, old, new) and partner[x] != new]
        rng.shuffle(others)
        neigh = [(fill_template(fact, x), partner[x]) for x in others[:n_neighbours]]
        impl = [Probe(fill_template(t, new), s, partner[new]) for t in templates["reverse"]]
        cases.append(EditCase(f"real-{relation}-{i:03d}", relation,
                              EditRequest(check_subject_slot(fact, s), s, new, old),
                              [fill_template(t, s) for t in templates["paraphrases"]], neigh,
                              fill_template(rng.choice(templates["loud"]), s), impl, "symmetric"))
    return cases


def real_cases(path: str | Path = REAL_FACTS_PATH, seed: int = 0, n_neighbours: int = 5) -> list[EditCase]:
    """Every candidate edit of the real-fact file: cities (transitive), then couples and antonyms (symmetric)."""
    data = load_real_facts(path)
    tpl = data["templates"]
    rng = random.Random(seed)
    cases = city_cases(data, rng, n_neighbours)
    cases += symmetric_cases(data["couples"], "spouse",
                             {"fact": tpl["spouse"], "paraphrases": tpl["spouse_paraphrases"],
                              "reverse": tpl["spouse_reverse"], "loud": tpl["loud"]}, rng, n_neighbours)
    if data.get("antonyms"):
        cases += symmetric_cases(data["antonyms"], "antonym",
                                 {"fact": tpl["antonym"], "paraphrases": tpl["antonym_paraphrases"],
                                  "reverse": tpl["antonym_reverse"], "loud": tpl["loud_word"]}, rng, n_neighbours)
    return cases
