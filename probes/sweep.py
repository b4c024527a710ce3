"""Probe sweeps: models x layers x concepts x probes, with controls, as long-form results.

Game- and model-agnostic: a sweep gets the inputs (e.g. observation planes), the concept
labels with their kinds, a group id per input (game id: splits never separate a game) and
a key per input (canonical position key: control-task labels are consistent per key), and
a list of `ModelEntry` (an activation function and its layers). One fixed grouped split
serves every cell, so cells are comparable.

For every (model, layer, concept, probe) the sweep fits the probe on the real labels, on
Hewitt-Liang control-task labels (selectivity = value - control value) and on shuffled
labels (a bug check: it must stay at chance), and writes one row per metric. Position
concepts are probed on the flattened layer; spatial concepts (one label per square) with
one weight-shared probe over the per-square view of spatial layers. Majority baselines are
written once per concept (run ``baseline``). Controls that are models - the raw input, or
networks with random weights - are just more entries.

Each (model, layer) cell is written to its own part file; a rerun skips finished cells.
Cells run in parallel processes (`jobs`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from games.atomic import atomic_target
from probes.activations import ActivationStore, as_flat, per_square
from probes.controls import control_task_labels, majority_baseline, shuffled_labels
from probes.linear import default_probe, fit_probe, grouped_split

log = logging.getLogger(__name__)

COLUMNS = ["run", "checkpoint_step", "layer", "concept", "probe", "metric", "value", "ci_low", "ci_high", "control",
           "control_value", "selectivity", "n_train", "n_test"]
POSITION_KINDS = ("binary", "categorical", "count", "continuous")


@dataclass
class ConceptLabels:
    """Labels of one concept: ``[N]`` for position kinds, ``[N, S]`` (one per square) for ``spatial``."""

    name: str
    kind: str
    labels: np.ndarray


@dataclass
class ModelEntry:
    """One network to sweep.

    :param run: run name (or "input", "random-0", ...).
    :param step: training step of the checkpoint (0 for controls).
    :param model_id: identifies the weights (cache key for activations).
    :param activations: ``inputs -> {layer: array}``.
    :param layers: ``(name, spatial)`` pairs; spatial layers are ``[N, C, H, W]``.
    """

    run: str
    step: int
    model_id: str
    activations: Callable[[np.ndarray], dict[str, np.ndarray]]
    layers: Sequence[tuple[str, bool]]


def _cell_rows(run: str, step: int, layer: str, spatial: bool, acts: np.ndarray, concepts: list[ConceptLabels],
               groups: np.ndarray, keys: np.ndarray, split: tuple[np.ndarray, np.ndarray], probes: Sequence[str],
               seed: int, n_boot: int) -> list[dict]:
    rows = []
    for concept in concepts:
        if concept.kind == "spatial":
            if not spatial:
                continue
            features = per_square(acts)
            squares = concept.labels.shape[1]
            if len(features) != len(acts) * squares:
                log.warning("concept %s has %d squares but layer %s has %d; skipped", concept.name, squares, layer,
                            len(features) // len(acts))
                continue
            y = concept.labels.reshape(-1).astype(int)
            g = np.repeat(groups, squares)
            k = np.repeat(np.unique(keys, return_inverse=True)[1], squares) * squares + np.tile(np.arange(squares), len(acts))
            cell_split = tuple(np.concatenate([i * squares + np.arange(squares) for i in part]) for part in split)
            kind = "binary"
        elif concept.kind in POSITION_KINDS:
            features, y, g, k, cell_split, kind = as_flat(acts), concept.labels, groups, keys, split, concept.kind
        else:
            continue
        control_y = control_task_labels(k, y, seed=seed)
        shuffled_y = shuffled_labels(y, seed=seed)
        for probe_name in probes:
            probe = default_probe(kind) if probe_name == "linear" else probe_name
            if probe in ("logistic", "l1") and kind not in ("binary", "categorical"):
                continue
            if probe == "ridge" and kind in ("binary", "categorical"):
                continue
            score = fit_probe(features, y, g, kind, probe, split=cell_split, seed=seed, n_boot=n_boot)
            control = fit_probe(features, control_y, g, kind, probe, split=cell_split, seed=seed, n_boot=0)
            shuffled = fit_probe(features, shuffled_y, g, kind, probe, split=cell_split, seed=seed, n_boot=0)
            for metric, value in score.metrics.items():
                lo, hi = score.ci.get(metric, (np.nan, np.nan))
                base = {"run": run, "checkpoint_step": step, "layer": layer, "concept": concept.name,
                        "n_train": score.n_train, "n_test": score.n_test}
                rows.append({**base, "probe": probe_name, "metric": metric, "value": value, "ci_low": lo,
                             "ci_high": hi, "control": "control_task", "control_value": control.metrics[metric],
                             "selectivity": value - control.metrics[metric]})
                rows.append({**base, "probe": f"{probe_name}/shuffled", "metric": metric,
                             "value": shuffled.metrics[metric], "ci_low": np.nan, "ci_high": np.nan, "control": "",
                             "control_value": np.nan, "selectivity": np.nan})
    return rows


def _run_cell(task: tuple) -> str:
    (run, step, layer, spatial, act_path, labels_path, concept_meta, split_path, probes, seed, n_boot, part) = task
    acts = np.load(act_path)
    data = np.load(labels_path, allow_pickle=True)
    concepts = [ConceptLabels(name, kind, data[f"concept:{name}"]) for name, kind in concept_meta]
    split_data = np.load(split_path)
    rows = _cell_rows(run, step, layer, spatial, acts, concepts, data["groups"], data["keys"],
                      (split_data["train"], split_data["test"]), probes, seed, n_boot)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    with atomic_target(part, suffix=".parquet") as tmp:
        frame.to_parquet(tmp, index=False)
    return part


def run_sweep(entries: Sequence[ModelEntry], inputs: np.ndarray, concepts: Sequence[ConceptLabels], groups: np.ndarray,
              keys: np.ndarray, out_dir: str | Path, probes: Sequence[str] = ("linear",), jobs: int = 1, seed: int = 0,
              n_boot: int = 200, progress: bool = True) -> Path:
    """Run (or resume) a sweep; returns ``out_dir/results.parquet`` (columns `COLUMNS`).

    :param entries: the networks (checkpoints and model-shaped controls).
    :param inputs: network inputs, one per position.
    :param concepts: labels and kinds.
    :param groups: game id per position.
    :param keys: canonical key per position (control-task consistency).
    :param probes: "linear" (logistic or ridge by kind) and/or names in `probes.linear.PROBES`.
    :param jobs: parallel processes over cells.
    """
    out = Path(out_dir)
    parts = out / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    n = len(inputs)
    for c in concepts:
        if len(c.labels) != n:
            raise ValueError(f"concept {c.name!r} has {len(c.labels)} labels for {n} inputs")
    if len(groups) != n or len(keys) != n:
        raise ValueError(f"groups ({len(groups)}) and keys ({len(keys)}) must have one entry per input ({n})")
    train, test = grouped_split(np.asarray(groups), seed=seed)
    split_path = out / "split.npz"
    labels_path = out / "labels.npz"
    with atomic_target(split_path, suffix=".npz") as tmp:
        np.savez(tmp, train=train, test=test)
    with atomic_target(labels_path, suffix=".npz") as tmp:
        np.savez(tmp, groups=np.asarray(groups), keys=np.asarray(keys).astype(str),
                 **{f"concept:{c.name}": np.asarray(c.labels) for c in concepts})
    meta = [(c.name, c.kind) for c in concepts]
    config_digest = hashlib.sha256(json.dumps([meta, list(probes), seed, n_boot, n]).encode()).hexdigest()[:12]
    store = ActivationStore(out / "activations")
    tasks = []
    for entry in entries:
        for layer, spatial in entry.layers:
            part = parts / f"{entry.run}-{entry.step}-{layer}-{config_digest}.parquet".replace("/", "_")
            if part.exists():
                continue
            store.get(entry.activations, inputs, [layer], entry.model_id, f"n{n}")
            act_path = store.path(entry.model_id, layer, f"n{n}")
            tasks.append((entry.run, entry.step, layer, spatial, str(act_path), str(labels_path), meta, str(split_path),
                          tuple(probes), seed, n_boot, str(part)))
    log.info("%d cells to fit", len(tasks))
    iterator = _map(tasks, jobs)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=len(tasks), desc="probe sweep", unit="cell")
    for _ in iterator:
        pass
    baseline = []
    for c in concepts:
        if c.kind in POSITION_KINDS:
            for metric, value in majority_baseline(c.labels, c.kind, train, test).items():
                baseline.append({"run": "baseline", "checkpoint_step": 0, "layer": "", "concept": c.name,
                                 "probe": "majority", "metric": metric, "value": value, "ci_low": np.nan,
                                 "ci_high": np.nan, "control": "", "control_value": np.nan, "selectivity": np.nan,
                                 "n_train": len(train), "n_test": len(test)})
    frames = [pd.read_parquet(p) for p in sorted(parts.glob(f"*-{config_digest}.parquet"))]
    results = pd.concat(frames + [pd.DataFrame(baseline, columns=COLUMNS)], ignore_index=True)
    path = out / "results.parquet"
    with atomic_target(path, suffix=".parquet") as tmp:
        results.to_parquet(tmp, index=False)
    return path


def _map(tasks: list, jobs: int):
    if jobs <= 1 or len(tasks) <= 1:
        for t in tasks:
            yield _run_cell(t)
        return
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(jobs) as pool:
        yield from pool.imap_unordered(_run_cell, tasks)
