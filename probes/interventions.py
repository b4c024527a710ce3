"""Interventions where a concept lives, judged on positions whose answer is known.

Game-agnostic: a network is a torch module (for hooks) plus a `Forward` callable returning
``(logits [N, A], values [N, 1])``; positions come as arrays (`JudgedPositions`) holding, for
each position, the legal, value-preserving (``good``) and optimal actions an exact oracle gives,
the oracle value, whether the concept holds, the actions it implies and, for spatial layers,
the squares it names. Nothing here knows a particular game.

* **Spatial layers** (``[N, C, H, W]``) are edited per square, in channel space, at the
  squares the concept names (`SquareEdit`):

  - ``erase``: a rank-1 LEACE eraser (`probes.causal.leace_fit`) fitted on the channel vectors
    of every square of the fitting positions, labelled by whether the concept names that square;
  - ``steer``: add ``alpha * s * u`` with u the unit class-mean difference of those channel
    vectors (concept squares minus the rest) and s the spread of the projections on u;
  - controls of equal size: the same edit along a random direction (for the eraser, a random
    rank-1 eraser in whitened coordinates, the same form as LEACE) at the same squares, and
    the concept's own edit at as many random squares drawn from ``candidates`` (squares of the
    same kind, e.g. the other playable squares) that the concept does not name.

* **Whole-board layers** (flat ``[N, D]``): the same two edits on the flattened vector with
  position-level labels, against random directions only; they are reported as directions.

Each edit is scored on held-out positions where the concept holds, per position: does the
greedy move keep the oracle value (``good``), is it optimal (``perfect``), the probability of
the concept's moves (``p_concept_move``), the value head's sign against the oracle value
(``value_sign``). Effects are paired per position (edited minus clean) with a bootstrap
interval over positions; ``excess`` is the concept edit's effect beyond the **strongest**
control on the same position (the control that moved the metric most in the same direction).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from probes.bootstrap import (
    mean_interval,  # re-exported: the module's statistics use it
)
from probes.causal import (
    covariance,
    edit_output,
    leace_fit,
    random_direction_like,
    random_subspace_eraser,
)

log = logging.getLogger(__name__)

Forward = Callable[[torch.Tensor], "tuple[torch.Tensor, torch.Tensor]"]
METRICS = ("good", "perfect", "p_concept_move", "value_sign")
DEFAULT_STEER_ALPHAS = (-4.0, -2.0, 2.0, 4.0)


# ---------------------------------------------------------------------------- positions
def _check_rows(record: object, first: str) -> None:
    """Every array field of the dataclass `record` has as many rows as its field `first` (None fields skipped)."""
    n = len(getattr(record, first))
    for name, arr in vars(record).items():
        if arr is not None and len(arr) != n:
            raise ValueError(f"{type(record).__name__}.{name} has {len(arr)} rows, {first} {n}")


@dataclass
class JudgedPositions:
    """Positions with an oracle's answers and one concept's labels (one row per position).

    :param inputs: ``[N, ...]`` network inputs.
    :param legal: ``[N, A]`` legal actions.
    :param good: ``[N, A]`` value-preserving actions (oracle).
    :param optimal: ``[N, A]`` optimal actions (oracle).
    :param value: ``[N]`` oracle value for the side to move (-1, 0, 1).
    :param groups: ``[N]`` the game each position comes from (splits keep games whole).
    :param concept: ``[N]`` bool, the concept holds.
    :param moves: ``[N, A]`` bool, the actions the concept implies (meaningful where it holds).
    :param squares: ``[N, H, W]`` bool, the squares the concept names (None: no spatial labels).
    :param candidates: ``[N, H, W]`` bool, squares of the same kind as the concept's (random-square
        controls are drawn from these minus `squares`; None: any other square).
    """

    inputs: np.ndarray
    legal: np.ndarray
    good: np.ndarray
    optimal: np.ndarray
    value: np.ndarray
    groups: np.ndarray
    concept: np.ndarray
    moves: np.ndarray
    squares: np.ndarray | None = None
    candidates: np.ndarray | None = None

    def __post_init__(self) -> None:
        _check_rows(self, "inputs")
        if self.squares is not None and self.candidates is not None and self.squares.shape != self.candidates.shape:
            raise ValueError(f"squares {self.squares.shape} and candidates {self.candidates.shape} differ in shape")

    def __len__(self) -> int:
        return len(self.inputs)

    def subset(self, rows: np.ndarray) -> "JudgedPositions":
        """The positions at `rows` (indices or a boolean mask)."""
        return JudgedPositions(**{k: (None if v is None else v[rows]) for k, v in vars(self).items()})


# ---------------------------------------------------------------------------- statistics
def ratio_interval(numerator: np.ndarray, denominator: np.ndarray, n_boot: int = 1000, seed: int = 0,
                   level: float = 0.95) -> dict[str, float]:
    """``sum(numerator) / sum(denominator)`` over rows and its bootstrap interval (rows resampled together)."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    if len(num) == 0 or not np.sum(den):
        return {"mean": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": int(len(num))}
    idx = np.random.default_rng(seed).integers(0, len(num), size=(n_boot, len(num)))
    with np.errstate(divide="ignore", invalid="ignore"):
        boots = num[idx].sum(axis=1) / den[idx].sum(axis=1)
    boots = boots[np.isfinite(boots)]
    tail = (1 - level) / 2 * 100
    return {"mean": float(num.sum() / den.sum()), "ci_low": float(np.percentile(boots, tail)),
            "ci_high": float(np.percentile(boots, 100 - tail)), "n": int(len(num))}


# ---------------------------------------------------------------------------- running the network
def layer_activations(model: nn.Module, forward: Forward, layer: str, inputs: np.ndarray) -> np.ndarray:
    """`layer`'s output on `inputs` (one batch, no gradient), as float64."""
    captured: list[torch.Tensor] = []

    def keep(out: torch.Tensor) -> torch.Tensor:
        captured.append(out.detach())
        return out

    with torch.no_grad(), edit_output(model, layer, keep):
        forward(torch.as_tensor(np.asarray(inputs, dtype=np.float32)))
    if not captured:
        raise ValueError(f"layer {layer!r} did not run during the forward pass; does `forward` run this model?")
    return captured[0].cpu().numpy().astype(np.float64)


def play_metrics(logits: torch.Tensor, values: torch.Tensor, positions: JudgedPositions) -> dict[str, np.ndarray]:
    """Per-position solver-judged metrics of a network's greedy play (see `METRICS`).

    ``p_concept_move`` is NaN where the concept does not hold or implies no legal move;
    ``value_sign`` is NaN on drawn positions. ``value`` is the raw value-head output.
    """
    legal = torch.as_tensor(positions.legal, dtype=torch.bool)
    masked = logits.masked_fill(~legal, float("-inf"))
    chosen = masked.argmax(dim=1).numpy()
    rows = np.arange(len(chosen))
    probs = torch.softmax(masked, dim=1).numpy()
    mass = (probs * positions.moves).sum(axis=1)
    has_moves = positions.concept & (positions.moves & positions.legal).any(axis=1)
    value = values.reshape(len(values), -1)[:, 0].numpy()
    decided = positions.value != 0
    return {"good": positions.good[rows, chosen].astype(np.float64),
            "perfect": positions.optimal[rows, chosen].astype(np.float64),
            "p_concept_move": np.where(has_moves, mass, np.nan),
            "value_sign": np.where(decided, (np.sign(value) == positions.value).astype(np.float64), np.nan),
            "value": value.astype(np.float64)}


def judged_play(forward: Forward, positions: JudgedPositions) -> dict[str, np.ndarray]:
    """`play_metrics` of the network `forward` runs (with whatever hooks are active) on `positions`."""
    with torch.no_grad():
        logits, values = forward(torch.as_tensor(np.asarray(positions.inputs, dtype=np.float32)))
    return play_metrics(logits, values, positions)


# ---------------------------------------------------------------------------- edits
def random_squares(squares: np.ndarray, candidates: np.ndarray | None, seed: int) -> np.ndarray:
    """Per position, as many random squares as `squares` holds, drawn from `candidates` minus `squares`.

    Where too few candidates remain, the rest are drawn from every other square.
    """
    rng = np.random.default_rng(seed)
    out = np.zeros_like(squares, dtype=bool)
    flat_sq = squares.reshape(len(squares), -1)
    flat_cand = (np.ones_like(flat_sq) if candidates is None else candidates.reshape(len(squares), -1)) & ~flat_sq
    flat_out = out.reshape(len(squares), -1)
    for i in range(len(squares)):
        k = int(flat_sq[i].sum())
        if not k:
            continue
        pool = np.flatnonzero(flat_cand[i])
        if len(pool) < k:
            pool = np.concatenate([pool, rng.permutation(np.flatnonzero(~flat_sq[i] & ~flat_cand[i]))[:k - len(pool)]])
        flat_out[i, rng.choice(pool, size=min(k, len(pool)), replace=False)] = True
    return out


def channel_vectors(acts: np.ndarray) -> np.ndarray:
    """``[N, C, H, W]`` -> ``[N * H * W, C]`` (position-major, then row-major squares)."""
    return acts.transpose(0, 2, 3, 1).reshape(-1, acts.shape[1])


def at_squares(change: Callable[[torch.Tensor], torch.Tensor], where: np.ndarray) -> Callable[[torch.Tensor], torch.Tensor]:
    """An output edit applying `change` (on ``[K, C]`` channel vectors) at the ``[N, H, W]`` squares `where`."""
    mask = torch.as_tensor(where, dtype=torch.bool)

    def edit(out: torch.Tensor) -> torch.Tensor:
        if out.dim() != 4 or tuple(out.shape[0:1] + out.shape[2:]) != tuple(mask.shape):
            raise ValueError(f"square edit of shape {tuple(mask.shape)} does not fit a layer output {tuple(out.shape)}")
        x = out.permute(0, 2, 3, 1).clone()
        x[mask] = change(x[mask])
        return x.permute(0, 3, 1, 2)

    return edit


def _shift(vector: np.ndarray) -> Callable[[torch.Tensor], torch.Tensor]:
    vec = torch.as_tensor(vector, dtype=torch.float32)
    return lambda x: x + vec.to(x.dtype)


@dataclass(frozen=True)
class Edit:
    """One intervention: ``name`` (erase / steer), its strength, and the output edit for each arm.

    ``arms`` maps ``concept`` and each control (``random_direction:i``, ``random_squares:i``)
    to a function editing the layer's output.
    """

    name: str
    alpha: float
    arms: dict


def square_edits(fit_acts: np.ndarray, fit_squares: np.ndarray, where: np.ndarray, controls_where: Sequence[np.ndarray],
                 alphas: Sequence[float], n_random: int, seed: int) -> list[Edit]:
    """Per-square erase and steer edits of a spatial layer, with their random controls.

    :param fit_acts: ``[N, C, H, W]`` activations of the fitting positions.
    :param fit_squares: ``[N, H, W]`` their concept squares.
    :param where: ``[M, H, W]`` squares to edit on the measured positions.
    :param controls_where: random-square masks (one per control draw) of the same shape.
    """
    vectors = channel_vectors(fit_acts)
    labels = fit_squares.reshape(-1).astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("the concept names every square or none on the fitting positions; nothing to fit")
    eraser = leace_fit(vectors, labels)
    mean, cov = vectors.mean(axis=0), covariance(vectors)
    random_erasers = [random_subspace_eraser(vectors.shape[1], eraser.rank, seed + i, mean=mean, cov=cov)
                      for i in range(n_random)]
    diff = vectors[labels].mean(axis=0) - vectors[~labels].mean(axis=0)
    u = diff / np.linalg.norm(diff)
    scale = float(np.std(vectors @ u))
    edits = [Edit("erase", 0.0, {
        "concept": at_squares(eraser.apply_torch, where),
        **{f"random_direction:{i}": at_squares(e.apply_torch, where) for i, e in enumerate(random_erasers)},
        **{f"random_squares:{i}": at_squares(eraser.apply_torch, w) for i, w in enumerate(controls_where)}})]
    for alpha in alphas:
        step = alpha * scale * u
        edits.append(Edit("steer", float(alpha), {
            "concept": at_squares(_shift(step), where),
            **{f"random_direction:{i}": at_squares(_shift(random_direction_like(step, seed + i)), where)
               for i in range(n_random)},
            **{f"random_squares:{i}": at_squares(_shift(step), w) for i, w in enumerate(controls_where)}}))
    return edits


def whole_board_edits(fit_acts: np.ndarray, fit_concept: np.ndarray, alphas: Sequence[float], n_random: int,
                      seed: int) -> list[Edit]:
    """Erase and steer edits of a (flattened) layer along position-level concept directions."""
    x = fit_acts.reshape(len(fit_acts), -1)
    y = fit_concept.astype(bool)
    if y.all() or not y.any():
        raise ValueError("the concept holds on every fitting position or none; nothing to fit")
    eraser = leace_fit(x, y)
    mean, cov = x.mean(axis=0), covariance(x)
    randoms = [random_subspace_eraser(x.shape[1], eraser.rank, seed + i, mean=mean, cov=cov) for i in range(n_random)]

    def flat(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda out: fn(out.reshape(len(out), -1)).reshape(out.shape)

    diff = x[y].mean(axis=0) - x[~y].mean(axis=0)
    u = diff / np.linalg.norm(diff)
    scale = float(np.std(x @ u))
    edits = [Edit("erase", 0.0, {"concept": flat(eraser.apply_torch),
                                 **{f"random_direction:{i}": flat(e.apply_torch) for i, e in enumerate(randoms)}})]
    for alpha in alphas:
        step = alpha * scale * u
        edits.append(Edit("steer", float(alpha), {
            "concept": flat(_shift(step)),
            **{f"random_direction:{i}": flat(_shift(random_direction_like(step, seed + i))) for i in range(n_random)}}))
    return edits


# ---------------------------------------------------------------------------- effects
def _strongest(control_effects: Iterable[np.ndarray], concept_effect: np.ndarray) -> np.ndarray:
    """Per position, the control effect closest to the concept's own (the same sign, largest): the strongest control."""
    stack = np.stack(list(control_effects))
    sign = np.sign(np.nanmean(concept_effect)) or 1.0
    return np.nanmax(stack * sign, axis=0) * sign


def intervention_effects(model: nn.Module, forward: Forward, layer: str, spatial: bool, fit: JudgedPositions,
                         measure: JudgedPositions, alphas: Sequence[float] = DEFAULT_STEER_ALPHAS, n_random: int = 5,
                         n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Erase and steer one concept at one layer; solver-judged effects with controls and intervals.

    :param fit: positions the erasers and directions are fitted on (train games).
    :param measure: held-out positions; effects are measured on those where the concept holds.
    :param spatial: edit per square (`square_edits`; needs ``squares``) or the whole flattened layer.
    :returns: tidy records, one per (edit, alpha, metric): ``effect`` (concept edit minus clean,
        mean and 95% interval over positions), ``control_*`` (each control kind's mean effect),
        ``excess`` (effect minus the strongest control's, paired per position, with interval),
        ``scope`` (``squares`` or ``whole``), ``n`` positions.
    """
    measured = measure.subset(measure.concept.astype(bool))
    if len(measured) == 0:
        raise ValueError(f"{layer}: the concept holds on none of the measured positions")
    fit_acts = layer_activations(model, forward, layer, fit.inputs)
    if spatial:
        if fit.squares is None or measured.squares is None:
            raise ValueError(f"{layer} is spatial but the positions carry no concept squares")
        controls_where = [random_squares(measured.squares, measured.candidates, seed + 1000 + i) for i in range(n_random)]
        edits = square_edits(fit_acts, fit.squares, measured.squares, controls_where, alphas, n_random, seed)
    else:
        edits = whole_board_edits(fit_acts, fit.concept, alphas, n_random, seed)
    clean = judged_play(forward, measured)
    records = []
    with warnings.catch_warnings():  # metrics undefined on some positions (NaN) are dropped, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        for edit in edits:
            records += edit_records(model, forward, layer, spatial, edit, measured, clean, n_boot, seed)
    return records


def edit_records(model: nn.Module, forward: Forward, layer: str, spatial: bool, edit: Edit, measured: JudgedPositions,
                 clean: dict[str, np.ndarray], n_boot: int, seed: int) -> list[dict]:
    """Score every arm of `edit` on `measured`; one record per metric (see `intervention_effects`)."""
    scored = {}
    for arm, fn in edit.arms.items():
        with edit_output(model, layer, fn):
            scored[arm] = judged_play(forward, measured)
    kinds = sorted({arm.split(":")[0] for arm in scored if arm != "concept"})
    records = []
    for metric in (*METRICS, "value"):
        effect = scored["concept"][metric] - clean[metric]
        per_kind = {k: np.nanmean(np.stack([scored[a][metric] - clean[metric] for a in scored
                                            if a.split(":")[0] == k]), axis=0) for k in kinds}
        strongest = _strongest(per_kind.values(), effect)
        records.append({"layer": layer, "scope": "squares" if spatial else "whole", "edit": edit.name,
                        "alpha": edit.alpha, "metric": metric, "clean": float(np.nanmean(clean[metric])),
                        **_prefixed("effect", mean_interval(effect, n_boot, seed)),
                        **{f"control_{k}": float(np.nanmean(v)) for k, v in per_kind.items()},
                        **_prefixed("excess", mean_interval(effect - strongest, n_boot, seed)),
                        "n": int(np.sum(~np.isnan(effect)))})
    return records


def _prefixed(prefix: str, summary: dict[str, float]) -> dict[str, float]:
    return {prefix: summary["mean"], f"{prefix}_ci_low": summary["ci_low"], f"{prefix}_ci_high": summary["ci_high"]}


# ---------------------------------------------------------------------------- minimal pairs
@dataclass
class PairBatch:
    """Minimal pairs as arrays: ``clean`` members (the concept holds) and ``corrupt`` ones (it does not).

    :param clean: ``[P, ...]`` inputs of the members with the concept.
    :param corrupt: ``[P, ...]`` inputs of the members without it.
    :param legal_clean: ``[P, A]`` / :param legal_corrupt: legal actions of each member.
    :param target: ``[P, A]`` the actions the concept implies in the clean member.
    :param concept_squares: ``[P, H, W]`` the squares the concept names in the clean member (or None).
    :param changed_squares: ``[P, H, W]`` squares whose content differs between members (or None).
    :param candidates: ``[P, H, W]`` squares of the concept's kind (random-square controls; or None).
    """

    clean: np.ndarray
    corrupt: np.ndarray
    legal_clean: np.ndarray
    legal_corrupt: np.ndarray
    target: np.ndarray
    concept_squares: np.ndarray | None = None
    changed_squares: np.ndarray | None = None
    candidates: np.ndarray | None = None

    def __post_init__(self) -> None:
        _check_rows(self, "clean")

    def __len__(self) -> int:
        return len(self.clean)


def _readouts(forward: Forward, inputs: np.ndarray, legal: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """Per pair: the probability mass on the target actions, whether the greedy move is one, the value head's output."""
    with torch.no_grad():
        logits, values = forward(torch.as_tensor(np.asarray(inputs, dtype=np.float32)))
    masked = logits.masked_fill(~torch.as_tensor(legal, dtype=torch.bool), float("-inf"))
    probs = torch.softmax(masked, dim=1).numpy()
    chosen = masked.argmax(dim=1).numpy()
    return {"p_target": (probs * target).sum(axis=1).astype(np.float64),
            "plays_target": target[np.arange(len(chosen)), chosen].astype(np.float64),
            "value": values.reshape(len(values), -1)[:, 0].numpy().astype(np.float64)}


def _replace_at(source: torch.Tensor, where: np.ndarray | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """An output edit that takes `source`'s activations at the ``[P, H, W]`` squares `where` (None: everywhere)."""
    if where is None:
        return lambda out: source.to(out.dtype)
    mask = torch.as_tensor(where, dtype=torch.bool)[:, None, :, :]
    return lambda out: torch.where(mask, source.to(out.dtype), out)


def pair_patching(model: nn.Module, forward: Forward, layer: str, spatial: bool, pairs: PairBatch, n_random: int = 5,
                  n_boot: int = 1000, seed: int = 0) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Patch `layer` from each pair's clean member into its corrupt member; how much of the change returns?

    For each readout (``p_target``: probability of the concept's actions, among the corrupt
    member's legal actions; ``plays_target``: the greedy move is one of them; ``value``), the
    restored fraction is ``sum(patched - corrupt) / sum(clean - corrupt)`` over pairs, with a
    bootstrap interval over pairs. Regions: ``whole`` (the full output; in a sequential trunk
    this restores everything and is a check), and for spatial layers ``concept_squares``,
    ``changed_squares``, ``random_squares`` (as many as the concept's, from ``candidates``,
    averaged over `n_random` draws) and ``excess_concept_squares`` (concept squares minus the
    random squares, paired per pair), plus every single square (the map).

    :returns: (records, maps) where maps are ``{readout: [H, W]}`` restored fractions per square
        (empty for flat layers). Records of region ``none`` hold the unpatched network's readouts
        on both members (``clean`` and ``corrupt`` means: how differently it treats them).
    """
    if len(pairs) == 0:
        raise ValueError("no minimal pairs to patch")
    source = torch.as_tensor(layer_activations(model, forward, layer, pairs.clean), dtype=torch.float32)
    # every readout is masked by the corrupt member's legal actions (the position being played), so
    # that patching the whole of a layer every path goes through restores exactly the clean readout
    clean = _readouts(forward, pairs.clean, pairs.legal_corrupt, pairs.target)
    corrupt = _readouts(forward, pairs.corrupt, pairs.legal_corrupt, pairs.target)

    def patched(where: np.ndarray | None) -> dict[str, np.ndarray]:
        with edit_output(model, layer, _replace_at(source, where)):
            return _readouts(forward, pairs.corrupt, pairs.legal_corrupt, pairs.target)

    regions: dict[str, np.ndarray | None] = {"whole": None}
    if spatial:
        if pairs.concept_squares is not None:
            regions["concept_squares"] = pairs.concept_squares
        if pairs.changed_squares is not None:
            regions["changed_squares"] = pairs.changed_squares
    results = {name: patched(where) for name, where in regions.items()}
    gap = {k: clean[k] - corrupt[k] for k in clean}
    records = [{"layer": layer, "region": "none", "readout": k, "gap": float(np.mean(gap[k])),
                "clean": float(np.mean(clean[k])), "corrupt": float(np.mean(corrupt[k])), "n": len(pairs)}
               for k in clean]
    for name, out in results.items():
        for k in clean:
            records.append({"layer": layer, "region": name, "readout": k, "gap": float(np.mean(gap[k])),
                            **ratio_interval(out[k] - corrupt[k], gap[k], n_boot, seed)})
    maps: dict[str, np.ndarray] = {}
    if spatial and pairs.concept_squares is not None:
        draws = [patched(random_squares(pairs.concept_squares, pairs.candidates, seed + 2000 + i)) for i in range(n_random)]
        for k in clean:
            rand = np.mean([d[k] for d in draws], axis=0) - corrupt[k]
            records.append({"layer": layer, "region": "random_squares", "readout": k, "gap": float(np.mean(gap[k])),
                            **ratio_interval(rand, gap[k], n_boot, seed)})
            records.append({"layer": layer, "region": "excess_concept_squares", "readout": k,
                            "gap": float(np.mean(gap[k])),
                            **ratio_interval(results["concept_squares"][k] - corrupt[k] - rand, gap[k], n_boot, seed)})
    if spatial:
        maps = _square_maps(patched, corrupt, gap, len(pairs), tuple(source.shape[2:]), pairs.concept_squares)
    return records, maps


def _square_maps(patched: Callable[[np.ndarray], dict[str, np.ndarray]], corrupt: dict[str, np.ndarray],
                 gap: dict[str, np.ndarray], n: int, board: tuple[int, int],
                 concept_squares: np.ndarray | None) -> dict[str, np.ndarray]:
    """Restored fraction per square, patching one square at a time: ``{readout: [H, W]}``.

    With `concept_squares`, also ``{readout}@concept``: ``[2H - 1, 2W - 1]`` maps by offset from the
    pair's concept square (pairs whose concept names one square; the centre is the square itself),
    which line the pairs up where the absolute map blurs them.
    """
    height, width = board
    maps = {k: np.full((height, width), np.nan) for k in gap}
    single = None
    if concept_squares is not None:
        single = concept_squares.reshape(n, -1).sum(axis=1) == 1
        anchor = np.argmax(concept_squares.reshape(n, -1), axis=1)
        rows0, cols0 = anchor // width, anchor % width
        num = {k: np.zeros((2 * height - 1, 2 * width - 1)) for k in gap}
        den = {k: np.zeros((2 * height - 1, 2 * width - 1)) for k in gap}
        reached = np.zeros((2 * height - 1, 2 * width - 1))
    for r in range(height):
        for c in range(width):
            where = np.zeros((n, height, width), dtype=bool)
            where[:, r, c] = True
            out = patched(where)
            if single is not None and single.any():
                offset = (r - rows0[single] + height - 1, c - cols0[single] + width - 1)
                np.add.at(reached, offset, 1)
            for k in gap:
                total = np.sum(gap[k])
                maps[k][r, c] = float(np.sum(out[k] - corrupt[k]) / total) if total else np.nan
                if single is not None and single.any():
                    np.add.at(num[k], offset, (out[k] - corrupt[k])[single])
                    np.add.at(den[k], offset, gap[k][single])
    if single is not None and single.any():
        for k in gap:  # an offset is scored where at least 10 pairs reach it
            with np.errstate(divide="ignore", invalid="ignore"):
                maps[f"{k}@concept"] = np.where((den[k] != 0) & (reached >= 10), num[k] / den[k], np.nan)
    return maps


# ---------------------------------------------------------------------------- verdicts
USAGE_VERDICTS = ("represented and used", "represented, not used", "used, decodable but not beyond the controls",
                  "used without a linear representation", "neither")


@dataclass(frozen=True)
class UsageThresholds:
    """When a layer counts as *using* a concept (all stated in the report).

    :param effect: erasing the concept at that layer (per square, or along its whole-board
        direction) must lower the probability of the concept's moves (the policy), or the
        rate at which the value head's sign matches the solver's value (the value head), by
        more than the strongest equal-size control by at least this much (the 95% interval
        of the paired excess lies beyond it; probability / rate units).
    :param restored: or patching only the concept's squares from the member with the concept
        into the one without must restore at least this fraction of the change in that
        probability (or in the value) beyond as many random squares (lower 95% bound;
        spatial layers only).
    """

    effect: float = 0.02
    restored: float = 0.2

    def __post_init__(self) -> None:
        if not (0 <= self.effect < 1 and 0 <= self.restored < 1):
            raise ValueError(f"usage thresholds must be in [0, 1), got effect={self.effect}, restored={self.restored}")


def erasure_used(records: Sequence[dict], layer: str, thresholds: UsageThresholds,
                 metric: str = "p_concept_move") -> tuple[bool, dict | None]:
    """Whether erasing the concept at `layer` lowers `metric` beyond the strongest control (`UsageThresholds.effect`).

    `metric` is ``p_concept_move`` (the policy) or ``value_sign`` (the value head). Returns the verdict and the row judged.
    """
    rows = [r for r in records if r["layer"] == layer and r["edit"] == "erase" and r["metric"] == metric]
    if not rows:
        return False, None
    row = rows[0]
    return bool(-row["excess_ci_high"] > thresholds.effect), row


def patching_used(records: Sequence[dict], layer: str, thresholds: UsageThresholds,
                  readout: str = "p_target") -> tuple[bool, dict | None]:
    """Whether patching the concept's squares at `layer` restores `readout` (`UsageThresholds.restored`)."""
    rows = [r for r in records if r["layer"] == layer and r["region"] == "excess_concept_squares"
            and r["readout"] == readout]
    if not rows:
        return False, None
    row = rows[0]
    return bool(row["ci_low"] > thresholds.restored), row


def usage_verdict(represented: bool | None, linear_use: bool, patched_use: bool = False) -> str:
    """One of `USAGE_VERDICTS`.

    :param represented: the study's verdict at that layer (delta beyond the strongest control);
        None when not measured, giving ``used`` / ``not used``.
    :param linear_use: erasing the concept's linear direction at that layer changes play
        (`erasure_used`): the concept is linearly decodable there and that code is read.
    :param patched_use: patching the concept's squares restores the decision (`patching_used`).

    Not represented but linearly used means decodable at that layer yet not beyond what the
    controls decode (e.g. the raw input already holds it); not represented and used only
    through patching means used without a linear code.
    """
    used = linear_use or patched_use
    if represented is None:
        return "used" if used else "not used"
    if represented:
        return USAGE_VERDICTS[0] if used else USAGE_VERDICTS[1]
    if linear_use:
        return USAGE_VERDICTS[2]
    return USAGE_VERDICTS[3] if patched_use else USAGE_VERDICTS[4]


__all__ = ["DEFAULT_STEER_ALPHAS", "METRICS", "USAGE_VERDICTS", "Edit", "Forward", "JudgedPositions", "PairBatch",
           "UsageThresholds", "erasure_used", "intervention_effects", "layer_activations", "mean_interval",
           "pair_patching", "patching_used", "play_metrics", "random_squares", "ratio_interval", "square_edits",
           "usage_verdict", "whole_board_edits"]
