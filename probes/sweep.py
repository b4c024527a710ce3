"""Probe sweeps: models x layers x concepts x probes, with controls, as long-form results.

Game- and model-agnostic: a sweep gets the inputs (e.g. observation planes), the concept
labels with their kinds, a group id per input (game id: splits never separate a game) and
a key per input (canonical position key: control-task labels are consistent per key), and
a list of `ModelEntry` (an activation function and its layers). One fixed grouped split into
train, validation and test games serves every cell, so cells are comparable: probes are
fitted on train, scored on validation (``validation_value``, for choices such as the layer)
and on test (``value`` with its bootstrap interval); each cell's held-out predictions are
saved (`probes.sweep_folder.CellPredictions`) for paired statistics between cells
(`probes.study`).

For every (model, layer, concept, probe) the sweep fits the probe on the real labels, on
Hewitt-Liang control-task labels (``selectivity`` = value - control value; with
de-duplicated positions the control task is shuffled labels in disguise, so it is a check,
not a baseline) and on shuffled labels (a bug check: it must stay at chance), and writes one
row per metric. Position
concepts are probed on the flattened layer; spatial concepts (one label per square) with
one weight-shared probe over the per-square view of spatial layers. Per-column concepts (one
label per action, e.g. "winning moves") become one position concept per action,
``name[a]`` for action index ``a`` (0-based), probed like any other (`expand_per_column`);
one whose labels cannot be probed (missing values, e.g. the exact score of a full column)
is skipped with a warning and a ``probe="skipped"`` row that says why. Majority baselines are
written once per concept (run and role ``baseline``). Controls that are models - the raw input, or
networks with random weights - are just more entries, told apart by their ``role``
(`probes.sweep_folder`). All probes of a cell (every concept
with its control task and shuffled labels) are fitted together (`probes.linear.fit_probes`).

Entries that can give gradients also get **TCAV** for binary concepts on their
`tcav_layers`: for each target (e.g. the value head; a policy logit indexed by the column the
concept names), concept CAVs against matched negatives and as many random CAVs
(`probes.tcav`), rows ``probe="tcav"``, metrics ``tcav_<target>`` (with ``p_value``) and
``cav_accuracy``. A (target, layer) pair whose gradient points the same way for every input
(a layer feeding the target linearly) is no test: its row has no value or p-value and says
so in ``note``. Benjamini-Hochberg over every TCAV test of the sweep adds ``q_value`` and
``significant``.

Each (model, layer) cell is written to its own part file; a rerun skips finished cells.
Cells run in parallel processes (`jobs`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from common.atomic import atomic_target
from common.engine import Engine, check_engine_options, engine_scope, one_thread_per_worker
from probes.activations import ActivationStore, as_flat, board_per_square, per_square
from probes.controls import control_task_labels, majority_baseline, shuffled_labels
from probes.batched import Standardiser, Whitening
from probes.linear import CLASSIFICATION_KINDS, Target, fit_probes, grouped_three_way_split
from probes.sweep_folder import (
    AGENT,
    BASELINE,
    INPUT,
    ROLES,
    SKIPPED,
    CellPredictions,
    predictions_path,
    read_labels,
    read_split,
    read_validation,
    with_roles,
    write_inputs,
    write_results,
)
from probes.tcav import benjamini_hochberg, fit_cavs, gradient_is_constant, tcav_test

log = logging.getLogger(__name__)

COLUMNS = ["run", "role", "checkpoint_step", "layer", "concept", "probe", "metric", "value", "ci_low", "ci_high",
           "validation_value", "control",
           "control_value", "selectivity", "n_train", "n_test", "p_value", "layer_index", "converged", "note"]
POSITION_KINDS = ("binary", "categorical", "count", "continuous")
SWEPT_KINDS = POSITION_KINDS + ("spatial", "per_column")
SQUARE_VIEWS = ("local", "board")
DEGENERATE_TCAV = ("not tested: the target's gradient at this layer points the same way for every input (per named "
                   "column for a column-indexed target): the layer feeds the target linearly, so a CAV's score only "
                   "counts inputs (or columns)")
SKIPPED_RUN = "skipped"  # results rows of concepts the sweep could not probe (``note`` says why)
# (the ``role`` column and the sweep folder's files belong to `probes.sweep_folder`)


@dataclass
class ConceptLabels:
    """Labels of one concept: ``[N]`` for position kinds, ``[N, S]`` (one per square) for ``spatial``."""

    name: str
    kind: str
    labels: np.ndarray
    columns: np.ndarray | None = None  # per input, the model output the concept names (-1: none), for TCAV
    tcav: bool = True  # binary concepts get TCAV on entries with gradients (not the per-action parts of a concept)


def expand_per_column(concepts: Sequence[ConceptLabels]) -> tuple[list[ConceptLabels], dict[str, str]]:
    """Per-column concepts (labels ``[N, A]``) as A position concepts ``name[a]``; the others unchanged.

    0/1 labels give binary concepts and other numbers continuous ones. A per-column concept with
    missing labels (NaN) cannot be probed row-wise and is skipped, and so is an action whose
    label is the same in every position.

    :returns: the concepts to sweep, and the skipped ones' names with the reason.
    """
    out: list[ConceptLabels] = []
    skipped: dict[str, str] = {}
    for c in concepts:
        if c.kind not in SWEPT_KINDS:
            raise ValueError(f"concept {c.name!r} has kind {c.kind!r}; the sweep probes kinds {SWEPT_KINDS}")
        if c.kind != "per_column":
            out.append(c)
            continue
        labels = np.asarray(c.labels)
        if labels.ndim != 2:
            raise ValueError(f"per-column concept {c.name!r} needs labels [N, actions], got shape {labels.shape}")
        if np.issubdtype(labels.dtype, np.floating) and np.isnan(labels).any():
            skipped[c.name] = ("missing labels (NaN, e.g. for full columns): a per-action probe would need "
                               "row masks, which the probes do not take")
            continue
        binary = np.isin(labels, (0, 1)).all()
        for a in range(labels.shape[1]):
            values = labels[:, a].astype(int) if binary else labels[:, a].astype(np.float64)
            if len(np.unique(values)) < 2:  # e.g. no position whose winning move is this column
                skipped[f"{c.name}[{a}]"] = "a single value in this dataset"
                continue
            out.append(ConceptLabels(f"{c.name}[{a}]", "binary" if binary else "continuous", values,
                                     np.full(len(values), a), tcav=False))
    for name, reason in skipped.items():
        log.warning("concept %s is not swept: %s", name, reason)
    return out, skipped


@dataclass
class ModelEntry:
    """One network to sweep.

    :param run: run name (or "input", "random-0", ...).
    :param role: what the network is, one of `probes.sweep_folder.ROLES` (``agent``,
        ``reference``, ``random-weights``, ``input``); written to every row as ``role``.
    :param step: training step of the checkpoint (0 for controls).
    :param model_id: identifies the weights (cache key for activations).
    :param activations: ``inputs -> {layer: array}``.
    :param layers: ``(name, spatial)`` pairs; spatial layers are ``[N, C, H, W]``.
    :param gradients: ``(inputs, layer, target, columns) -> [N, ...]`` gradients of a TCAV
        target with respect to `layer` (``columns``: the output index per input for targets
        indexed by the concept's column, else None); None: no TCAV for this entry.
    :param tcav_targets: TCAV target name -> whether it is indexed by the concept's column
        (e.g. ``{"value": False, "policy_logit": True}``).
    :param tcav_layers: the layers TCAV runs on.
    :param square_view: what a per-square probe of a spatial layer sees at each square:
        ``"local"`` (the layer's channels at that square: a network's own receptive field) or
        ``"board"`` (the whole layer re-centred on the square, `probes.activations.board_per_square`:
        what the raw input gives away about a square, for the input control).
    """

    run: str
    step: int
    model_id: str
    activations: Callable[[np.ndarray], dict[str, np.ndarray]]
    layers: Sequence[tuple[str, bool]]
    gradients: Callable[[np.ndarray, str, str, np.ndarray | None], np.ndarray] | None = None
    tcav_targets: Mapping[str, bool] = field(default_factory=dict)
    tcav_layers: Sequence[str] = ()
    role: str = AGENT
    square_view: str = "local"

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"entry {self.run!r} has role {self.role!r}; roles: {', '.join(ROLES)}")
        if self.square_view not in SQUARE_VIEWS:
            raise ValueError(f"entry {self.run!r} has square_view {self.square_view!r}; views: {', '.join(SQUARE_VIEWS)}")


def _concept_rows(base: dict, features: np.ndarray, labelled: list[tuple[str, str, np.ndarray]], groups: np.ndarray,
                  keys: np.ndarray, split: tuple[np.ndarray, np.ndarray], probe_name: str, seed: int, n_boot: int,
                  max_components: int | None, validation: np.ndarray | None = None,
                  predictions: dict[str, np.ndarray] | None = None) -> list[dict]:
    """Fit task, control-task and shuffled-label probes of several concepts on one feature matrix.

    The task probes' predictions on the validation then test rows go into `predictions`
    (``"<probe>:<concept>"``) when it is given.
    """
    targets = []
    for _, kind, y in labelled:
        task = len(targets)
        targets += [Target(y, kind, True), Target(control_task_labels(keys, y, seed=seed), kind, False, task),
                    Target(shuffled_labels(y, seed=seed), kind, False, task)]
    validation = validation if validation is not None and len(validation) else None
    scores = fit_probes(features, targets, groups, probe_name, split, seed, n_boot, max_components,
                        validation=validation)
    rows = []
    for ci, (name, kind, _) in enumerate(labelled):
        score, control, shuffled = scores[3 * ci: 3 * ci + 3]
        if predictions is not None:
            held = [score.predictions[f] for f in ("validation", "test") if f in score.predictions]
            dtype = np.int16 if kind in CLASSIFICATION_KINDS else np.float32
            predictions[f"{probe_name}:{name}"] = np.concatenate(held).astype(dtype)
        for metric, value in score.metrics.items():
            lo, hi = score.ci.get(metric, (np.nan, np.nan))
            common = {**base, "concept": name, "n_train": score.n_train, "n_test": score.n_test,
                      "converged": score.converged}
            rows.append({**common, "probe": probe_name, "metric": metric, "value": value, "ci_low": lo, "ci_high": hi,
                         "validation_value": score.validation_metrics.get(metric, np.nan),
                         "control": "control_task", "control_value": control.metrics[metric],
                         "selectivity": value - control.metrics[metric]})
            rows.append({**common, "probe": f"{probe_name}/shuffled", "metric": metric,
                         "value": shuffled.metrics[metric], "ci_low": np.nan, "ci_high": np.nan,
                         "validation_value": shuffled.validation_metrics.get(metric, np.nan), "control": "",
                         "control_value": np.nan, "selectivity": np.nan})
    return rows


def _probe_applies(probe_name: str, kind: str) -> bool:
    if probe_name in ("linear", "mlp"):
        return True
    return (kind in CLASSIFICATION_KINDS) == (probe_name in ("logistic", "l1"))


def _spatial_subset(groups: np.ndarray, split: tuple[np.ndarray, ...], limit: int | None,
                    seed: int) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """At most `limit` positions (whole games, chosen at random) and each part of the split restricted to them."""
    rows = np.arange(len(groups))
    if limit is not None and limit < len(groups):
        order = np.random.default_rng(seed).permutation(np.unique(groups))
        sizes = pd.Series(groups).value_counts()
        kept = order[: max(2, int(np.searchsorted(np.cumsum(sizes[order].to_numpy()), limit)))]
        rows = np.flatnonzero(np.isin(groups, kept))
    position_of = np.full(len(groups), -1)
    position_of[rows] = np.arange(len(rows))
    return rows, tuple(position_of[part][position_of[part] >= 0] for part in split)


def held_out_layout(groups: np.ndarray, split: tuple[np.ndarray, np.ndarray], validation: np.ndarray | None,
                    spatial_positions: int | None, seed: int, n_squares: int) -> CellPredictions:
    """The rows a cell's saved predictions are on (`probes.sweep_folder.CellPredictions`), without predictions."""
    validation = np.asarray(validation if validation is not None else [], dtype=int)
    subset, (_, sub_test, sub_val) = _spatial_subset(groups, (*split, validation), spatial_positions, seed)
    return CellPredictions(np.concatenate([validation, split[1]]), len(validation),
                           subset[np.concatenate([sub_val, sub_test])], len(sub_val), n_squares)


def cell_rows(run: str, step: int, layer: str, spatial: bool, acts: np.ndarray, concepts: list[ConceptLabels],
              groups: np.ndarray, keys: np.ndarray, split: tuple[np.ndarray, np.ndarray], probes: Sequence[str],
              seed: int, n_boot: int, max_components: int | None = None, spatial_positions: int | None = None,
              role: str = AGENT, validation: np.ndarray | None = None, square_view: str = "local",
              predictions: dict[str, np.ndarray] | None = None) -> list[dict]:
    """Every probe of one (model, layer) cell: position concepts on the flat layer, spatial ones per square.

    Results rows (columns `COLUMNS`, without ``layer_index``), as the sweep writes them for this cell.

    :param acts: the layer's activations, ``[N, ...]`` (``[N, C, H, W]`` when `spatial`).
    :param split: (train rows, test rows), grouped by game.
    :param spatial_positions: per-square probes use at most this many positions (whole games; None: all).
    :param validation: rows (whole games, outside `split`) scored into ``validation_value``.
    :param square_view: ``"local"`` or ``"board"`` features per square (`ModelEntry.square_view`).
    :param predictions: filled with the task probes' predictions on the validation then test rows
        (the layout of `held_out_layout`).
    """
    base = {"run": run, "role": role, "checkpoint_step": step, "layer": layer}
    rows: list[dict] = []
    position = [c for c in concepts if c.kind in POSITION_KINDS]
    squares = [c for c in concepts if c.kind == "spatial"] if spatial else []
    validation = np.asarray(validation if validation is not None else [], dtype=int)
    for probe_name in probes:
        chosen = [(c.name, c.kind, c.labels) for c in position if _probe_applies(probe_name, c.kind)]
        if chosen:
            rows += _concept_rows(base, as_flat(acts), chosen, groups, keys, split, probe_name, seed, n_boot,
                                  max_components, validation, predictions)
        if not squares or probe_name not in ("linear", "logistic", "l1", "mlp"):
            continue
        subset, (sub_train, sub_test, sub_val) = _spatial_subset(groups, (*split, validation), spatial_positions,
                                                                 seed)
        view = board_per_square if square_view == "board" else per_square
        features = view(acts[subset])
        n_squares = len(features) // len(subset)
        usable = [c for c in squares if c.labels.shape[1] == n_squares]
        for c in squares:
            if c.labels.shape[1] != n_squares:
                log.warning("concept %s has %d squares but layer %s has %d; skipped", c.name, c.labels.shape[1],
                            layer, n_squares)
        if not usable:
            continue
        # one weight-shared probe over all squares: rows are (position, square); a square's key is (position, square)
        g = np.repeat(groups[subset], n_squares)
        k = np.repeat(np.unique(keys[subset], return_inverse=True)[1], n_squares) * n_squares + np.tile(
            np.arange(n_squares), len(subset))

        def square_rows(part: np.ndarray) -> np.ndarray:
            return (np.asarray(part, dtype=int)[:, None] * n_squares + np.arange(n_squares)).reshape(-1)

        labelled = [(c.name, "binary", c.labels[subset].reshape(-1).astype(int)) for c in usable]
        rows += _concept_rows(base, features, labelled, g, k, (square_rows(sub_train), square_rows(sub_test)),
                              probe_name, seed, n_boot, max_components, square_rows(sub_val), predictions)
    return rows


@dataclass(frozen=True)
class SweepSettings:
    """Everything besides the data that a sweep's numbers depend on (part of the resume key).

    :param probes: "linear" (logistic or ridge by kind) and/or names in `probes.linear.PROBES`.
    :param seed: seed of the split, control tasks, shuffles, bootstraps and CAV samples.
    :param n_boot: bootstrap resamples of held-out games for the intervals.
    :param max_components: linear probes and CAVs see at most this many principal directions
        of a layer (None: all). 256 keeps a 1,344-unit conv map's probes within a few points
        of the full fit at a quarter of the cost (`scripts/bench_sweep.py`).
    :param spatial_positions: per-square probes use at most this many positions (whole games):
        2,000 positions are 84,000 (position, square) rows on a 7x6 board; per-square AUROCs
        differ from 4,000 positions' by at most 0.014, inside their intervals, at 40% of
        the cost (`scripts/bench_sweep.py`).
    :param tcav_runs: concept CAVs and random CAVs per TCAV test (0: no TCAV).
    :param tcav_inputs: held-out concept-positive inputs explained per test, at most.
    :param tcav_pool: positives and negatives (each) the CAVs are drawn from, at most.
    """

    probes: tuple[str, ...] = ("linear",)
    seed: int = 0
    n_boot: int = 200
    max_components: int | None = 256
    spatial_positions: int | None = 2000
    tcav_runs: int = 50
    tcav_inputs: int = 200
    tcav_pool: int = 2000

    def digest(self, concepts: Sequence[tuple[str, str]], n: int) -> str:
        # layout 2: train/validation/test folds and saved predictions (parts of older sweeps are not reused)
        payload = json.dumps([list(concepts), n, asdict(self), {"layout": 2}], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class _Cell:
    """One (model, layer) cell for a worker process: where its inputs are and where its rows go."""

    run: str
    role: str
    step: int
    layer: str
    layer_index: int  # position of the layer in the network's forward order
    spatial: bool
    activations: str
    labels: str
    split: str
    concepts: tuple[tuple[str, str], ...]
    tcav: tuple[tuple[str, str, str], ...]  # (concept, target, gradient file)
    settings: SweepSettings
    part: str
    square_view: str = "local"


def _tcav_rows(cell: _Cell, acts: np.ndarray, data, train: np.ndarray) -> list[dict]:
    """TCAV of each (concept, target) with precomputed gradients: score vs random CAVs, CAV accuracy."""
    s = cell.settings
    rows: list[dict] = []
    flat = as_flat(acts)
    match = data["match"] if "match" in data.files else None
    standardiser = Standardiser.fit(flat[train])  # one geometry for every concept of the cell
    geometry = (standardiser, Whitening.fit(standardiser(flat[train]), s.max_components))
    base = {"run": cell.run, "role": cell.role, "checkpoint_step": cell.step, "layer": cell.layer, "probe": "tcav"}
    by_concept: dict[str, list[tuple[str, str]]] = {}
    for concept, target, path in cell.tcav:
        by_concept.setdefault(concept, []).append((target, path))
    for concept, targets in by_concept.items():
        rng = np.random.default_rng(s.seed)
        labels = data[f"concept:{concept}"][train].astype(bool)
        pos, neg = train[labels], train[~labels]
        pos = pos[rng.permutation(len(pos))[: s.tcav_pool]]
        neg = neg[rng.permutation(len(neg))[: s.tcav_pool]]
        try:
            cavs = fit_cavs(flat[pos], flat[neg], s.tcav_runs, s.seed, None if match is None else match[pos],
                            None if match is None else match[neg], geometry=geometry)
        except ValueError as error:
            log.warning("no TCAV for %s at %s/%s: %s", concept, cell.run, cell.layer, error)
            continue
        common = {**base, "concept": concept, "n_train": len(pos) + len(neg)}
        rows.append({**common, "metric": "cav_accuracy", "value": float(cavs.concept_accuracy.mean()),
                     "ci_low": float(np.percentile(cavs.concept_accuracy, 2.5)),
                     "ci_high": float(np.percentile(cavs.concept_accuracy, 97.5)), "control": "random_cav",
                     "control_value": float(cavs.random_accuracy.mean()),
                     "selectivity": float(cavs.concept_accuracy.mean() - cavs.random_accuracy.mean()), "n_test": 0})
        for target, path in targets:
            with np.load(path) as saved:
                gradients, columns = saved["gradients"], saved["columns"]
            if gradient_is_constant(gradients, groups=columns):  # a layer feeding a linear head: no test
                rows.append({**common, "metric": f"tcav_{target}", "value": np.nan, "control": "random_cav",
                             "n_test": len(gradients), "note": DEGENERATE_TCAV})
                continue
            result = tcav_test(cavs, gradients)
            rows.append({**common, "metric": f"tcav_{target}", "value": result.score,
                         "ci_low": float(np.percentile(result.concept_scores, 2.5)),
                         "ci_high": float(np.percentile(result.concept_scores, 97.5)), "control": "random_cav",
                         "control_value": result.random_score, "selectivity": result.score - result.random_score,
                         "n_test": len(gradients), "p_value": result.p_value})
    return rows


def _run_cell(cell: _Cell) -> str:
    acts = np.load(cell.activations)
    data = read_labels(cell.labels)
    concepts = [ConceptLabels(name, kind, data[f"concept:{name}"]) for name, kind in cell.concepts]
    train, test = read_split(cell.split)
    validation = read_validation(cell.split)
    s = cell.settings
    n_squares = int(np.prod(acts.shape[2:])) if cell.spatial and acts.ndim == 4 else 0
    saved = held_out_layout(data["groups"], (train, test), validation, s.spatial_positions, s.seed, n_squares)
    saved.cell = {"run": cell.run, "role": cell.role, "step": cell.step, "layer": cell.layer,
                  "layer_index": cell.layer_index}
    rows = cell_rows(cell.run, cell.step, cell.layer, cell.spatial, acts, concepts, data["groups"], data["keys"],
                     (train, test), s.probes, s.seed, s.n_boot, s.max_components, s.spatial_positions, cell.role,
                     validation, cell.square_view, saved.predictions)
    saved.save(predictions_path(cell.part))
    if cell.tcav:
        rows += _tcav_rows(cell, acts, data, train)
    frame = pd.DataFrame(rows, columns=COLUMNS).assign(layer_index=cell.layer_index)
    frame["converged"] = frame["converged"].astype("boolean")  # null for rows without a fitted probe (TCAV)
    with atomic_target(cell.part, suffix=".parquet") as tmp:
        frame.to_parquet(tmp, index=False)
    return cell.part


def _explained(concept: ConceptLabels, test: np.ndarray, indexed: bool, count: int, seed: int) -> np.ndarray:
    """Held-out concept-positive inputs to explain (with a named output column when the target needs one)."""
    rows = test[concept.labels[test].astype(bool)]
    if indexed:
        if concept.columns is None:
            return rows[:0]
        rows = rows[concept.columns[rows] >= 0]
    return np.sort(np.random.default_rng(seed).permutation(rows)[:count])


def _tcav_gradients(entry: ModelEntry, layer: str, inputs: np.ndarray, concepts: Sequence[ConceptLabels],
                    test: np.ndarray, settings: SweepSettings, folder: Path) -> list[tuple[str, str, str]]:
    """Gradients of the entry's TCAV targets at `layer` on each concept's explained inputs, saved to disk.

    Targets that do not depend on the layer (e.g. the value head for a policy-head layer) are skipped.
    """
    out = []
    for concept in concepts:
        if concept.kind != "binary" or not concept.tcav:
            continue
        for target, indexed in entry.tcav_targets.items():
            rows = _explained(concept, test, indexed, settings.tcav_inputs, settings.seed)
            if len(rows) < 2:
                continue
            path = folder / f"{layer}-{concept.name}-{target}.npz"
            if not path.exists():
                columns = concept.columns[rows] if indexed else None
                grads = entry.gradients(inputs[rows], layer, target, columns)
                if not np.any(grads):
                    continue
                with atomic_target(path, suffix=".npz") as tmp:  # with the column each gradient is of
                    np.savez(tmp, gradients=np.asarray(grads, dtype=np.float32).reshape(len(rows), -1),
                             columns=np.asarray(columns if columns is not None else np.full(len(rows), -1)))
            out.append((concept.name, target, str(path)))
    return out


def run_sweep(entries: Sequence[ModelEntry], inputs: np.ndarray, concepts: Sequence[ConceptLabels], groups: np.ndarray,
              keys: np.ndarray, out_dir: str | Path, settings: SweepSettings = SweepSettings(), jobs: int = 1,
              match: np.ndarray | None = None, progress: bool = True, engine: str | Engine = "local",
              address: str | None = None) -> Path:
    """Run (or resume) a sweep; returns ``out_dir/results.parquet`` (columns `COLUMNS`).

    :param entries: the networks (checkpoints and model-shaped controls).
    :param inputs: network inputs, one per position.
    :param concepts: labels and kinds (binary ones also get TCAV on entries with gradients).
    :param groups: game id per position.
    :param keys: canonical key per position (control-task consistency).
    :param settings: probe types, controls, TCAV and resampling settings.
    :param jobs: parallel workers over cells (processes, or Ray actors).
    :param match: a nuisance value per input (e.g. the ply) that TCAV negatives are matched on.
    :param engine: ``local`` processes or ``ray`` (`common.engine`); one work item per (network,
        layer) cell, whose probes and controls are fitted in the worker and written as the
        cell's part file, so results are the same whatever the engine. Activations are
        extracted by this process into the sweep folder, which the workers read: on a
        multi-machine Ray cluster that folder must be on a shared file system.
    :param address: Ray cluster address (``engine="ray"`` only).
    """
    check_engine_options(engine, address)
    out = Path(out_dir)
    parts = out / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    predictions_path(parts / "x.parquet").parent.mkdir(exist_ok=True)
    n = len(inputs)
    concepts, skipped = expand_per_column(concepts)
    for c in concepts:
        if len(c.labels) != n:
            raise ValueError(f"concept {c.name!r} has {len(c.labels)} labels for {n} inputs")
        if c.columns is not None and len(c.columns) != n:
            raise ValueError(f"concept {c.name!r} has {len(c.columns)} columns for {n} inputs")
    if len(groups) != n or len(keys) != n or (match is not None and len(match) != n):
        raise ValueError(f"groups ({len(groups)}), keys ({len(keys)}) and match must have one entry per input ({n})")
    train, validation, test = grouped_three_way_split(np.asarray(groups), seed=settings.seed)
    labels_path, split_path = write_inputs(out, groups, keys, {c.name: c.labels for c in concepts}, (train, test),
                                           match, validation)
    meta = tuple((c.name, c.kind) for c in concepts)
    digest = settings.digest(meta, n)
    store = ActivationStore(out / "activations")
    cells = []
    for entry in tqdm(entries, desc="activations", unit="network", disable=not progress, leave=False):
        pending = []
        for index, (layer, spatial) in enumerate(entry.layers):
            part = parts / f"{entry.run}-{entry.step}-{layer}-{digest}.parquet".replace("/", "_")
            if not part.exists():
                pending.append((index, layer, spatial, part))
        if not pending:
            continue
        store.get(entry.activations, inputs, [layer for _, layer, _, _ in pending], entry.model_id, f"n{n}")
        for index, layer, spatial, part in pending:
            tcav = ()
            if settings.tcav_runs and entry.gradients is not None and layer in entry.tcav_layers:
                folder = store.path(entry.model_id, layer, f"n{n}").parent / f"gradients-{digest}"
                tcav = tuple(_tcav_gradients(entry, layer, inputs, concepts, test, settings, folder))
            cells.append(_Cell(entry.run, entry.role, entry.step, layer, index, spatial,
                               str(store.path(entry.model_id, layer, f"n{n}")), str(labels_path), str(split_path), meta,
                               tcav, settings, str(part), entry.square_view))
    # The raw input's cell is the slowest single cell (its per-square probes fit nearly separable
    # data: ~80 s on 2 cores against ~15 s for a trunk layer); started last it ran alone at the end.
    cells.sort(key=lambda cell: cell.role != INPUT)
    log.info("%d cells to fit", len(cells))
    if cells:
        with engine_scope(engine if len(cells) > 1 else "local", jobs if len(cells) > 1 else 1, address) as runner:
            for _ in tqdm(runner.map_unordered(_run_cell, cells, one_thread_per_worker), total=len(cells),
                          desc="probe sweep", unit="cell", disable=not progress):
                pass
    baseline = []
    for c in concepts:
        if c.kind in POSITION_KINDS:
            for metric, value in majority_baseline(c.labels, c.kind, train, test).items():
                baseline.append({"run": "baseline", "role": BASELINE, "checkpoint_step": 0, "layer": "", "concept": c.name,
                                 "probe": "majority", "metric": metric, "value": value, "n_train": len(train),
                                 "n_test": len(test)})
    frames = [pd.read_parquet(p) for p in sorted(parts.glob(f"*-{digest}.parquet"))]
    skipped_rows = [{"run": SKIPPED_RUN, "role": SKIPPED, "checkpoint_step": 0, "layer": "", "concept": name, "probe": "skipped",
                     "metric": "skipped", "value": np.nan, "note": reason} for name, reason in skipped.items()]
    extra = pd.DataFrame(baseline + skipped_rows, columns=COLUMNS)
    results = pd.concat([f.reindex(columns=COLUMNS) for f in frames if len(f)] + [extra], ignore_index=True)
    results = with_roles(results)  # part files of a sweep begun before the role column get theirs from the run name
    results["converged"] = results["converged"].astype("boolean")
    tested = results["p_value"].notna().to_numpy()
    results["q_value"] = np.nan
    results["significant"] = pd.array([pd.NA] * len(results), dtype="boolean")
    if tested.any():  # Benjamini-Hochberg over every TCAV test of the grid
        q, significant = benjamini_hochberg(results.loc[tested, "p_value"].to_numpy())
        results.loc[tested, "q_value"] = q
        results.loc[tested, "significant"] = significant
    return write_results(out, results)

