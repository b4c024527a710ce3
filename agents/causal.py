"""Causal tests of a trained agent, for any game: steer along a concept's probe direction, erase the
concept, and check its moves on minimal pairs.

For one checkpoint, one layer and one binary concept, on labelled positions (`CausalPositions`:
the concept, its columns, the oracle's value-preserving actions and value), split by game:
probes, directions and erasers are fitted on the train games, every behavioural number is
measured on the held-out games.

* **steering**: add ``alpha * s * u`` to the layer's output, with u a unit concept direction
  and s the standard deviation of the activations along u (so alpha is in units of the
  layer's typical spread along the direction); the same for random directions of equal
  norm. Two directions: ``probe``, the weights of an L2 logistic probe (`probes.linear`,
  the read-out direction), and ``mean_difference``, the difference of the class means (the
  direction along which the concept actually moves the activations; probe weights are
  whitened and need not be the direction the network writes or reads). Metrics: probability of the concept's columns on
  positions where the concept holds (negative alpha steers away from it), good-move rate
  (all / with / without the concept), value-sign accuracy.
* **erasure**: LEACE and INLP erasers of the concept against random subspaces of the same
  rank (LEACE's control is random in whitened coordinates, the same form as LEACE; INLP's is
  an orthogonal projection). Also: a fresh probe's accuracy on erased activations (does the
  erasure work out of sample?) and the size of each edit.
* **minimal pairs**: the agent's greedy move on both members of each pair (`pair_behaviour`).

Sampling the positions and finding minimal pairs is game-specific: Connect Four's is
`agents.connect4.causal` (`build_positions`, `run_causal_suite`).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from agents.evaluation import PolicyPlayer
from agents.network import policy_forward, probe_layers
from probes.activations import as_flat, hooked_activations
from probes.causal import (
    Eraser,
    covariance,
    erasure_effect,
    inlp_fit,
    leace_fit,
    projection_scale,
    random_subspace_eraser,
    steering_curve,
)
from probes.linear import fit_probe, grouped_split, probe_direction

log = logging.getLogger(__name__)

DEFAULT_ALPHAS = (-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0)


# ---------------------------------------------------------------------------- positions
@dataclass
class CausalPositions:
    """Labelled positions for causal tests (one row per position).

    :param texts: the positions as move strings.
    :param game_ids: the game each position comes from (for grouped splits).
    :param obs: ``[N, C, H, W]`` observations of the side to move.
    :param masks: ``[N, A]`` legal actions.
    :param good: ``[N, A]`` value-preserving actions (solver).
    :param value: ``[N]`` solver value for the side to move (-1, 0, 1).
    :param concepts: concept name -> ``[N]`` bool labels.
    :param moves: concept name -> ``[N, A]`` bool, the concept's columns (where defined).
    """

    texts: list[str]
    game_ids: np.ndarray
    obs: np.ndarray
    masks: np.ndarray
    good: np.ndarray
    value: np.ndarray
    concepts: dict[str, np.ndarray]
    moves: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.texts)


# ---------------------------------------------------------------------------- metrics
def behaviour_metric(policy: Any, positions: CausalPositions, rows: np.ndarray, concept: str):
    """A metric callable for `probes.causal`: the policy's behaviour on `rows` of `positions`.

    Returns ``good_rate`` (greedy legal move keeps the solver value), ``good_rate_with`` /
    ``good_rate_without`` (positions with / without the concept), ``p_concept_move`` (mean
    probability of the concept's columns where the concept holds, if it names columns) and
    ``value_sign_accuracy`` (sign of the value head equals the solver value, non-drawn positions).
    """
    obs = torch.as_tensor(positions.obs[rows])
    masks = torch.as_tensor(positions.masks[rows])
    good = positions.good[rows]
    value = positions.value[rows]
    has = positions.concepts[concept][rows]
    moves = positions.moves.get(concept)
    moves = None if moves is None else torch.as_tensor(moves[rows][has])
    decided = value != 0

    def metric() -> dict[str, float]:
        with torch.no_grad():
            logits, values = policy_forward(policy, obs)
        logits = logits.masked_fill(~masks, float("-inf"))
        chosen = logits.argmax(dim=1).numpy()
        ok = good[np.arange(len(chosen)), chosen]
        out = {"good_rate": float(ok.mean()),
               "good_rate_with": float(ok[has].mean()) if has.any() else float("nan"),
               "good_rate_without": float(ok[~has].mean()) if (~has).any() else float("nan"),
               "value_sign_accuracy": float((np.sign(values[:, 0].numpy()[decided]) == value[decided]).mean())
               if decided.any() else float("nan")}
        if moves is not None and len(moves):
            probs = torch.softmax(logits[torch.as_tensor(has)], dim=1)
            out["p_concept_move"] = float((probs * moves).sum(dim=1).mean())
        return out

    return metric


# ---------------------------------------------------------------------------- one concept
def default_layer(policy: Any) -> str:
    """The trunk's last residual block: the representation both heads read."""
    trunk = [layer.name for layer in probe_layers(policy) if layer.name.startswith("features_extractor.")]
    return trunk[-1]


def _probe_after(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """Held-out balanced accuracy of a fresh L2 logistic probe (the erasure's out-of-sample check)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(x_train, y_train)
    return float(balanced_accuracy_score(y_test, probe.predict(x_test)))


def _edit_size(eraser: Eraser, x: np.ndarray) -> float:
    """Mean squared change of the activations, relative to their total variance."""
    change = x - eraser.apply(x)
    return float(np.mean(np.sum(change ** 2, axis=1)) / np.sum(x.var(axis=0)))


def concept_causal_tests(policy: Any, positions: CausalPositions, layer: str, concept: str,
                         alphas: Sequence[float] = DEFAULT_ALPHAS, n_random: int = 5, inlp_rank: int = 16,
                         seed: int = 0, progress: bool = True) -> dict:
    """Probe, steering and erasure results of one (layer, concept) on one policy.

    :returns: ``{"probe": {...}, "steering": [records], "erasure": [records], "erasers": [...]}``;
        records are tidy (one metric per row) and tagged with layer and concept.
    """
    y = positions.concepts[concept]
    if y.sum() < 10 or (~y).sum() < 10:
        raise ValueError(f"{concept}: {int(y.sum())} positives and {int((~y).sum())} negatives; need 10 of each "
                         "(use more positions)")
    policy.set_training_mode(False)
    x = as_flat(hooked_activations(policy, [layer], forward=policy_forward)(positions.obs)[layer]).astype(np.float64)
    train, test = grouped_split(positions.game_ids, test_size=0.3, seed=seed)
    score = fit_probe(x, y, positions.game_ids, "binary", "logistic", split=(train, test), seed=seed, n_boot=100)
    unit_probe = probe_direction(score)
    xt, yt = x[train], y[train]
    mean_difference = xt[yt].mean(axis=0) - xt[~yt].mean(axis=0)
    directions = {"probe": unit_probe, "mean_difference": mean_difference / np.linalg.norm(mean_difference)}
    probe = {"balanced_accuracy": score["balanced_accuracy"], "auroc": score.metrics.get("auroc", float("nan")),
             "ci": score.ci, "n_train": len(train), "n_test": len(test), "n_test_with": int(y[test].sum()),
             "prevalence": float(y.mean()), "dim": int(x.shape[1]),
             "cosine_probe_mean_difference": float(directions["probe"] @ directions["mean_difference"])}
    tag = {"layer": layer, "concept": concept}
    metric = behaviour_metric(policy, positions, test, concept)
    steering = []
    for kind, u in directions.items():
        s = projection_scale(xt, u)
        proj = xt @ u
        # how far apart the classes sit along u, in the alpha unit s
        probe[f"{kind}_scale"] = s
        probe[f"{kind}_class_gap"] = float((proj[yt].mean() - proj[~yt].mean()) / s)
        curve = steering_curve(policy, layer, s * u, alphas, metric, n_random=n_random, seed=seed, progress=progress)
        steering += [{**tag, "steer": kind, **r} for r in curve]
    log.info("%s @ %s: probe balanced accuracy %.3f, class gaps %.2f (probe) %.2f (mean difference)", concept, layer,
             probe["balanced_accuracy"], probe["probe_class_gap"], probe["mean_difference_class_gap"])

    # erasers fitted on the train games; INLP stops on an inner held-out split of them
    inner_train, inner_test = grouped_split(positions.game_ids[train], test_size=0.25, seed=seed)
    leace = leace_fit(xt, yt)
    inlp = inlp_fit(xt[inner_train], yt[inner_train], rank=inlp_rank, x_test=xt[inner_test], y_test=yt[inner_test],
                    seed=seed)
    inlp = Eraser(inlp.proj, xt.mean(axis=0), inlp.rank, "inlp", inlp.info)
    cov = covariance(xt)
    mean = xt.mean(axis=0)
    erasers = {"leace": leace, "inlp": inlp}
    controls = {"leace": [random_subspace_eraser(x.shape[1], leace.rank, seed + i, mean=mean, cov=cov) for i in range(n_random)],
                "inlp": [random_subspace_eraser(x.shape[1], inlp.rank, seed + i, mean=mean) for i in range(n_random)]}
    erasure = erasure_effect(policy, layer, erasers, controls, metric, progress=progress)
    about = []
    for name, eraser in erasers.items():
        control = controls[name][0]
        about.append({
            "eraser": name, "rank": eraser.rank, "info": eraser.info,
            "probe_after": _probe_after(eraser.apply(x[train]), y[train], eraser.apply(x[test]), y[test]),
            "probe_after_control": _probe_after(control.apply(x[train]), y[train], control.apply(x[test]), y[test]),
            "edit_size": _edit_size(eraser, x[test]),
            "edit_size_control": float(np.mean([_edit_size(c, x[test]) for c in controls[name]]))})
    return {"probe": {**tag, **probe},
            "steering": steering,
            "erasure": [{**tag, **r} for r in erasure],
            "erasers": [{**tag, **a} for a in about]}


# ---------------------------------------------------------------------------- minimal pairs
def pair_behaviour(policy: Any, game: Any, pairs: Sequence[Any]) -> tuple[list[dict], dict]:
    """The agent's greedy moves on both members of each minimal pair, and agreement rates.

    Per pair: ``takes_concept_move`` (in the member with the concept it plays one of the
    concept's columns: takes the win, blocks), ``avoids_without`` (in the other member it does
    not play those columns unless the solver calls that move optimal there), ``agrees`` (both),
    ``optimal_both`` / ``good_both`` (its moves are solver-optimal / value-preserving in both),
    ``changes_move`` (its move differs between members) and the solver's ``solver_changes_move``.

    :returns: (per-pair records, summary with counts and rates).
    """
    player = PolicyPlayer(policy)
    records = []
    if pairs:
        states = [game.parse(t) for p in pairs for t in (p.with_concept, p.without_concept)]
        moves = player.act(np.stack([game.observation(s) for s in states]), np.stack([game.legal_mask(s) for s in states]))
        for k, pair in enumerate(pairs):
            a, b = int(moves[2 * k]), int(moves[2 * k + 1])
            concept_cols = set(pair.concept_moves_with)
            takes = a in concept_cols if concept_cols else a in pair.optimal_with
            avoids = b not in concept_cols or b in pair.optimal_without
            records.append({**pair.to_dict(), "agent_with": a, "agent_without": b, "takes_concept_move": takes,
                            "avoids_without": avoids, "agrees": takes and avoids,
                            "optimal_both": a in pair.optimal_with and b in pair.optimal_without,
                            "good_both": a in pair.good_with and b in pair.good_without, "changes_move": a != b})
    summary = {"pairs": len(records)}
    for key in ("takes_concept_move", "avoids_without", "agrees", "optimal_both", "good_both", "changes_move",
                "solver_changes_move"):
        summary[key] = float(np.mean([r[key] for r in records])) if records else float("nan")
    solver_changes = [r for r in records if r["solver_changes_move"]]
    summary["pairs_solver_changes_move"] = len(solver_changes)
    summary["changes_move_when_solver_does"] = (float(np.mean([r["changes_move"] for r in solver_changes]))
                                               if solver_changes else float("nan"))
    return records, summary


def _rows(records: Sequence[dict], **where: Any) -> list[dict]:
    return [r for r in records if all(r.get(k) == v for k, v in where.items())]


def plot_steering(result: dict, path: str | Path, metrics: Sequence[str] = ("p_concept_move", "good_rate",
                                                                             "value_sign_accuracy")) -> Path:
    """Steering curves: one row per concept, one column per metric; concept direction(s) against
    the random-direction mean with its 95% interval (band). Written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common.atomic import atomic_save_figure

    concepts = result["concepts"]
    fig, axes = plt.subplots(len(concepts), len(metrics), figsize=(4.2 * len(metrics), 3.2 * len(concepts)),
                             squeeze=False)
    colours = {"probe": "tab:blue", "mean_difference": "tab:red"}
    for i, concept in enumerate(concepts):
        for j, metric in enumerate(metrics):
            ax = axes[i][j]
            for kind, colour in colours.items():
                mine = _rows(result["steering"], concept=concept, metric=metric, steer=kind, direction="concept")
                rand = _rows(result["steering"], concept=concept, metric=metric, steer=kind, direction="random")
                if not mine:
                    continue
                a = [r["alpha"] for r in mine]
                ax.plot(a, [r["mean"] for r in mine], "o-", color=colour, label=f"{kind} direction")
                ax.plot(a, [r["mean"] for r in rand], "--", color=colour, alpha=0.7, label=f"random ({kind} norm)")
                ax.fill_between(a, [r["ci_low"] for r in rand], [r["ci_high"] for r in rand], color=colour, alpha=0.15)
            ax.set_title(f"{concept}: {metric}", fontsize=9)
            ax.set_xlabel("alpha (sd of activations along the direction)")
            ax.grid(alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.suptitle(f"steering at {result['layer']} (held-out positions)", fontsize=10)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=110)
    return Path(path)


def plot_erasure(result: dict, path: str | Path, metrics: Sequence[str] = ("good_rate", "value_sign_accuracy",
                                                                            "p_concept_move")) -> Path:
    """Bars of the change in each metric under concept erasure against random subspaces of the same
    rank (95% interval over controls). Written atomically as PNG."""
    import matplotlib

    from common.atomic import atomic_save_figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    concepts = result["concepts"]
    fig, axes = plt.subplots(1, len(concepts), figsize=(5.5 * len(concepts), 3.6), squeeze=False)
    for i, concept in enumerate(concepts):
        ax = axes[0][i]
        labels, heights, errors, colours = [], [], [], []
        for metric in metrics:
            for eraser in ("leace", "inlp"):
                for kind, colour in (("concept", "tab:red"), ("random", "tab:gray")):
                    rows = _rows(result["erasure"], concept=concept, metric=metric, eraser=eraser, kind=kind)
                    if not rows:
                        continue
                    r = rows[0]
                    labels.append(f"{metric}\n{eraser} {'concept' if kind == 'concept' else 'random'} (k={r['rank']})")
                    heights.append(r["effect"])
                    errors.append([[r["mean"] - r["ci_low"]], [r["ci_high"] - r["mean"]]])
                    colours.append(colour)
        x = np.arange(len(labels))
        ax.bar(x, heights, color=colours, yerr=np.array(errors).reshape(len(labels), 2).T if labels else None, capsize=3)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=70, fontsize=6)
        ax.set_ylabel("change from unedited")
        ax.set_title(f"erasing {concept} at {result['layer']}", fontsize=9)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=110)
    return Path(path)


