"""`probes/` on LM activations: does the residual stream at the last subject token encode the subject's country?

For every (subject, context) prompt (landmarks and cities; the synthetic world for the tiny
model, real geography for SmolLM2), the residual stream is read at the last subject token
after the embedding and after every block, and a logistic probe (probes.linear.fit_probe,
grouped by subject: test subjects are unseen) predicts the country. Writes
results/lm_probe_<model>/probe_by_layer.json and accuracy_by_layer.png.

    python scripts/lm_probe_demo.py --model tiny
    python scripts/lm_probe_demo.py --model smollm2
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode=None)


@app.command()
def main(
    model: str = typer.Option("tiny", help="tiny | smollm2 | a checkpoint folder"),
    out: Optional[Path] = typer.Option(None, help="output folder [default: runs/lm_probe_<model>; the recorded results "
                                                  "are results/lm_probe_<model>]"),
    overwrite: bool = typer.Option(False, "--overwrite", help="write into --out even if it holds a finished result"),
    layers: Optional[str] = typer.Option(None, help="comma-separated block indices (default: all)"),
    seed: int = typer.Option(0, help="seed of the grouped split and bootstraps"),
    n_boot: int = typer.Option(200, help="bootstrap resamples for the 95% intervals"),
) -> None:
    import dataclasses

    import torch
    from rich.console import Console
    from rich.table import Table

    from lm_interp import load_model
    from lm_interp.probing import probe_layers, subject_prompts, tiny_probe_contexts
    from lm_interp.real_facts import PROBE_CONTEXTS, real_world
    from lm_interp.world import make_world
    from common.atomic import atomic_write_json

    from common.outputs import prepare_output

    if n_boot < 0:
        raise ValueError(f"--n-boot must be 0 or more, got {n_boot}")
    out = prepare_output(out, f"lm_probe_{Path(model).name}", overwrite=overwrite, finished=("probe_by_layer.json",))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    lm = load_model(model)
    if lm.name == "tiny":
        world_seed = lm.info.get("recipe", {}).get("config", {}).get("world_seed", 0)
        prompts = subject_prompts(make_world(world_seed), tiny_probe_contexts())
    else:
        prompts = subject_prompts(real_world(), PROBE_CONTEXTS)
    chosen = [int(x) for x in layers.split(",")] if layers else None
    rows = probe_layers(lm, prompts, chosen, seed=seed, n_boot=n_boot, progress=True)
    report = {
        "model": lm.spec, "description": lm.description, "concept": "country of the subject's city",
        "position": "last subject token", "probe": "logistic (probes.linear.fit_probe, grouped by subject)",
        "n_prompts": len(prompts), "n_subjects": len({p.subject for p in prompts}),
        "n_countries": len({p.target for p in prompts}), "seed": seed, "seconds": round(time.perf_counter() - t0, 1),
        "rows": [dataclasses.asdict(r) for r in rows],
    }
    atomic_write_json(report, out / "probe_by_layer.json")
    _plot(rows, out / "accuracy_by_layer.png", f"{lm.name}: country of the subject at its last token")
    table = Table(title=f"{lm.description}\n{report['n_prompts']} prompts, {report['n_subjects']} subjects, "
                        f"{report['n_countries']} countries (held-out subjects)")
    for col in ("layer", "accuracy", "95% CI", "majority"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.layer, f"{r.accuracy:.3f}", f"[{r.ci_low:.2f}, {r.ci_high:.2f}]", f"{r.majority:.3f}")
    Console().print(table)
    Console().print(f"wrote {out}/probe_by_layer.json and accuracy_by_layer.png ({report['seconds']} s)")


def _plot(rows, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common.atomic import atomic_save_figure

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


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
