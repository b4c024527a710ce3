"""Atomic file writes: write to a temporary file in the same folder, then rename onto the target.

A killed process leaves either the old file or the new one, never half of one. Used by
every layer that writes artifacts (datasets, checkpoints, activation caches, reports);
`atomic_directory` does the same for folders (e.g. a language-model checkpoint).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_target(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path in `path`'s folder; on success it is renamed onto `path`.

    On any error the temporary file is removed and `path` keeps its old content. `suffix`
    matters to writers that add or check extensions (``.zip`` for SB3, ``.npy`` for numpy).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o644)  # mkstemp makes files private; artifacts are meant to be shared
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to `path`; on success it replaces `path`.

    The old folder (if any) is moved aside first and removed only after the new one is in
    place; on error the temporary folder is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    os.chmod(tmp, 0o755)  # mkdtemp makes folders private; checkpoints are meant to be shared
    try:
        yield tmp
        for f in tmp.rglob("*"):  # some writers (safetensors) create private files
            if f.is_file():
                os.chmod(f, 0o644)
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.rmdir(old)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(text: str, path: str | Path) -> Path:
    """Write `text` to `path` atomically."""
    with atomic_target(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(data: object, path: str | Path) -> Path:
    """Write `data` as indented JSON, atomically (the results format of benchmarks and reports)."""
    import json

    return atomic_write_text(json.dumps(data, indent=1), path)


def atomic_save_figure(fig, path: str | Path, dpi: int = 110, tight: bool = False) -> Path:
    """Save a matplotlib figure as PNG atomically, then close it."""
    import matplotlib.pyplot as plt

    with atomic_target(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight" if tight else None)
    plt.close(fig)
    return Path(path)
