"""Wire a training run into `probes/`: one sweep entry per checkpoint, plus model-shaped controls.

`probes/` knows nothing about agents; this module turns a run folder into
`probes.sweep.ModelEntry` objects: every checkpoint with its `probe_layers`, networks of
the same architecture with random weights (``random-<seed>``), and the raw input planes
(``input``, a spatial "layer" of the observation itself). Networks come with TCAV
gradients for two targets: the value head, and the pre-mask policy logit of the column a
concept names (``policy_logit``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from agents.checkpoints import list_checkpoints, load_agent
from agents.network import policy_forward, probe_layers
from probes.activations import hooked_activations
from probes.sweep import ModelEntry
from probes.tcav import layer_gradients


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


def _entry(run: str, step: int, model_id: str, policy) -> ModelEntry:
    policy.set_training_mode(False)
    layers = probe_layers(policy)
    activations = hooked_activations(policy, [layer.name for layer in layers], forward=policy_forward)
    # TCAV on the trunk and the heads' hidden vectors (not the head convs, not the outputs themselves)
    hidden = [layer.name for layer in layers if layer.name.startswith("features_extractor") or layer.name.endswith(".fc")]
    return ModelEntry(run, step, model_id, activations, [(layer.name, layer.spatial) for layer in layers],
                      policy_gradients(policy), TCAV_TARGETS, hidden)


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
    entries = []
    policy = None
    for step, path in found:
        policy = load_agent(path).policy
        stamp = f"{path.stat().st_size}-{int(path.stat().st_mtime)}"
        entries.append(_entry(run_dir.name, step, f"{run_dir.resolve()}@{step}:{stamp}", policy))
    for seed in range(random_seeds):
        torch.manual_seed(seed)
        fresh = type(policy)(**policy._get_constructor_parameters())
        entries.append(_entry(f"random-{seed}", 0, f"{run_dir.resolve()}:random-{seed}", fresh))
    if include_input:
        entries.append(ModelEntry("input", 0, "input", lambda inputs: {"planes": inputs}, [("planes", True)]))
    return entries
