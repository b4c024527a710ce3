"""Does a trained network *use* what it represents? The usage suite over layers and concepts, resumable.

For one network (an agent's or a reference network's `BoardPolicy`) and each concept:

* per layer, erase and steer the concept where it lives (per square on spatial layers, along a
  whole-board direction on flat ones) against random directions and random squares of equal
  size (`probes.interventions.intervention_effects`), fitted on the train games of the
  labelled positions and measured on the test games (the same three-way split by game as
  the probe study, so the games are the ones part 1 scored);
* per layer (and per square of spatial layers), patch activations from the member of each
  solver-verified minimal pair that has the concept into the member that lacks it and
  measure how much of the change in the concept's move and in the value returns
  (`probes.interventions.pair_patching`).

Each (network, concept) result is one JSON file written atomically, so an interrupted run
resumes where it stopped. Game-specific inputs (`JudgedPositions`, `PairBatch`) come from the
game's module (Connect Four: `agents.connect4.usage`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from agents.network import policy_forward, probe_layers
from common.atomic import atomic_write_json
from probes.interventions import (
    DEFAULT_STEER_ALPHAS,
    JudgedPositions,
    PairBatch,
    intervention_effects,
    pair_patching,
)
from probes.linear import grouped_three_way_split
from probes.sweep_folder import read_info

log = logging.getLogger(__name__)

RESULT_LAYOUT = 3
OUTPUT_LAYERS = ("action_net", "value_net")  # the outputs themselves: editing them is not a test of use


@dataclass(frozen=True)
class UsageSettings:
    """Settings of the usage suite (stored with every result; a result with other settings is redone).

    :param alphas: steering strengths, in standard deviations of the activations along the direction.
    :param n_random: random controls per kind (directions; square draws).
    :param n_boot: bootstrap replicates for every interval.
    :param seed: seed of the split (the probe study's, so the same test games), controls and bootstrap.
    :param n_parents: random parent positions searched for minimal pairs.
    :param max_pairs: minimal pairs kept per concept.
    """

    alphas: tuple[float, ...] = DEFAULT_STEER_ALPHAS
    n_random: int = 5
    n_boot: int = 1000
    seed: int = 0
    n_parents: int = 3000
    max_pairs: int = 200

    def __post_init__(self) -> None:
        for name, least in (("n_random", 1), ("n_boot", 10), ("n_parents", 1), ("max_pairs", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < least:
                raise ValueError(f"UsageSettings.{name} must be an integer of at least {least}, got {value!r}")
        object.__setattr__(self, "alphas", tuple(float(a) for a in self.alphas))

    def to_dict(self) -> dict:
        return {**asdict(self), "alphas": list(self.alphas), "layout": RESULT_LAYOUT}


@dataclass
class UsageInputs:
    """What one concept's tests need: judged positions (all folds) and minimal pairs, with their records."""

    positions: JudgedPositions
    pairs: PairBatch
    pair_records: list[dict] = field(default_factory=list)


def usage_layers(policy: Any) -> list[tuple[str, bool]]:
    """``(layer name, spatial)`` for every probed layer of a `BoardPolicy` except its outputs."""
    return [(info.name, info.spatial) for info in probe_layers(policy) if info.name not in OUTPUT_LAYERS]


def concept_usage(policy: Any, inputs: UsageInputs, settings: UsageSettings, layers: Sequence[tuple[str, bool]],
                  progress: bool = True) -> dict:
    """Interventions and patching of one concept at every layer of `policy`; a JSON-able dict."""
    torch.manual_seed(settings.seed)
    policy.set_training_mode(False)

    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return policy_forward(policy, x)

    positions = inputs.positions
    train, _, test = grouped_three_way_split(positions.groups, seed=settings.seed)
    fit, measure = positions.subset(train), positions.subset(test)
    started = time.perf_counter()
    interventions: list[dict] = []
    patching: list[dict] = []
    maps: dict[str, dict[str, list]] = {}
    steps: Any = layers
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(layers, desc="layers", unit="layer", leave=False)
    for layer, spatial in steps:
        interventions += intervention_effects(policy, forward, layer, spatial, fit, measure, settings.alphas,
                                              settings.n_random, settings.n_boot, settings.seed)
        if len(inputs.pairs):
            records, layer_maps = pair_patching(policy, forward, layer, spatial, inputs.pairs, settings.n_random,
                                                settings.n_boot, settings.seed)
            patching += records
            if layer_maps:
                maps[layer] = {k: np.round(v, 6).tolist() for k, v in layer_maps.items()}
    return {"settings": settings.to_dict(), "n_fit": int(len(fit)), "n_measure": int(len(measure)),
            "n_measure_with": int(measure.concept.sum()), "n_pairs": int(len(inputs.pairs)),
            "interventions": interventions, "patching": patching, "maps": maps, "pairs": inputs.pair_records,
            "seconds": round(time.perf_counter() - started, 1)}


def result_path(out: str | Path, network: str, concept: str) -> Path:
    """Where the usage result of (`network`, `concept`) lives under `out`."""
    return Path(out) / network / f"{concept}.json"


def read_result(path: Path, settings: UsageSettings) -> dict | None:
    """A finished result at `path` made with `settings`, or None (missing, damaged or other settings)."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        log.warning("%s is damaged; redoing it", path)
        return None
    if data.get("settings") != settings.to_dict():
        log.info("%s was made with other settings; redoing it", path)
        return None
    return data


def run_usage(policy: Any, network: str, concepts: Sequence[str], make_inputs: Callable[[str], UsageInputs],
              out: str | Path, settings: UsageSettings, meta: dict | None = None, progress: bool = True) -> dict[str, dict]:
    """The usage suite of one network over `concepts`, resuming from finished results under `out`.

    :param network: the network's name (a folder under `out`, and the ``run`` the study's deltas use).
    :param make_inputs: concept -> its `UsageInputs` (only called for concepts still to do).
    :param meta: stored with each result (e.g. checkpoint, role, dataset).
    :returns: concept -> result dict (``seconds``: the tests' compute time; ``inputs_seconds``: building
        the positions and minimal pairs, solver included).
    """
    layers = usage_layers(policy)
    results: dict[str, dict] = {}
    for concept in concepts:
        path = result_path(out, network, concept)
        done = read_result(path, settings)
        if done is not None:
            log.info("%s / %s: finished earlier (%s)", network, concept, path)
            results[concept] = done
            continue
        log.info("%s / %s: %d layers", network, concept, len(layers))
        tick = time.perf_counter()
        inputs = make_inputs(concept)
        result = {"network": network, "concept": concept, **(meta or {}),
                  "inputs_seconds": round(time.perf_counter() - tick, 1),
                  **concept_usage(policy, inputs, settings, layers, progress)}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(result, path)
        results[concept] = result
    return results


# ---------------------------------------------------------------------------- networks of a study
@dataclass(frozen=True)
class UsageNetwork:
    """A network to test: its name, checkpoint, the labelled dataset it is measured on, and its study run.

    :param run: the run name in the study's ``deltas.csv`` (None: the study did not score it).
    :param role: ``agent`` or ``reference`` (reported).
    """

    name: str
    checkpoint: Path
    dataset: Path
    run: str | None = None
    role: str = "agent"


def _latest_zip(folder: Path) -> Path:
    from agents.checkpoints import CHECKPOINT_RE, resolve_checkpoint

    found = sorted((int(m.group(1)), p) for p in folder.glob("step_*.zip") if (m := CHECKPOINT_RE.match(p.name)))
    return found[-1][1] if found else resolve_checkpoint(folder)


def study_networks(study: str | Path) -> list[UsageNetwork]:
    """The final agent of every seed of a recorded study folder (``seedS/{agent,dataset,sweep}``).

    :raises FileNotFoundError: naming what the folder lacks.
    """
    study = Path(study)
    seeds = sorted(p for p in study.glob("seed*") if p.is_dir())
    if not seeds:
        raise FileNotFoundError(f"{study} holds no seed folders (expected {study}/seed0/agent, .../dataset, .../sweep)")
    out = []
    for folder in seeds:
        for part in ("agent", "dataset", "sweep/sweep.json"):
            if not (folder / part).exists():
                raise FileNotFoundError(f"{folder / part} is missing; is {study} a study folder?")
        info = read_info(folder / "sweep")
        run = Path(info.runs[0]).name if info is not None and info.runs else None
        out.append(UsageNetwork(run or folder.name, _latest_zip(folder / "agent"), folder / "dataset", run, "agent"))
    return out


def _role_of(path: Path, name: str) -> str:
    """``reference`` for a supervised run's folder or checkpoint (its config says so) or a name that says so."""
    from agents.runs import read_run_config

    run = path if path.is_dir() else (path.parent.parent if path.parent.name == "checkpoints" else path.parent)
    try:
        kind = read_run_config(run).kind
    except (FileNotFoundError, ValueError):
        kind = None
    return "reference" if kind == "reference" or "reference" in name else "agent"


def chosen_networks(study: str | Path | None, extra: Sequence[str | Path] = (),
                    extra_dataset: str | Path | None = None) -> list[UsageNetwork]:
    """The networks a CLI names: the final agents of a `study` folder, then `extra` checkpoints or run folders
    (role ``reference`` when their run config or name says so), measured on `extra_dataset` (default: the
    study's first seed's).

    :raises ValueError: when nothing is named, or `extra` has no dataset to be measured on.
    :raises FileNotFoundError: naming what the study folder lacks.
    """
    if study is None and not extra:
        raise ValueError("name a study folder, or network checkpoints with the dataset to measure them on")
    networks = study_networks(study) if study is not None else []
    dataset = Path(extra_dataset) if extra_dataset is not None else (networks[0].dataset if networks else None)
    if extra and dataset is None:
        raise ValueError("extra networks need a dataset to be measured on (or a study whose first seed's dataset is used)")
    for path in map(Path, extra):
        name = path.name if path.is_dir() else (path.parent.parent.name if path.parent.name == "checkpoints" else path.stem)
        networks.append(UsageNetwork(name, path, dataset, None, _role_of(path, name)))
    return networks
