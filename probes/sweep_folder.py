"""The sweep folder: the one module that writes and reads ``results.parquet``, ``sweep.json`` and the label files.

A sweep folder (`probes.sweep.run_sweep`, driven by `agents.probing.probe_runs`)::

    SWEEP/sweep.json        what was swept: runs, dataset, sizes, settings, skipped concepts (`SweepInfo`)
    SWEEP/results.parquet   long-form results, one row per (run, step, layer, concept, probe, metric)
    SWEEP/labels.npz        groups, keys, concept labels (and the TCAV match value) of the swept positions
    SWEEP/split.npz         the grouped train/validation/test split every cell uses
    SWEEP/parts/, SWEEP/activations/   per-cell results and cached activations (resume)
    SWEEP/predictions/      per-cell held-out predictions (`CellPredictions`), for paired statistics

Every results row has a ``role`` saying what its network is: `AGENT` (a self-play run),
`REFERENCE` (a network trained on the oracle), `RANDOM_WEIGHTS`, `INPUT` (the raw input
planes), `BASELINE` (majority baseline, no network) or `SKIPPED` (a concept that could not
be probed). Results written before the column existed get it from the old run-name
prefixes (`role_from_run_name`), so recorded results still report.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.atomic import atomic_target, atomic_write_text
from common.json_files import read_json

AGENT = "agent"
REFERENCE = "reference"
RANDOM_WEIGHTS = "random-weights"
INPUT = "input"
BASELINE = "baseline"
SKIPPED = "skipped"
ROLES = (AGENT, REFERENCE, RANDOM_WEIGHTS, INPUT, BASELINE, SKIPPED)
TRAINED_ROLES = (AGENT, REFERENCE)  # networks whose training the report follows (the rest are controls)

RESULTS_FILE = "results.parquet"
INFO_FILE = "sweep.json"
LABELS_FILE = "labels.npz"
SPLIT_FILE = "split.npz"


def role_from_run_name(run: str) -> str:
    """The role of a results row written before the ``role`` column, from its run name's old prefix."""
    if run.startswith("random-"):
        return RANDOM_WEIGHTS
    if run in (INPUT, BASELINE, SKIPPED):
        return run
    return AGENT


def with_roles(results: pd.DataFrame) -> pd.DataFrame:
    """`results` with a complete ``role`` column (derived from run names where it is missing or empty)."""
    results = results.copy()
    derived = results["run"].astype(str).map(role_from_run_name)
    if "role" not in results:
        results.insert(results.columns.get_loc("run") + 1, "role", derived)
    else:
        results["role"] = results["role"].where(results["role"].notna() & (results["role"] != ""), derived)
    return results


def write_results(sweep_dir: str | Path, results: pd.DataFrame) -> Path:
    """Write ``SWEEP/results.parquet`` atomically; returns its path."""
    bad = sorted(set(results["role"]) - set(ROLES))
    if bad:
        raise ValueError(f"unknown roles {bad} in sweep results; roles: {', '.join(ROLES)}")
    path = Path(sweep_dir) / RESULTS_FILE
    with atomic_target(path, suffix=".parquet") as tmp:
        results.to_parquet(tmp, index=False)
    return path


def read_results(sweep_dir: str | Path) -> pd.DataFrame:
    """``SWEEP/results.parquet`` with its ``role`` column (filled in for results of older sweeps)."""
    path = Path(sweep_dir) / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run scripts/probe_sweep.py first")
    try:
        results = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds on a truncated file
        raise ValueError(f"{path} cannot be read as Parquet ({type(exc).__name__}: {exc}); rerun the sweep") from exc
    return with_roles(results)


@dataclass
class SweepInfo:
    """What a sweep covered (``sweep.json``).

    :param runs: the swept run folders (absolute paths), the first one's architecture used for the controls.
    :param dataset: the dataset folder the positions come from.
    :param positions: positions swept (after subsampling).
    :param games: games those positions come from.
    :param settings: the `probes.sweep.SweepSettings` fields.
    :param skipped_concepts: concept -> why it was not swept.
    """

    runs: list[str]
    dataset: str
    positions: int
    games: int
    settings: dict = field(default_factory=dict)
    skipped_concepts: dict[str, str] = field(default_factory=dict)


def write_info(sweep_dir: str | Path, info: SweepInfo) -> Path:
    """Write ``SWEEP/sweep.json`` atomically (creating the folder); returns its path."""
    path = Path(sweep_dir) / INFO_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json.dumps(asdict(info), indent=1, default=str), path)
    return path