def summary_rows(result: dict) -> list[tuple[str, ...]]:
    """``(concept, test, concept value, random mean [95% CI], baseline)`` rows for a printed table."""
    rows: list[tuple[str, ...]] = []
    top = max(result["alphas"])
    for concept in result["concepts"]:
        probe = _rows(result["probe"], concept=concept)[0]
        rows.append((concept, "probe balanced accuracy (held-out)", f"{probe['balanced_accuracy']:.3f}", "", ""))
        for kind in ("probe", "mean_difference"):
            for alpha in (-top, top):
                for metric in ("p_concept_move", "good_rate"):
                    mine = _rows(result["steering"], concept=concept, steer=kind, alpha=alpha, metric=metric, direction="concept")
                    rand = _rows(result["steering"], concept=concept, steer=kind, alpha=alpha, metric=metric, direction="random")
                    if mine:
                        r = rand[0]
                        rows.append((concept, f"steer {kind} a={alpha:+g}: {metric}", f"{mine[0]['mean']:.3f}",
                                     f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]", f"{r['baseline']:.3f}"))
        for eraser in ("leace", "inlp"):
            for metric in ("good_rate", "value_sign_accuracy", "p_concept_move"):
                mine = _rows(result["erasure"], concept=concept, eraser=eraser, metric=metric, kind="concept")
                rand = _rows(result["erasure"], concept=concept, eraser=eraser, metric=metric, kind="random")
                if mine:
                    r = rand[0]
                    rows.append((concept, f"erase {eraser} k={r['rank']}: {metric}", f"{mine[0]['mean']:.3f}",
                                 f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]", f"{r['baseline']:.3f}"))
        about = _rows(result["erasers"], concept=concept)
        for a in about:
            rows.append((concept, f"erase {a['eraser']}: probe accuracy after", f"{a['probe_after']:.3f}",
                         f"{a['probe_after_control']:.3f}", ""))
        for s in _rows(result["minimal_pairs"]["summary"], concept=concept):
            rows.append((concept, f"minimal pairs (n={s['pairs']}): agrees / optimal both / good both",
                         f"{s['agrees']:.3f} / {s['optimal_both']:.3f} / {s['good_both']:.3f}", "", ""))
    return rows
