"""Activation capture: named activations of any torch module, batched, cached on disk.

`probes/` sees a model only through an *activation function*: ``inputs -> {layer name:
array [N, ...]}``. `hooked_activations` builds one from a torch module and the names of its
submodules (forward hooks, so no change to the model), `ActivationStore` caches the
arrays on disk per (model id, layer, dataset id), and `as_flat` / `per_square` give the
two views probes use of a convolutional map ``[N, C, H, W]``.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from common.atomic import atomic_target

log = logging.getLogger(__name__)

ActivationFn = Callable[[np.ndarray], dict[str, np.ndarray]]


def hooked_activations(module: nn.Module, layers: Sequence[str], forward: Callable[[nn.Module, torch.Tensor], object] | None = None,
                       batch_size: int = 1024, progress: bool = False) -> ActivationFn:
    """An activation function for `module`: runs it on batches and records `layers`' outputs.

    :param module: the network (left unchanged; hooks are removed after every call).
    :param layers: names from ``module.named_modules()``.
    :param forward: how to run the module on a batch (default ``module(batch)``), e.g. a
        policy's feature extractor plus heads.
    :param batch_size: inputs per forward pass.
    :param progress: show a progress bar over batches.
    """
    modules = dict(module.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        sample = ", ".join(list(modules)[1:8])
        raise ValueError(f"{type(module).__name__} has no submodules named {missing}; some it has: {sample}, ...")
    run = forward or (lambda m, x: m(x))

    def activations(inputs: np.ndarray) -> dict[str, np.ndarray]:
        inputs = np.asarray(inputs, dtype=np.float32)
        chunks: dict[str, list[np.ndarray]] = {name: [] for name in layers}
        handles = [modules[name].register_forward_hook(
            lambda m, i, o, name=name: chunks[name].append(_output_tensor(o, name).detach().cpu().numpy()))
            for name in layers]
        device = next(module.parameters(), torch.zeros(0)).device
        starts: Iterable[int] = range(0, len(inputs), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="activations", unit="batch", leave=False)
        try:
            with torch.no_grad():
                for start in starts:
                    run(module, torch.as_tensor(inputs[start:start + batch_size], device=device))
        finally:
            for h in handles:
                h.remove()
        return {name: np.concatenate(chunks[name]) if chunks[name] else np.zeros((0,)) for name in layers}

    return activations


def _output_tensor(output: object, name: str) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"layer {name!r} returns {type(output).__name__}, not a tensor; hook a submodule that returns one")


def as_flat(acts: np.ndarray) -> np.ndarray:
    """``[N, ...] -> [N, features]`` (a conv map ``[N, C, H, W]`` becomes ``[N, C*H*W]``)."""
    return acts.reshape(len(acts), -1)


def per_square(acts: np.ndarray) -> np.ndarray:
    """A conv map ``[N, C, H, W]`` as one row per (position, square): ``[N*H*W, C]``.

    Rows are ordered position-major, squares row-major (row 0 on top), matching spatial
    concept labels flattened the same way (``labels.reshape(N*H*W)``).
    """
    if acts.ndim != 4:
        raise ValueError(f"per-square probing needs a [N, C, H, W] map, got shape {acts.shape}")
    n, c, h, w = acts.shape
    return acts.transpose(0, 2, 3, 1).reshape(n * h * w, c)


def board_per_square(acts: np.ndarray) -> np.ndarray:
    """A map ``[N, C, H, W]`` as one row per (position, square) holding the **whole** map re-centred on the square.

    Each row is a ``(C + 1) x (2H - 1) x (2W - 1)`` window centred on its square (squares off
    the board are 0), the extra channel marking which window cells are on the board (so where
    the square sits is visible too). A weight-shared linear probe on these rows can use any
    square's value relative to the one it labels: what a per-square probe of the raw input
    needs to see everything the input gives away (`per_square` sees one square's channels).
    Rows are ordered as in `per_square`.
    """
    if acts.ndim != 4:
        raise ValueError(f"per-square probing needs a [N, C, H, W] map, got shape {acts.shape}")
    n, c, h, w = acts.shape
    padded = np.zeros((n, c + 1, 3 * h - 2, 3 * w - 2), dtype=np.float32)
    padded[:, :c, h - 1: 2 * h - 1, w - 1: 2 * w - 1] = acts
    padded[:, c, h - 1: 2 * h - 1, w - 1: 2 * w - 1] = 1.0
    windows = np.empty((n, h, w, c + 1, 2 * h - 1, 2 * w - 1), dtype=np.float32)
    for r in range(h):  # the window centred on square (r, q) starts at padded row r, column q
        for q in range(w):
            windows[:, r, q] = padded[:, :, r: r + 2 * h - 1, q: q + 2 * w - 1]
    return windows.reshape(n * h * w, -1)


class ActivationStore:
    """On-disk cache of activations, one ``.npy`` per (model id, layer, dataset id).

    :param root: cache folder.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, model_id: str, layer: str, dataset_id: str) -> Path:
        key = hashlib.sha256(f"{model_id}|{dataset_id}".encode()).hexdigest()[:16]
        return self.root / key / f"{layer}.npy"

    def get(self, activation_fn: ActivationFn, inputs: np.ndarray, layers: Sequence[str], model_id: str,
            dataset_id: str) -> dict[str, np.ndarray]:
        """The activations of `layers` on `inputs`, computed once and then read from disk."""
        out: dict[str, np.ndarray] = {}
        todo = []
        for layer in layers:
            path = self.path(model_id, layer, dataset_id)
            if path.exists():
                out[layer] = np.load(path)
                if len(out[layer]) != len(inputs):
                    log.warning("cached %s has %d rows for %d inputs; recomputing", path, len(out[layer]), len(inputs))
                    todo.append(layer)
            else:
                todo.append(layer)
        if todo:
            computed = activation_fn(inputs)
            for layer in todo:
                out[layer] = computed[layer]
                self._save(self.path(model_id, layer, dataset_id), computed[layer])
        return out

    @staticmethod
    def _save(path: Path, array: np.ndarray) -> None:
        with atomic_target(path, suffix=".npy") as tmp:
            np.save(tmp, array)