def read_info(sweep_dir: str | Path) -> SweepInfo | None:
    """``SWEEP/sweep.json``, or None for a sweep folder without one (e.g. a sweep run from Python)."""
    path = Path(sweep_dir) / INFO_FILE
    if not path.is_file():
        return None
    data = read_json(path, missing=f"{sweep_dir} has no sweep description")
    known = {k: data[k] for k in ("runs", "dataset", "positions", "games", "settings", "skipped_concepts") if k in data}
    try:
        return SweepInfo(**known)
    except TypeError as exc:
        raise ValueError(f"{path} is not a sweep description ({exc})") from exc


def write_inputs(sweep_dir: str | Path, groups: np.ndarray, keys: np.ndarray, labels: dict[str, np.ndarray],
                 split: tuple[np.ndarray, np.ndarray], match: np.ndarray | None = None,
                 validation: np.ndarray | None = None) -> tuple[Path, Path]:
    """Write ``labels.npz`` (groups, keys, ``concept:<name>`` labels, optional ``match``) and ``split.npz``
    (train and test rows, and the validation rows when there are some).

    :returns: (labels file, split file).
    """
    folder = Path(sweep_dir)
    split_path, labels_path = folder / SPLIT_FILE, folder / LABELS_FILE
    with atomic_target(split_path, suffix=".npz") as tmp:
        parts = {} if validation is None else {"validation": np.asarray(validation)}
        np.savez(tmp, train=split[0], test=split[1], **parts)
    with atomic_target(labels_path, suffix=".npz") as tmp:
        extra = {} if match is None else {"match": np.asarray(match)}
        np.savez(tmp, groups=np.asarray(groups), keys=np.asarray(keys).astype(str), **extra,
                 **{f"concept:{name}": np.asarray(values) for name, values in labels.items()})
    return labels_path, split_path


def read_labels(path: str | Path) -> Any:
    """A ``labels.npz`` of `write_inputs` (``data["concept:<name>"]``, ``data["groups"]``, ...)."""
    return np.load(path, allow_pickle=True)


def read_split(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A ``split.npz`` of `write_inputs`: (train rows, test rows)."""
    split = np.load(path)
    return split["train"], split["test"]


def read_validation(path: str | Path) -> np.ndarray | None:
    """The validation rows of a ``split.npz`` (None for a sweep written before validation folds)."""
    split = np.load(path)
    return split["validation"] if "validation" in split.files else None


# ---------------------------------------------------------------------------- per-cell predictions
PREDICTIONS_DIR = "predictions"


@dataclass
class CellPredictions:
    """The held-out predictions of one (run, step, layer) cell, for paired comparisons between cells.

    Rows are the validation rows then the test rows of the sweep's split: positions for
    position concepts (`position_rows`, indices into ``labels.npz``); for spatial concepts,
    (position, square) pairs, position by position (`square_positions`, ``n_squares`` each).

    :param predictions: ``"<probe>:<concept>"`` -> predicted labels on those rows.
    :param cell: the cell's ``run``, ``role``, ``step`` and ``layer`` (and ``layer_index``).
    """

    position_rows: np.ndarray
    n_validation_positions: int
    square_positions: np.ndarray
    n_validation_square_positions: int
    n_squares: int
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    cell: dict = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        with atomic_target(path, suffix=".npz") as tmp:
            np.savez(tmp, position_rows=self.position_rows, n_validation_positions=self.n_validation_positions,
                     square_positions=self.square_positions,
                     n_validation_square_positions=self.n_validation_square_positions, n_squares=self.n_squares,
                     cell=json.dumps(self.cell), **{f"pred:{k}": v for k, v in self.predictions.items()})
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "CellPredictions":
        with np.load(path) as data:
            return cls(data["position_rows"], int(data["n_validation_positions"]), data["square_positions"],
                       int(data["n_validation_square_positions"]), int(data["n_squares"]),
                       {k[5:]: data[k] for k in data.files if k.startswith("pred:")},
                       json.loads(str(data["cell"])) if "cell" in data.files else {})


def predictions_path(part: str | Path) -> Path:
    """Where the predictions of the cell whose results part file is `part` go."""
    part = Path(part)
    return part.parent.parent / PREDICTIONS_DIR / (part.stem + ".npz")
