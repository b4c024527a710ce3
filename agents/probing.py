"""Wire training runs into `probes/`: sweep entries per checkpoint and controls, and the probe sweep itself.

`probes/` knows nothing about agents or games; this module turns run folders and a dataset
folder into what `probes.sweep.run_sweep` takes. `run_entries` makes one
`probes.sweep.ModelEntry` per checkpoint (with its `probe_layers`, role ``agent`` or
``reference`` from the run's config), networks of the same architecture with random weights
(``random-<seed>``, role ``random-weights``) and the raw input planes (``input``, a spatial
"layer" of the observation itself, whose per-square probes see the whole board around each
square). Networks come with TCAV gradients for two targets: the
value head, and the pre-mask policy logit of the column a concept names (``policy_logit``).
`probe_runs` is the whole sweep of ``scripts/probe_sweep.py`` (checks, subsampling whole
games, concept selection, ``sweep.json``); `report_sweep` writes its report with each run's
strength curve.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from agents.checkpoints import list_checkpoints, load_agent
from agents.network import policy_forward, probe_layers, random_weight_network
from agents.runs import game_of_run, good_move_curves, read_run_config
from probes.activations import hooked_activations
from probes.report import StrengthCurve, write_report
from probes.sweep import ConceptLabels, ModelEntry, SweepSettings, run_sweep
from probes.sweep_folder import AGENT, INPUT, RANDOM_WEIGHTS, REFERENCE, SweepInfo, read_info, read_results, write_info
from probes.tcav import layer_gradients


log = logging.getLogger(__name__)

TCAV_TARGETS = {"value": False, "policy_logit": True}  # target -> indexed by the concept's column


def policy_gradients(policy) -> Callable[[np.ndarray, str, str, np.ndarray | None], np.ndarray]:
    """TCAV gradients of a policy: of the value head, or of the pre-mask logit of a given column per input."""

    def gradients(inputs: np.ndarray, layer: str, target: str, columns: np.ndarray | None) -> np.ndarray:
        if target == "value":
            return layer_gradients(policy, layer, inputs, lambda out: out[1].reshape(-1), forward=policy_forward)
        if target == "policy_logit":
            if columns is None or len(columns) != len(inputs):
                raise ValueError("the policy_logit target needs one column per input")
            index = torch.as_tensor(np.asarray(columns), dtype=torch.long)
            return layer_gradients(policy, layer, inputs, lambda out: out[0][torch.arange(len(index)), index],
                                   forward=policy_forward, batch_size=max(1, len(inputs)))
        raise ValueError(f"unknown TCAV target {target!r}; targets: {sorted(TCAV_TARGETS)}")

    return gradients


def _entry(run: str, step: int, model_id: str, policy, role: str) -> ModelEntry:
    policy.set_training_mode(False)
    layers = probe_layers(policy)
    activations = hooked_activations(policy, [layer.name for layer in layers], forward=policy_forward)
    # TCAV on the trunk and the heads' hidden vectors (not the head convs, not the outputs themselves)
    hidden = [layer.name for layer in layers if layer.name.startswith("features_extractor") or layer.name.endswith(".fc")]
    return ModelEntry(run, step, model_id, activations, [(layer.name, layer.spatial) for layer in layers],
                      policy_gradients(policy), TCAV_TARGETS, hidden, role)


def run_entries(run_dir: str | Path, checkpoints: int | None = None, random_seeds: int = 3,
                include_input: bool = True) -> list[ModelEntry]:
    """Sweep entries for a run: its checkpoints (the last `checkpoints` of them, or all), then controls.

    :param run_dir: a run folder of `agents.selfplay.train`.
    :param checkpoints: keep only the latest this many checkpoints (None: all).
    :param random_seeds: networks of the same architecture with random weights.
    :param include_input: add the raw observation planes as a control.
    """
    run_dir = Path(run_dir)
    found = list_checkpoints(run_dir)
    if not found:
        raise FileNotFoundError(f"{run_dir} has no checkpoints (expected {run_dir}/checkpoints/step_*.zip)")
    if checkpoints:
        found = found[-checkpoints:]
    role = REFERENCE if read_run_config(run_dir).kind == "reference" else AGENT
    entries = []
    policy = None
    for step, path in found:
        policy = load_agent(path).policy
        stamp = f"{path.stat().st_size}-{int(path.stat().st_mtime)}"
        entries.append(_entry(run_dir.name, step, f"{run_dir.resolve()}@{step}:{stamp}", policy, role))
    for seed in range(random_seeds):
        fresh = random_weight_network(policy, seed)
        entries.append(_entry(f"random-{seed}", 0, f"{run_dir.resolve()}:random-{seed}", fresh, RANDOM_WEIGHTS))
    if include_input:
        entries.append(ModelEntry("input", 0, "input", lambda inputs: {"planes": inputs}, [("planes", True)],
                                  role=INPUT, square_view="board"))
    return entries


# ---------------------------------------------------------------------------- the sweep of runs on a dataset
def subsample_games(positions, max_positions: int, seed: int = 0):
    """At most about `max_positions` rows of a positions table, whole games chosen at random (all when it is small).

    :param positions: a DataFrame with a ``game_id`` column (`games.datasets.Dataset.positions`).
    """
    if len(positions) <= max_positions:
        return positions
    rng = np.random.default_rng(seed)
    ids = rng.permutation(positions["game_id"].unique())
    sizes = positions.groupby("game_id").size()
    keep, total = [], 0
    for g in ids:
        if total >= max_positions:
            break
        keep.append(g)
        total += sizes[g]
    return positions[positions["game_id"].isin(keep)].reset_index(drop=True)


def concept_labels(game, positions, kinds: dict[str, str], wanted: Sequence[str],
                   states: Sequence | None = None) -> tuple[list[ConceptLabels], dict[str, str]]:
    """The concepts of a dataset that can be swept, as `ConceptLabels`, and the others with the reason.

    A concept is skipped when it has missing labels or a single class in these positions. A
    concept whose registry entry names a per-column concept (``params["columns"]``, e.g. the
    winning move of ``win_in_1``) gets that column per position, for the policy-logit TCAV target.

    :param positions: the positions table (one column per concept).
    :param kinds: concept name -> kind (`games.datasets.Dataset.concept_kinds`).
    :returns: (concepts to sweep, skipped concept -> why).
    """
    from games.concepts import concepts as registered_concepts
    from games.concepts import label, resolve

    states = list(states) if states is not None else [game.parse(t) for t in positions["moves"]]
    registry = registered_concepts(game.name)
    chosen, skipped = [], {}
    for name in wanted:
        per_square = kinds[name] in ("spatial", "per_column")
        values = np.stack(positions[name].to_numpy()) if per_square else positions[name].to_numpy()
        if kinds[name] != "per_column" and np.issubdtype(values.dtype, np.floating) and np.isnan(values).any():
            # (per-column concepts are split into one concept per action by probes.sweep, which skips NaN ones)
            skipped[name] = "it has missing labels"
            continue
        if kinds[name] in ("binary", "categorical") and len(np.unique(values)) < 2:
            skipped[name] = "a single class in this dataset"
            continue
        columns = None  # the output column a concept names (e.g. the winning move), for the policy-logit TCAV target
        entry = registry.get(resolve(game, name))  # an old dataset's column may carry an alias's name
        column_concept = entry.params.get("columns") if entry is not None else None
        if column_concept:
            per_column = label(game, states, [column_concept])[column_concept]
            columns = np.where(per_column.any(axis=1), per_column.argmax(axis=1), -1)
        chosen.append(ConceptLabels(name, kinds[name], values, columns))
    return chosen, skipped


def identical_concepts(data, wanted: Sequence[str]) -> dict[str, str]:
    """Concepts of a dataset whose labels equal an earlier concept's on every position: name -> the kept name
    (`games.datasets.near_duplicate_concepts`; the first of a pair in the manifest's order is kept), so a
    concept is swept once whatever its names."""
    wanted = set(wanted)
    out: dict[str, str] = {}
    for pair in data.near_duplicates():
        if pair["identical"] and pair["a"] in wanted and pair["b"] in wanted and pair["b"] not in out:
            out[pair["b"]] = out.get(pair["a"], pair["a"])
    return out


def concept_families(data) -> dict[str, str]:
    """Concept name -> family for the report's sentences: the concept's cost tier in the dataset's manifest
    (``static``, ``search``, ``rules``, ``solver``); per-action parts ``name[a]`` inherit their concept's."""
    tiers = {c["name"]: c.get("tier", "") for c in data.manifest.get("concept_metadata", [])}
    families = dict(tiers)
    for name, kind in data.concept_kinds.items():
        if kind == "per_column":
            for a in range(data.game.num_actions):
                families[f"{name}[{a}]"] = tiers.get(name, "")
    return families


@dataclass
class SweepOutcome:
    """What `probe_runs` produced: the results file, the sweep's description and the first run's best layers.

    :param results: ``SWEEP/results.parquet``.
    :param info: what was swept (also in ``SWEEP/sweep.json``).
    :param findings: `probes.study.findings` of the sweep's agent runs (verdict, validation-chosen
        layer and delta against the strongest control per concept).
    """

    results: Path
    info: SweepInfo
    findings: object  # pandas.DataFrame


def probe_runs(runs: Sequence[str | Path], dataset: str | Path, out: str | Path | None = None,
               concepts: Sequence[str] | None = None, max_positions: int = 5000, probes: Sequence[str] = ("linear",),
               checkpoints: int = 0, random_seeds: int = 3, jobs: int = 2, seed: int = 0,
               max_components: int = SweepSettings.max_components, spatial_positions: int = SweepSettings.spatial_positions,
               tcav_runs: int = SweepSettings.tcav_runs, tcav_inputs: int = SweepSettings.tcav_inputs,
               progress: bool = True, engine: str = "local", address: str | None = None) -> SweepOutcome:
    """Probe every checkpoint of `runs` on a dataset: layers x concepts x probes, with controls (resumable).

    Checks everything before any work (errors name the option or file), keeps at most
    `max_positions` positions (whole games), sweeps every probe-able concept (or `concepts`)
    and writes ``sweep.json`` and ``results.parquet`` into `out`.

    :param runs: run folders of one game, distinct folder names; the controls (random-weight
        networks, the input planes) use the first run's architecture.
    :param dataset: a dataset folder of `games.datasets.build_dataset` for the same game.
    :param out: the sweep folder (default: ``FIRST_RUN/sweep-DATASETNAME``).
    :param probes: "linear" (logistic/ridge by kind) and/or names in `probes.linear.PROBES`.
    :param checkpoints: only the latest this many checkpoints of each run (0: all).
    :param random_seeds: random-weight control networks.
    :param max_components: principal directions a linear probe sees (0: all).
    :param spatial_positions: positions used by per-square probes (0: all).
    :param tcav_runs: concept and random CAVs per TCAV test (0: no TCAV).
    :param tcav_inputs: held-out positives explained per TCAV test.
    :param engine: where cells are fitted: ``local`` processes or ``ray`` (`jobs` workers; see
        `probes.sweep.run_sweep`); :param address: a Ray cluster's address.
    """
    from common.engine import check_engine_options
    from common.outputs import check_writable

    check_engine_options(engine, address)
    from games.datasets import read_dataset
    from probes.linear import PROBES

    runs = [Path(r) for r in runs]
    dataset = Path(dataset)
    counts = {"--max-positions": (max_positions, 1), "--jobs": (jobs, 1), "--checkpoints": (checkpoints, 0),
              "--random-seeds": (random_seeds, 0), "--max-components": (max_components, 0),
              "--spatial-positions": (spatial_positions, 0), "--tcav-runs": (tcav_runs, 0),
              "--tcav-inputs": (tcav_inputs, 1)}
    for option, (value, least) in counts.items():
        if value < least:
            raise ValueError(f"{option} must be >= {least}, got {value}")
    probe_names = tuple(p.strip() for p in probes if p.strip())
    known_probes = ("linear", *PROBES)
    if not runs:
        raise ValueError("give at least one run folder (--run)")
    if not probe_names or set(probe_names) - set(known_probes):
        raise ValueError(f"unknown probes {sorted(set(probe_names) - set(known_probes)) or list(probes)!r}; "
                         f"known: {', '.join(known_probes)}")
    for r in runs:
        read_run_config(r)  # a clear error for a folder that is not a run
        if not list_checkpoints(r):
            raise FileNotFoundError(f"{r} has no checkpoints (expected {r}/checkpoints/step_*.zip)")
    if len({r.name for r in runs}) != len(runs):
        raise ValueError(f"runs must have distinct folder names, got {[r.name for r in runs]}")
    game = game_of_run(runs[0])
    for other in runs[1:]:
        if repr(game_of_run(other)) != repr(game):
            raise ValueError(f"{other} is a run of {game_of_run(other)!r}, {runs[0]} of {game!r}")
    data = read_dataset(dataset)
    if repr(data.game) != repr(game):
        raise ValueError(f"the dataset is for {data.game!r}, the run for {game!r}")
    out = Path(out) if out is not None else runs[0] / f"sweep-{dataset.name}"
    check_writable(out / "sweep.json", "--out")
    df = subsample_games(data.positions, max_positions, seed)
    kinds = data.concept_kinds
    wanted = list(concepts) if concepts else list(kinds)
    unknown = [c for c in wanted if c not in kinds]
    if unknown:
        raise ValueError(f"concepts {unknown} are not in {dataset}; it has {sorted(kinds)}")
    duplicates = identical_concepts(data, wanted)
    states = [game.parse(t) for t in df["moves"]]
    chosen, skipped = concept_labels(game, df, kinds, [c for c in wanted if c not in duplicates], states)
    skipped.update({name: f"identical to {kept} on this dataset (swept once, as {kept})"
                    for name, kept in duplicates.items()})
    for name, why in skipped.items():
        log.info("skipping %s: %s", name, why)
    if not chosen:
        reasons = "; ".join(f"{name}: {why}" for name, why in skipped.items())
        raise ValueError(f"no concept of {dataset} can be swept ({reasons})")
    inputs = np.stack([game.observation(s) for s in states])
    keys = np.array([str(game.canonical_key(s)) for s in states])
    entries = []
    for i, r in enumerate(runs):  # model-shaped controls once, with the first run's architecture
        entries += run_entries(r, checkpoints=checkpoints or None, random_seeds=random_seeds if i == 0 else 0,
                               include_input=i == 0)
    log.info("%d networks x layers x %d concepts on %d positions (%d games) -> %s", len(entries), len(chosen),
             len(df), df["game_id"].nunique(), out)
    defaults = SweepSettings()
    settings = SweepSettings(probe_names, seed, defaults.n_boot, max_components or None, spatial_positions or None,
                             tcav_runs, tcav_inputs, defaults.tcav_pool)
    info = SweepInfo([str(r.resolve()) for r in runs], str(dataset.resolve()), len(df), int(df["game_id"].nunique()),
                     {**asdict(settings), "probes": list(settings.probes)}, skipped)  # as JSON reads it back
    write_info(out, info)
    path = run_sweep(entries, inputs, chosen, df["game_id"].to_numpy(), keys, out, settings, jobs=jobs,
                     match=df["ply"].to_numpy() if "ply" in df else None, progress=progress, engine=engine,
                     address=address)
    from probes.study import analyse, findings

    return SweepOutcome(path, info, findings(analyse([out]), families=concept_families(data)))


def strength_curves(run_dir: str | Path) -> list[StrengthCurve]:
    """A run's good-move rate on each evaluation set over training, as the report's strength curves."""
    return [StrengthCurve(f"good moves, {name}", np.array(steps), np.array(values))
            for name, (steps, values) in good_move_curves(run_dir).items()]


def _sweep_context(sweep_dirs: Sequence[Path]) -> tuple[dict[str, list[StrengthCurve]], dict[str, str]]:
    """Strength curves of the swept runs that still exist and concept families from the swept datasets."""
    from games.datasets import read_dataset

    strength: dict[str, list[StrengthCurve]] = {}
    families: dict[str, str] = {}
    for sweep_dir in sweep_dirs:
        info = read_info(sweep_dir)
        for run_dir in map(Path, info.runs if info else []):
            if run_dir.exists():
                strength[run_dir.name] = strength_curves(run_dir)
        if info and Path(info.dataset).exists():
            families.update(concept_families(read_dataset(info.dataset)))
    return strength, families


def report_sweep(sweep_dir: str | Path, margin: float = 0.02, alpha: float = 0.05) -> Path:
    """Write the report of a sweep folder (`probes.report.write_report`) with the strength curve of each
    swept run that still exists and the concepts' families; returns ``SWEEP/report.md``."""
    from common.outputs import check_writable
    from probes.study import StudySettings

    sweep_dir = Path(sweep_dir)
    read_results(sweep_dir)  # a clear error before anything else when there are no results
    StudySettings(margin=margin, alpha=alpha)  # out-of-range options: a clear error before any work
    check_writable(sweep_dir / "report.md", "report")
    strength, families = _sweep_context([sweep_dir])
    return write_report(sweep_dir, strength, margin=margin, alpha=alpha, families=families)


def report_study(sweep_dirs: Sequence[str | Path], out: str | Path, margin: float = 0.02,
                 alpha: float = 0.05) -> Path:
    """The study across agent seeds: one sweep folder per seed (each run named after its seed) into one
    report (`probes.study_report.write_study_report`); returns ``OUT/report.md``."""
    from common.outputs import check_writable
    from probes.study import StudySettings
    from probes.study_report import write_study_report

    sweep_dirs = [Path(d) for d in sweep_dirs]
    if len(sweep_dirs) < 2:
        raise ValueError("a study across seeds needs at least two sweep folders (one per seed); for one sweep "
                         "write its own report")
    for d in sweep_dirs:
        read_results(d)
    settings = StudySettings(margin=margin, alpha=alpha)  # out-of-range options: a clear error before any work
    check_writable(Path(out) / "report.md", "--out")
    strength, families = _sweep_context(sweep_dirs)
    return write_study_report(out, sweep_dirs, families, strength, settings,
                              title=f"What the agent represents beyond its architecture and input: "
                                    f"{len(sweep_dirs)} seeds")
