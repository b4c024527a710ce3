"""Atomic directory writes: fill a temporary sibling folder, then rename it onto the target.

`games.atomic` does this for single files; checkpoints are folders (weights, config,
tokenizer, recipe), so a killed writer must leave either the old folder or the new one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


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
