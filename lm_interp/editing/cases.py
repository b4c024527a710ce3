"""Edit cases: a rewrite request plus the probes that judge it (paraphrases, neighbours, implications).

`tiny_cases` builds them from the synthetic `World` (landmark -> city edits with a transitive
country implication, spouse edits with a symmetric implication); `lm_interp.editing.real_cases`
builds them for pretrained models from the real-fact file; `keep_known` keeps the cases the
unedited model gets right and `interleave_relations` mixes relations.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch

from lm_interp.editing.weights import EditRequest
from lm_interp.models.tokens import forward_logits, pad_rows, prompt_ids, target_ids


@dataclass(frozen=True)
class Probe:
    """One judged prompt: `good` should beat `bad` (the meaning depends on the probe group)."""

    prompt: str
    good: str
    bad: str


@dataclass
class EditCase:
    """A rewrite and its evaluation prompts.

    :param case_id: stable id; :param relation: ``city``, ``spouse``, ...
    :param request: the `EditRequest` (prompt, subject, new and true object).
    :param paraphrases: other prompts for the same fact (the new object should win).
    :param neighbourhood: (prompt, its own true object) of other subjects (the new object should not win).
    :param loud_prefix: a neutral sentence mentioning the subject (loud-fact probe).
    :param implications: `Probe` with kind: good = implied object, bad = the object before the edit.
    :param implication_kind: ``symmetric``, ``transitive`` or ``""``.
    """

    case_id: str
    relation: str
    request: EditRequest
    paraphrases: list[str]
    neighbourhood: list[tuple[str, str]]
    loud_prefix: str
    implications: list[Probe] = field(default_factory=list)
    implication_kind: str = ""

    def probes(self) -> dict[str, list[Probe]]:
        """Probe groups: ``good`` beats ``bad`` means the edit worked (efficacy, paraphrase), the
        prompt is unaffected (neighbourhood, nplus, loud_fact) or the implication holds."""
        r = self.request
        statement = f"{r.prompt} {r.target_new}."
        groups = {
            "efficacy": [Probe(r.prompt, r.target_new, r.target_true)],
            "paraphrase": [Probe(p, r.target_new, r.target_true) for p in self.paraphrases],
            "neighbourhood": [Probe(p, t, r.target_new) for p, t in self.neighbourhood],
            "nplus": [Probe(f"{statement} {p}", t, r.target_new) for p, t in self.neighbourhood],
            "loud_fact": [Probe(f"{self.loud_prefix} {p}", t, r.target_new) for p, t in self.neighbourhood],
        }
        if self.implications:
            groups[f"implication_{self.implication_kind}"] = list(self.implications)
        return groups

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EditCase":
        return cls(d["case_id"], d["relation"], EditRequest(**d["request"]), list(d["paraphrases"]),
                   [tuple(x) for x in d["neighbourhood"]], d["loud_prefix"],
                   [Probe(**p) for p in d.get("implications", [])], d.get("implication_kind", ""))


def fill_template(template: str, subject: str) -> str:
    """`template` with ``{}`` (or ``{s}``) replaced by `subject`, first letter capitalised."""
    text = template.replace("{}", subject).replace("{s}", subject)
    return text[:1].upper() + text[1:]


# ------------------------------------------------------------------------------------- tiny world

def tiny_cases(world, n: int, seed: int = 0, n_neighbours: int = 5) -> list[EditCase]:
    """`n` edits of the synthetic world, alternating landmark -> city and person -> spouse."""
    from lm_interp.models.corpus import distractor_sentences
    from lm_interp.models.world import RELATIONS

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = random.Random(seed)
    landmarks = list(world.landmarks)
    persons = list(world.persons)
    rng.shuffle(landmarks)
    rng.shuffle(persons)
    city_rel, country_rel, spouse_rel = RELATIONS["city"], RELATIONS["country"], RELATIONS["spouse"]
    cases: list[EditCase] = []
    for i in range(n):
        if i % 2 == 0:
            s = landmarks[(i // 2) % len(landmarks)]
            old = world.landmark_city[s]
            new = rng.choice([c for c in world.cities if world.city_country[c] != world.city_country[old]])
            t0 = city_rel.train_templates[0]
            others = [x for x in landmarks if x != s and world.landmark_city[x] != new]
            others.sort(key=lambda x: (world.landmark_city[x] != old, rng.random()))  # same-city neighbours first
            neigh = [(fill_template(t0, x), world.landmark_city[x]) for x in others[:n_neighbours]]
            paras = [fill_template(t, s) for t in city_rel.train_templates[1:3] + city_rel.heldout_templates]
            impl = [Probe(fill_template(t, s), world.city_country[new], world.city_country[old])
                    for t in country_rel.train_templates[:2] + country_rel.heldout_templates]
            cases.append(EditCase(f"tiny-city-{i:03d}", "city", EditRequest(fill_template(t0, s), s, new, old), paras,
                                  neigh, distractor_sentences(s, "heldout")[0], impl, "transitive"))
        else:
            s = persons[(i // 2) % len(persons)]
            old = world.persons[s]["spouse"]
            new = rng.choice([p for p in persons if p not in (s, old)])
            t0 = spouse_rel.train_templates[0]
            others = [x for x in persons if x not in (s, old, new) and world.persons[x]["spouse"] != new]
            rng.shuffle(others)
            neigh = [(fill_template(t0, x), world.persons[x]["spouse"]) for x in others[:n_neighbours]]
            paras = [fill_template(t, s) for t in spouse_rel.train_templates[1:] + spouse_rel.heldout_templates]
            impl = [Probe(fill_template(t, new), s, world.persons[new]["spouse"]) for t in spouse_rel.train_templates]
            cases.append(EditCase(f"tiny-spouse-{i:03d}", "spouse", EditRequest(fill_template(t0, s), s, new, old),
                                  paras, neigh, distractor_sentences(s, "heldout")[0], impl, "symmetric"))
    return cases


# ------------------------------------------------------------------------------ the known check

def predicts(lm, prompts: Sequence[str], targets: Sequence[str]) -> list[bool]:
    """Whether the model's top-1 next token after each prompt is the first token of its target."""
    tok = lm.tokenizer
    rows = [prompt_ids(tok, p, lm.prepend_bos) for p in prompts]
    tokens, lengths = pad_rows(rows, tok.pad_token_id if tok.pad_token_id is not None else 0)
    with torch.no_grad():
        logits = forward_logits(lm.hf_model, tokens)
    top = logits[torch.arange(len(rows)), lengths - 1].argmax(-1).tolist()
    return [t == target_ids(tok, g)[0] for t, g in zip(top, targets)]


def keep_known(lm, cases: Sequence[EditCase]) -> tuple[list[EditCase], list[dict]]:
    """The cases whose true object the unedited model predicts (top-1 first token), and a record of all."""
    ok = predicts(lm, [c.request.prompt for c in cases], [c.request.target_true for c in cases])
    record = [{"case_id": c.case_id, "prompt": c.request.prompt, "target_true": c.request.target_true,
               "known": k} for c, k in zip(cases, ok)]
    return [c for c, k in zip(cases, ok) if k], record


def interleave_relations(cases: Sequence[EditCase]) -> list[EditCase]:
    """Cases reordered so relations alternate (the first N then cover every relation)."""
    by_rel: dict[str, list[EditCase]] = {}
    for c in cases:
        by_rel.setdefault(c.relation, []).append(c)
    out: list[EditCase] = []
    queues = list(by_rel.values())
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out
