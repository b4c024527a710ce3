"""Figures of a training run: strength against timesteps."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from agents.records import EvaluationRecord  # noqa: E402


def plot_strength(records: list[EvaluationRecord], path: str | Path, title: str = "") -> Path:
    """Two panels against training timesteps (log scale): good-move (solid) and perfect-move
    (dashed) rates on each position set, and win rates (both colours pooled) against each
    ladder opponent. The agent plays as the records say (``views``: the network alone, or its
    policy averaged over the board's symmetric views). Written atomically as PNG."""
    from agents.evaluation import agent_description
    from common.atomic import atomic_save_figure

    path = Path(path)
    steps = [r.timestep for r in records]
    fig, (ax_q, ax_g) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    sets = list(records[-1].move_quality or {}) if records else []
    for i, name in enumerate(sets):
        color = f"C{i}"
        ax_q.plot(steps, [r.move_quality[name].good_rate for r in records], "-o", color=color, ms=3,
                  label=f"{name} good")
        ax_q.plot(steps, [r.move_quality[name].perfect_rate for r in records], "--", color=color, alpha=0.7,
                  label=f"{name} perfect")
    seen = agent_description(records[-1]) if records else "network alone"
    ax_q.set(title=f"move quality vs the exact solver\n({seen})", xlabel="timesteps", ylabel="rate", ylim=(0, 1.02))
    opponents = list(records[-1].games or {}) if records else []
    for i, name in enumerate(opponents):
        ax_g.plot(steps, [r.games[name].all.win for r in records], "-o", ms=3, color=f"C{i}", label=name)
        ax_g.plot(steps, [r.games[name].all.loss for r in records], ":", color=f"C{i}", alpha=0.6)
    ax_g.set(title="wins (solid) and losses (dotted), both colours", xlabel="timesteps", ylabel="share of games",
             ylim=(0, 1.02))
    for ax in (ax_q, ax_g):
        if steps and min(steps) > 0:
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a run evaluated without sets or games has nothing to name
            ax.legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    atomic_save_figure(fig, path, dpi=110)
    return path
