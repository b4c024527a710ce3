"""Sparse dictionaries on a network's layers, checked against exact concepts and judged by the solver.

For one network (a `BoardPolicy`) on one labelled dataset, and each layer:

1. **train** a sparse autoencoder (`probes.sae.SparseAutoencoder`) on the layer's activations:
   per square (one row per board square, the channel vector) on spatial layers, the whole
   vector on flat ones; rows of the dataset's train games plus extra unlabelled positions;
2. **fidelity**: variance explained on the test games, and the network's good-move,
   perfect-move and value-sign rates on the test positions with the reconstruction spliced in
   place of the layer, against the clean network and the layer replaced by its train mean
   (per square), with paired bootstrap intervals;
3. **coverage**: for every concept target, the best single feature, the best small set and a
   linear probe of the same layer (`probes.dictionary_scores.score_concept`); square targets
   per square on spatial layers, position targets on the features' maximum over squares (a
   probe on the whole flattened map beside them); when a control network's dictionary is given
   (a random-weight network of the same architecture), its best feature on the same rows, paired;
4. **what matches nothing**: features whose firing detects no concept (precision below
   `DictionarySettings.match_precision`, or no lift over the concept's base rate;
   `probes.dictionary_scores.describe_features`), described by the board or solver quantity
   that best separates where they fire, with their top-activating positions;
5. **interventions**: the features matched to a move concept (its small set on the square
   target naming its moves) ablated at the concept's squares on test positions where it holds,
   against as many random live features at the same squares and the same features at random
   playable squares (`probes.interventions.edit_records`: solver-judged effects and the excess
   beyond the strongest control).

On flat layers `run_transcoders` also fits a transcoder (the layer's input to its output) and
judges play with its prediction spliced in place of the layer.

Each (network, layer) result is one JSON file plus the dictionary's weights, written
atomically; a run resumes from them. The game supplies the targets and descriptors
(Connect Four: `agents.connect4.dictionaries`).
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from scipy import stats

from agents.network import policy_forward, probe_layers
from common.atomic import atomic_write_json
from probes.causal import edit_output
from probes.dictionary_scores import (
    Folds,
    describe_features,
    feature_aurocs,
    paired_difference,
    probe_scores,
    score_concept,
)
from probes.interventions import (
    Edit,
    JudgedPositions,
    at_squares,
    channel_vectors,
    edit_records,
    judged_play,
    layer_activations,
    mean_interval,
    random_squares,
)
from probes.sae import SparseAutoencoder, dictionary_statistics, variance_explained

log = logging.getLogger(__name__)

RESULT_LAYOUT = 3
DEFAULT_LAYERS = ("features_extractor.stem", "features_extractor.blocks.0", "features_extractor.blocks.1",
                  "features_extractor.blocks.2", "mlp_extractor.policy_net.fc", "mlp_extractor.value_net.fc")
FIDELITY_METRICS = ("good", "perfect", "value_sign")
EXAMPLES = 4  # top-activating test positions kept per feature that keeps examples (`wants_examples`)
EXAMPLE_SEPARATION = 0.5


@dataclass(frozen=True)
class DictionarySettings:
    """Settings of the dictionary study (stored with every result; a result with other settings is redone).

    :param architecture: ``topk`` or ``relu`` (`probes.sae`).
    :param square_expansion: features per channel on spatial layers (dictionary = expansion x C).
    :param flat_expansion: features per unit on flat layers.
    :param square_k: active features per row on spatial layers (``topk``).
    :param flat_k: active features per row on flat layers (``topk``).
    :param l1_coefficient: sparsity penalty (``relu``).
    :param n_steps: optimiser steps per dictionary.
    :param match_precision: a feature "matches" a concept when the concept holds on this fraction of the
        test rows where the feature fires (and 1.5 times its base rate).
    :param n_random: random controls per intervention kind.
    :param n_boot: bootstrap replicates per interval.
    :param seed: seed of the dictionaries, the split (the study's), controls and bootstrap.
    """

    architecture: str = "topk"
    square_expansion: int = 8
    flat_expansion: int = 4
    square_k: int = 8
    flat_k: int = 16
    l1_coefficient: float = 2.0
    n_steps: int = 3000
    batch_size: int = 1024
    lr: float = 1e-3
    match_precision: float = 0.9
    n_random: int = 5
    n_boot: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("square_expansion", "flat_expansion", "square_k", "flat_k", "n_steps", "batch_size", "n_random"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"DictionarySettings.{name} must be a positive integer, got {value!r}")
        if self.n_boot < 10:
            raise ValueError(f"DictionarySettings.n_boot must be at least 10, got {self.n_boot}")
        if not 0.5 < self.match_precision <= 1:
            raise ValueError(f"DictionarySettings.match_precision must be in (0.5, 1], got {self.match_precision}")
        SparseAutoencoder(architecture=self.architecture, l1_coefficient=self.l1_coefficient, lr=self.lr)._check_params()

    def to_dict(self) -> dict:
        return {**asdict(self), "layout": RESULT_LAYOUT}

    def dictionary(self, width: int, spatial: bool, progress: bool = False) -> SparseAutoencoder:
        """An untrained dictionary for a layer of `width` units (channels on spatial layers)."""
        expansion, k = (self.square_expansion, self.square_k) if spatial else (self.flat_expansion, self.flat_k)
        return SparseAutoencoder(n_features=expansion * width, architecture=self.architecture, k=min(k, expansion * width),
                                 l1_coefficient=self.l1_coefficient, n_steps=self.n_steps, batch_size=self.batch_size,
                                 lr=self.lr, seed=self.seed, progress=progress)


@dataclass
class DictionaryInputs:
    """What the study of one network on one dataset needs (one row per position unless said otherwise).

    :param texts: the positions (the game's text form), for the dashboards.
    :param inputs: ``[N, ...]`` network inputs.
    :param folds: train / validation / test positions and each position's game.
    :param judged: the positions with the solver's answers (for fidelity; any concept).
    :param square_targets: name -> ``[N, S]`` bool, one label per square (S squares).
    :param position_targets: name -> ``[N]`` bool.
    :param square_descriptors: name -> ``[N*S]`` per-square quantities (NaN where undefined).
    :param position_descriptors: name -> ``[N]``.
    :param interventions: move concept -> (its judged positions with ``squares``, the square target naming its moves).
    :param extra_inputs: ``[M, ...]`` unlabelled positions added to the dictionaries' training rows.
    :param solver_descriptors: which descriptors come from the solver (the others are board facts).
    """

    texts: list[str]
    inputs: np.ndarray
    folds: Folds
    judged: JudgedPositions
    square_targets: dict[str, np.ndarray]
    position_targets: dict[str, np.ndarray]
    square_descriptors: dict[str, np.ndarray]
    position_descriptors: dict[str, np.ndarray]
    interventions: dict[str, tuple[JudgedPositions, str]] = field(default_factory=dict)
    extra_inputs: np.ndarray | None = None
    solver_descriptors: tuple[str, ...] = ()


def dictionary_layers(policy: Any, wanted: Sequence[str] = DEFAULT_LAYERS) -> list[tuple[str, bool, int]]:
    """``(layer, spatial, width)`` for the `wanted` layers of a `BoardPolicy`; a clear error naming unknown ones."""
    infos = {info.name: info for info in probe_layers(policy)}
    unknown = [name for name in wanted if name not in infos]
    if unknown:
        raise ValueError(f"the network has no layers {unknown}; layers: {list(infos)}")
    return [(name, infos[name].spatial, int(infos[name].shape[0])) for name in wanted]


def _rows(acts: np.ndarray, spatial: bool) -> np.ndarray:
    """A layer's activations as dictionary rows: one per square (spatial) or per position, float32."""
    return (channel_vectors(acts) if spatial else acts.reshape(len(acts), -1)).astype(np.float32)


def _row_folds(folds: Folds, squares: int) -> Folds:
    """Position folds expanded to one row per square."""
    def expand(idx: np.ndarray) -> np.ndarray:
        return (idx[:, None] * squares + np.arange(squares)[None, :]).reshape(-1)

    return Folds(expand(folds.train), expand(folds.validation), expand(folds.test), np.repeat(folds.groups, squares))


def _splice(sae: SparseAutoencoder, spatial: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    def edit(out: torch.Tensor) -> torch.Tensor:
        if spatial:
            rows = out.permute(0, 2, 3, 1).reshape(-1, out.shape[1])
            return sae.reconstruct_torch(rows).reshape(out.shape[0], out.shape[2], out.shape[3], -1).permute(0, 3, 1, 2)
        return sae.reconstruct_torch(out.reshape(len(out), -1)).reshape(out.shape)

    return edit


def fidelity(policy: Any, layer: str, splice: Callable[[torch.Tensor], torch.Tensor], train_acts: np.ndarray,
             measured: JudgedPositions, n_boot: int, seed: int) -> list[dict]:
    """Solver-judged play with `layer`'s output replaced by ``splice(output)`` (a dictionary's reconstruction),
    against clean play and the layer replaced by its train mean, per metric."""
    def forward(x: torch.Tensor):
        return policy_forward(policy, x)

    mean = torch.as_tensor(train_acts.mean(axis=0), dtype=torch.float32)
    clean = judged_play(forward, measured)
    with edit_output(policy, layer, splice):
        spliced = judged_play(forward, measured)
    with edit_output(policy, layer, lambda out: mean.expand_as(out).clone()):
        ablated = judged_play(forward, measured)
    records = []
    for metric in FIDELITY_METRICS:
        c, s, a = (float(np.nanmean(v[metric])) for v in (clean, spliced, ablated))
        effect = mean_interval(spliced[metric] - clean[metric], n_boot, seed)
        records.append({"metric": metric, "clean": c, "spliced": s, "mean_ablated": a,
                        "effect": effect["mean"], "effect_ci_low": effect["ci_low"], "effect_ci_high": effect["ci_high"],
                        "recovered": (s - a) / (c - a) if abs(c - a) > 1e-9 else float("nan"),
                        "n": effect["n"]})
    return records


def _best_feature_scores(codes: np.ndarray, labels: np.ndarray, folds: Folds, ranks_train: np.ndarray) -> np.ndarray:
    """Test-row scores of the feature with the best train AUROC."""
    best = int(np.argmax(feature_aurocs(codes[folds.train], labels[folds.train], ranks_train)))
    return codes[folds.test, best]


def coverage(codes: np.ndarray, activations: np.ndarray, targets: dict[str, np.ndarray], folds: Folds, settings: DictionarySettings,
             control_codes: np.ndarray | None = None, level: str = "square") -> list[dict]:
    """`score_concept` for every target (flattened to rows) on the dictionary's `codes` and the layer's
    `activations` (same rows), paired with the control dictionary's best feature; records without raw scores."""
    ranks = stats.rankdata(codes[folds.train], axis=0)
    control_ranks = stats.rankdata(control_codes[folds.train], axis=0) if control_codes is not None else None
    records = []
    labels_of = {name: np.asarray(labels, bool).reshape(-1) for name, labels in targets.items()}
    scorable = [name for name, y in labels_of.items()
                if all(0 < y[getattr(folds, part)].sum() < len(getattr(folds, part))
                       for part in ("train", "validation", "test"))]
    probes = dict(zip(scorable, probe_scores(activations, np.stack([labels_of[n] for n in scorable], axis=1), folds,
                                             settings.seed))) if scorable else {}
    for name, y in labels_of.items():
        try:
            record = score_concept(codes, activations, y, folds, ranks_train=ranks, n_boot=settings.n_boot, seed=settings.seed,
                                   probe=probes.get(name))
        except ValueError as exc:
            records.append({"target": name, "level": level, "skipped": str(exc)})
            continue
        scores = record.pop("_scores")
        if control_codes is not None:
            control = _best_feature_scores(control_codes, y, folds, control_ranks)
            diff = paired_difference(scores["best_feature"], control, y[folds.test], folds.groups[folds.test],
                                     settings.n_boot, settings.seed)
            record.update({"control_best_feature_auroc": record["best_feature_auroc"] - diff["diff"],
                           "best_feature_minus_control": diff["diff"], "best_feature_minus_control_ci_low": diff["ci_low"],
                           "best_feature_minus_control_ci_high": diff["ci_high"]})
        records.append({"target": name, "level": level, **record})
    return records


def _alive(codes: np.ndarray) -> np.ndarray:
    return np.flatnonzero((codes > 0).any(axis=0))


def ablation_effects(policy: Any, layer: str, spatial: bool, sae: SparseAutoencoder, features: Sequence[int],
                     alive: np.ndarray, measured: JudgedPositions, settings: DictionarySettings) -> list[dict]:
    """Ablate `features` (at the concept's squares on spatial layers) against random features and random squares."""
    def forward(x: torch.Tensor):
        return policy_forward(policy, x)

    features = np.asarray(features, dtype=np.int64)
    rng = np.random.default_rng(settings.seed)
    pool = np.setdiff1d(alive, features)
    randoms = [rng.choice(pool, size=min(len(features), len(pool)), replace=False) for _ in range(settings.n_random)]

    def ablate(chosen: np.ndarray) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda rows: sae.ablate_torch(rows, chosen)

    if spatial:
        where = measured.squares
        arms = {"concept": at_squares(ablate(features), where),
                **{f"random_features:{i}": at_squares(ablate(r), where) for i, r in enumerate(randoms)},
                **{f"random_squares:{i}": at_squares(ablate(features), random_squares(where, measured.candidates,
                                                                                    settings.seed + 1000 + i))
                   for i in range(settings.n_random)}}
    else:
        def whole(chosen: np.ndarray) -> Callable[[torch.Tensor], torch.Tensor]:
            return lambda out: sae.ablate_torch(out.reshape(len(out), -1), chosen).reshape(out.shape)

        arms = {"concept": whole(features), **{f"random_features:{i}": whole(r) for i, r in enumerate(randoms)}}
    clean = judged_play(forward, measured)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return edit_records(policy, forward, layer, spatial, Edit("ablate", 0.0, arms), measured, clean,
                            settings.n_boot, settings.seed)


def wants_examples(feature: dict, shown: set[int]) -> bool:
    """Whether a feature record keeps its top-activating positions: features matched to a concept, the best
    feature of some concept (`shown`), and unmatched ones best described by a solver quantity with
    |separation| >= `EXAMPLE_SEPARATION` (the leads for new concepts)."""
    return bool(feature["matched"] or feature["feature"] in shown
                or (feature.get("best_descriptor") is not None
                    and feature.get("best_descriptor") == feature.get("best_solver_descriptor")
                    and abs(feature.get("best_solver_descriptor_separation", 0.0)) >= EXAMPLE_SEPARATION))


def _examples(rows: Sequence[int], values: np.ndarray, inputs: DictionaryInputs, squares: int) -> list[dict]:
    """Top-activating rows as positions: text, square (spatial), activation, the solver's answers (value,
    optimal and value-preserving moves) and the concepts that hold there (at the square, and of the position)."""
    out = []
    judged = inputs.judged
    for row in rows:
        p, sq = divmod(int(row), squares)
        holds = [n for n, y in inputs.position_targets.items() if y[p]]
        if squares > 1:
            holds = [n for n, y in inputs.square_targets.items() if y[p, sq]] + holds
        out.append({"position": inputs.texts[p], "square": sq if squares > 1 else None,
                    "activation": round(float(values[row]), 4), "value": int(judged.value[p]),
                    "optimal": np.flatnonzero(judged.optimal[p]).tolist(), "good": np.flatnonzero(judged.good[p]).tolist(),
                    "holds": holds})
    return out


def layer_dictionary(policy: Any, layer: str, spatial: bool, inputs: DictionaryInputs, settings: DictionarySettings,
                     control: tuple[Any, SparseAutoencoder] | None = None,
                     progress: bool = False) -> tuple[SparseAutoencoder, dict]:
    """Train, score and test the dictionary of one layer (see the module docstring); a JSON-able record.

    :param control: (the control network, its dictionary of this layer) for paired coverage.
    """
    def forward(x: torch.Tensor):
        return policy_forward(policy, x)

    started = time.perf_counter()
    stages: dict[str, float] = {}

    def lap(stage: str) -> None:
        stages[stage] = round(time.perf_counter() - started - sum(stages.values()), 2)

    policy.set_training_mode(False)
    folds = inputs.folds
    n = len(inputs.inputs)
    acts = layer_activations(policy, forward, layer, inputs.inputs).astype(np.float32)
    squares = acts.shape[2] * acts.shape[3] if spatial else 1
    rows = _row_folds(folds, squares) if spatial else folds
    data = _rows(acts, spatial)
    fit_rows = data[rows.train]
    if inputs.extra_inputs is not None and len(inputs.extra_inputs):
        extra = layer_activations(policy, forward, layer, inputs.extra_inputs)
        fit_rows = np.concatenate([fit_rows, _rows(extra, spatial)])
    sae = settings.dictionary(data.shape[1], spatial, progress).fit(fit_rows)
    codes = sae.transform(data)
    stats_test = dictionary_statistics(codes[rows.test])
    explained = {part: variance_explained(data[getattr(rows, part)], sae.inverse_transform(codes[getattr(rows, part)]))
                 for part in ("validation", "test")}
    record: dict = {"layer": layer, "spatial": spatial, "width": int(data.shape[1]), "n_fit_rows": int(len(fit_rows)),
                    "n_features": sae.n_features, "k": int(sae.k), "architecture": sae.architecture,
                    "variance_explained_validation": explained["validation"],
                    "variance_explained_test": explained["test"], **stats_test,
                    "train_seconds": round(sae.history_.seconds, 2), "history": sae.history_.to_dict()}

    test_positions = inputs.judged.subset(folds.test)
    lap("activations_and_training")
    record["fidelity"] = fidelity(policy, layer, _splice(sae, spatial), acts[folds.train], test_positions,
                                  settings.n_boot, settings.seed)

    lap("fidelity")
    control_codes = control_pooled = None
    if control is not None:
        control_policy, control_sae = control
        control_acts = layer_activations(control_policy, lambda x: policy_forward(control_policy, x), layer,
                                         inputs.inputs).astype(np.float32)
        control_codes = control_sae.transform(_rows(control_acts, spatial))
        if spatial:
            control_pooled = control_codes.reshape(n, squares, -1).max(axis=1)
        else:
            control_pooled = control_codes
    if spatial:
        cover = coverage(codes, data, inputs.square_targets, rows, settings, control_codes, "square")
        pooled = codes.reshape(n, squares, -1).max(axis=1)
        cover += coverage(pooled, acts.reshape(n, -1), inputs.position_targets, folds, settings, control_pooled,
                          "position")
    else:
        cover = coverage(codes, data, inputs.position_targets, folds, settings, control_codes, "position")
    record["coverage"] = cover
    lap("coverage")

    # what the features are: concepts (position concepts broadcast to squares), descriptors, top examples
    test_codes = codes[rows.test]
    if spatial:
        labels = {**{k: np.asarray(v, bool).reshape(-1) for k, v in inputs.square_targets.items()},
                  **{k: np.repeat(np.asarray(v, bool), squares) for k, v in inputs.position_targets.items()}}
        described = {**inputs.square_descriptors,
                     **{k: np.repeat(v, squares) for k, v in inputs.position_descriptors.items()}}
    else:
        labels = {k: np.asarray(v, bool) for k, v in inputs.position_targets.items()}
        described = dict(inputs.position_descriptors)
    features = describe_features(test_codes, {k: v[rows.test] for k, v in labels.items()},
                                 {k: np.asarray(v)[rows.test] for k, v in described.items()},
                                 settings.match_precision, solver_descriptors=inputs.solver_descriptors)
    shown = {r["best_feature"] for r in cover if "best_feature" in r}
    for feature in features:
        top = feature.pop("top_rows")[:EXAMPLES]
        if wants_examples(feature, shown):
            feature["examples"] = _examples([rows.test[r] for r in top], codes[:, feature["feature"]],
                                            inputs, squares)
    record["features"] = features
    lap("features")
    record["n_live_features"] = len(features)
    record["n_unmatched_features"] = sum(not f["matched"] for f in features)

    interventions = []
    by_target = {r["target"]: r for r in cover if "set_features" in r}
    alive = _alive(codes[rows.train])
    for concept, (positions, square_target) in inputs.interventions.items():
        target = by_target.get(square_target if spatial else concept)
        measured = positions.subset(folds.test)
        measured = measured.subset(measured.concept.astype(bool))
        if target is None or len(measured) == 0:
            continue
        for record_ in ablation_effects(policy, layer, spatial, sae, target["set_features"], alive, measured, settings):
            interventions.append({"concept": concept, "features": target["set_features"], **record_})
    record["interventions"] = interventions
    lap("interventions")
    record["stage_seconds"] = stages
    record["seconds"] = round(time.perf_counter() - started, 1)
    return sae, record


# ---------------------------------------------------------------------------- transcoders (flat layers)
def layer_input_output(policy: Any, layer: str, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(input [N, D_in], output [N, D_out])`` of module `layer` (both flattened per position)."""
    module = policy.get_submodule(layer)
    captured: dict[str, torch.Tensor] = {}
    handle = module.register_forward_hook(lambda m, args, out: captured.update(x=args[0].detach(), y=out.detach()))
    try:
        with torch.no_grad():
            policy_forward(policy, torch.as_tensor(np.asarray(inputs, dtype=np.float32)))
    finally:
        handle.remove()
    if not captured:
        raise ValueError(f"layer {layer!r} did not run during the forward pass")
    n = len(inputs)
    return (captured["x"].reshape(n, -1).numpy().astype(np.float32), captured["y"].reshape(n, -1).numpy().astype(np.float32))


def layer_transcoder(policy: Any, layer: str, inputs: DictionaryInputs,
                     settings: DictionarySettings) -> tuple[SparseAutoencoder, dict]:
    """A transcoder of a flat layer (its input -> its output, `flat_expansion` x output units, `flat_k` active),
    with the variance of the output it explains and solver-judged play with its prediction spliced in."""
    started = time.perf_counter()
    policy.set_training_mode(False)
    folds = inputs.folds
    x, y = layer_input_output(policy, layer, inputs.inputs)
    fit_x, fit_y = x[folds.train], y[folds.train]
    if inputs.extra_inputs is not None and len(inputs.extra_inputs):
        ex, ey = layer_input_output(policy, layer, inputs.extra_inputs)
        fit_x, fit_y = np.concatenate([fit_x, ex]), np.concatenate([fit_y, ey])
    tc = settings.dictionary(y.shape[1], spatial=False).fit(fit_x, fit_y)
    codes = tc.transform(x[folds.test])
    module = policy.get_submodule(layer)
    stash: dict[str, torch.Tensor] = {}
    handle = module.register_forward_pre_hook(lambda m, args: stash.update(x=args[0]))
    try:
        records = fidelity(policy, layer, lambda out: tc.reconstruct_torch(stash["x"].reshape(len(out), -1)).reshape(out.shape),
                           y[folds.train], inputs.judged.subset(folds.test), settings.n_boot, settings.seed)
    finally:
        handle.remove()
    record = {"layer": layer, "kind": "transcoder", "d_in": int(x.shape[1]), "d_out": int(y.shape[1]),
              "n_features": tc.n_features, "k": int(tc.k), "n_fit_rows": int(len(fit_x)),
              "variance_explained_test": tc.score(x[folds.test], y[folds.test]), **dictionary_statistics(codes),
              "train_seconds": round(tc.history_.seconds, 2), "fidelity": records,
              "seconds": round(time.perf_counter() - started, 1)}
    return tc, record


def run_transcoders(policy: Any, network: str, inputs: DictionaryInputs, out: str | Path, settings: DictionarySettings,
                    layers: Sequence[str], meta: dict | None = None) -> dict[str, dict]:
    """`layer_transcoder` for each flat layer among `layers`, resuming from ``OUT/NETWORK/LAYER.transcoder.json``."""
    results = {}
    for layer, spatial, _ in dictionary_layers(policy, layers):
        if spatial:
            continue
        done = read_done(out, network, layer, settings, None, kind="transcoder")
        if done is not None:
            results[layer] = done[1]
            continue
        log.info("%s / %s (transcoder)", network, layer)
        tc, record = layer_transcoder(policy, layer, inputs, settings)
        record = {"network": network, "control": None, "settings": settings.to_dict(), **(meta or {}), **record}
        result, weights = result_paths(out, network, layer, kind="transcoder")
        result.parent.mkdir(parents=True, exist_ok=True)
        tc.save(weights)
        atomic_write_json(record, result)
        results[layer] = record
    return results


# ---------------------------------------------------------------------------- resumable runs
def result_paths(out: str | Path, network: str, layer: str, kind: str = "sae") -> tuple[Path, Path]:
    """(the result JSON, the weights) of (`network`, `layer`) under `out`; `kind` ``sae`` or ``transcoder``."""
    folder = Path(out) / network
    if kind == "sae":
        return folder / f"{layer}.json", folder / f"{layer}.sae.pt"
    return folder / f"{layer}.{kind}.json", folder / f"{layer}.{kind}.pt"


def read_done(out: str | Path, network: str, layer: str, settings: DictionarySettings,
              control: str | None, kind: str = "sae") -> tuple[SparseAutoencoder, dict] | None:
    """A finished (dictionary, result) made with `settings` and the same control, or None."""
    result, weights = result_paths(out, network, layer, kind)
    if not (result.exists() and weights.exists()):
        return None
    try:
        data = json.loads(result.read_text())
        sae = SparseAutoencoder.load(weights)
    except (json.JSONDecodeError, ValueError) as exc:
        log.warning("%s is damaged (%s); redoing it", result, exc)
        return None
    if data.get("settings") != settings.to_dict() or data.get("control") != control:
        log.warning("%s was made with other settings; redoing it (the old result is replaced)", result)
        return None
    return sae, data


def run_dictionaries(policy: Any, network: str, inputs: DictionaryInputs, out: str | Path, settings: DictionarySettings,
                     layers: Sequence[str] = DEFAULT_LAYERS, control: tuple[str, Any] | None = None,
                     meta: dict | None = None, progress: bool = True) -> dict[str, dict]:
    """The dictionary study of one network's `layers`, resuming from finished results under `out`.

    :param control: (name, policy) of a control network whose dictionaries were made first under `out`.
    :returns: layer -> result.
    """
    chosen = dictionary_layers(policy, layers)
    results = {}
    steps: Any = chosen
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(chosen, desc=f"{network} layers", unit="layer", leave=False)
    for layer, spatial, _ in steps:
        done = read_done(out, network, layer, settings, control[0] if control else None)
        if done is not None:
            results[layer] = done[1]
            continue
        control_pair = None
        if control is not None:
            finished = read_done(out, control[0], layer, settings, None)
            if finished is None:
                raise FileNotFoundError(f"the control {control[0]}'s dictionary of {layer} is not under {out}; "
                                        "run the control first")
            control_pair = (control[1], finished[0])
        log.info("%s / %s", network, layer)
        sae, record = layer_dictionary(policy, layer, spatial, inputs, settings, control_pair, progress)
        record = {"network": network, "control": control[0] if control else None, "settings": settings.to_dict(),
                  **(meta or {}), **record}
        result, weights = result_paths(out, network, layer)
        result.parent.mkdir(parents=True, exist_ok=True)
        sae.save(weights)
        atomic_write_json(record, result)
        results[layer] = record
    return results
