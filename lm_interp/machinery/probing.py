"""Linear probes on LM activations through `probes/`, unchanged.

The demonstration concept is "the country of the subject's city", read from the residual
stream at the last subject token, layer by layer. Rows are (subject, context) prompts;
groups are subjects, so no subject straddles the train/test split and a probe must
generalise to unseen subjects. `run_probe_demo` runs it on a model and owns its folder
(``probe_by_layer.json``: `ProbeDemoReport`, ``accuracy_by_layer.png``; `scripts/lm_probe_demo.py`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from common.atomic import atomic_save_figure, atomic_write_json
from lm_interp.machinery.hooks import activations_at, hook_name, hooked_module
from lm_interp.models.corpus import FactPrompt, render
from lm_interp.models.tokens import subject_positions
from lm_interp.models.world import RELATIONS, World
from probes.controls import majority_baseline
from probes.linear import fit_probe, grouped_split


@dataclass(frozen=True)
class ProbeRow:
    """One layer's held-out probe scores."""

    layer: str
    accuracy: float
    ci_low: float
    ci_high: float
    majority: float
    n_train: int
    n_test: int


def tiny_probe_contexts() -> tuple[str, ...]:
    """Contexts for the synthetic world's landmarks and cities: training templates that start with the subject
    or mention it, plus distractor sentences (the words after the subject do not matter to its last token)."""
    from lm_interp.models.corpus import DISTRACTOR_TEMPLATES_TRAIN

    return RELATIONS["country"].train_templates + RELATIONS["essence"].train_templates + DISTRACTOR_TEMPLATES_TRAIN


def subject_prompts(world: World, contexts: Sequence[str], kinds: Sequence[str] = ("landmark", "city")) -> list[FactPrompt]:
    """One prompt per (subject of `kinds`, context); the target is the subject's country."""
    return [FactPrompt(render(ctx, s), s, "country", world.country_of(s), f"context{i}", "probe", "probe")
            for s in (x for k in kinds for x in world.subjects(k)) for i, ctx in enumerate(contexts)]


def fit_layer_probes(model, prompts: Sequence[FactPrompt], layers: Sequence[int] | None = None, seed: int = 0,
                     n_boot: int = 200, batch_size: int = 32, progress: bool = False) -> list[ProbeRow]:
    """Logistic probes for each prompt's target (the country) at the last subject token, per layer.

    Layers: the embedding (``blocks.0.hook_resid_pre``) and ``blocks.L.hook_resid_post``.
    """
    n_layers = hooked_module(model).cfg.n_layers
    layers = list(range(n_layers)) if layers is None else list(layers)
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad:
        raise ValueError(f"layers {bad} out of range; the model has {n_layers}")
    names = [hook_name("resid_pre", 0)] + [hook_name("resid_post", layer) for layer in layers]
    positions = subject_positions(model, prompts)
    acts = activations_at(model, [p.text for p in prompts], names, positions, batch_size, progress)
    labels = np.array([p.target for p in prompts])
    groups = np.array([p.subject for p in prompts])
    split = grouped_split(groups, seed=seed)
    base = majority_baseline(labels, "categorical", *split)
    rows = []
    for name in names:
        score = fit_probe(acts[name], labels, groups, "categorical", "logistic", split=split, seed=seed, n_boot=n_boot)
        lo, hi = score.ci.get("accuracy", (float("nan"), float("nan")))
        rows.append(ProbeRow(name, score["accuracy"], lo, hi, base["accuracy"], score.n_train, score.n_test))
    return rows


@dataclass
class ProbeDemoReport:
    """``probe_by_layer.json``: the probe demonstration on one model, one `ProbeRow` per layer."""

    model: str
    description: str
    n_prompts: int
    n_subjects: int
    n_countries: int
    seed: int
    seconds: float
    rows: list[ProbeRow] = field(default_factory=list)
    concept: str = "country of the subject's city"
    position: str = "last subject token"
    probe: str = "logistic (probes.linear.fit_probe, grouped by subject)"

    def to_json(self) -> dict:
        """The ``probe_by_layer.json`` dict (same key order as the recorded results)."""
        return {"model": self.model, "description": self.description, "concept": self.concept,
                "position": self.position, "probe": self.probe, "n_prompts": self.n_prompts,
                "n_subjects": self.n_subjects, "n_countries": self.n_countries, "seed": self.seed,
                "seconds": self.seconds, "rows": [asdict(r) for r in self.rows]}

    @classmethod
    def from_json(cls, data: dict) -> ProbeDemoReport:
        """Rebuild a report from its ``probe_by_layer.json`` dict."""
        return cls(**{**data, "rows": [ProbeRow(**r) for r in data["rows"]]})


def run_probe_demo(model: str, out_dir: str | Path, layers: Sequence[int] | None = None, seed: int = 0,
                   n_boot: int = 200, progress: bool = True) -> ProbeDemoReport:
    """Fit the country probes on `model` (the synthetic world for ``tiny``, real geography otherwise); writes `out_dir`."""
    from lm_interp.models.loading import load_model
    from lm_interp.models.real_facts import PROBE_CONTEXTS, real_world
    from lm_interp.models.world import make_world

    if n_boot < 0:
        raise ValueError(f"--n-boot must be 0 or more, got {n_boot}")
    t0 = time.perf_counter()
    lm = load_model(model)
    if lm.name == "tiny":
        world_seed = lm.info.get("recipe", {}).get("config", {}).get("world_seed", 0)
        prompts = subject_prompts(make_world(world_seed), tiny_probe_contexts())
    else:
        prompts = subject_prompts(real_world(), PROBE_CONTEXTS)
    rows = fit_layer_probes(lm, prompts, layers, seed=seed, n_boot=n_boot, progress=progress)
    report = ProbeDemoReport(model=lm.spec, description=lm.description, n_prompts=len(prompts),
                             n_subjects=len({p.subject for p in prompts}), n_countries=len({p.target for p in prompts}),
                             seed=seed, seconds=round(time.perf_counter() - t0, 1), rows=rows)
    write_probe_demo(report, out_dir, f"{lm.name}: country of the subject at its last token")
    return report


def _plot_accuracy(rows: Sequence[ProbeRow], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = list(range(len(rows)))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.25 * len(rows) + 3), 3.5))
    ax.plot(x, [r.accuracy for r in rows], marker="o", label="logistic probe")
    ax.fill_between(x, [r.ci_low for r in rows], [r.ci_high for r in rows], alpha=0.2)
    ax.axhline(rows[0].majority, color="grey", linestyle="--", label="majority class")
    ax.set_xticks(x, ["emb" if "resid_pre" in r.layer else r.layer.split(".")[1] for r in rows], fontsize=7)
    ax.set_xlabel("residual stream after block")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=120)


def write_probe_demo(report: ProbeDemoReport, out_dir: str | Path, title: str) -> list[Path]:
    """Write probe_by_layer.json and accuracy_by_layer.png (titled `title`) into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = atomic_write_json(report.to_json(), out / "probe_by_layer.json")
    _plot_accuracy(report.rows, out / "accuracy_by_layer.png", title)
    return [path, out / "accuracy_by_layer.png"]


def read_probe_demo(out_dir: str | Path) -> ProbeDemoReport:
    """The `ProbeDemoReport` recorded in `out_dir`/probe_by_layer.json (ValueError naming the file if not one)."""
    path = Path(out_dir) / "probe_by_layer.json"
    if not path.is_file():
        raise ValueError(f"{path} does not exist; run scripts/lm_probe_demo.py --out {out_dir} first")
    try:
        return ProbeDemoReport.from_json(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a probe report ({exc})") from None
