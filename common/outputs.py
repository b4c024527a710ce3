"""Where results are written, checked before any work: a read-only or wrong destination fails
in a second, not after an hour, and a user's run never replaces recorded results unasked.

`check_writable` checks one output file; `prepare_output` creates a script's output folder.
The LM scripts use `prepare_output` to write into ``runs/<name>`` unless ``--out`` names a
folder; an existing folder that already holds a finished result (its marker file, e.g.
``summary.json``) is only written into with ``--overwrite``. Unfinished folders (a killed
resumable run) are reused, so rerunning the same command resumes. ``probe_usage.py`` needs
``--out`` and always resumes there (its results carry their settings and are redone when
those differ).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

RUNS_DIR = Path("runs")


def check_writable(path: str | Path, what: str = "output") -> Path:
    """Raise now, before any work, if the file `path` could not be written (atomically) later.

    The folder that would hold it (or the nearest one that exists: missing folders are
    created at write time) must be a folder in which a file can be created; `path` itself
    must not be a folder. Nothing is left behind. Works for root too, for whom permission
    bits do not apply but read-only file systems do.

    :param path: a file that will be written with `common.atomic` helpers.
    :param what: how the user named it (e.g. ``"--json"``), for the message.
    :raises IsADirectoryError, NotADirectoryError, PermissionError: naming `path` and `what`.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder; give a file name")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(f"cannot write {what} {path}: {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PermissionError(f"cannot write {what} {path}: folder {folder} is not writable "
                              f"({exc.strerror or exc}); choose another location") from exc
    return path


def prepare_output(out: Path | None, default_name: str, *, overwrite: bool, finished: Sequence[str] = ()) -> Path:
    """The output folder of a script, created and checked.

    :param out: the folder the user named, or None for ``runs/<default_name>``.
    :param default_name: folder name under `RUNS_DIR` when `out` is None.
    :param overwrite: allow writing into a folder that holds a finished result.
    :param finished: files whose presence marks a finished result; empty: any file does.
    :raises FileExistsError: a finished result is there and `overwrite` is False.
    :raises PermissionError: the folder cannot be written.
    """
    folder = Path(out) if out is not None else RUNS_DIR / default_name
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"--out {folder} is a file; name a folder")
    if folder.is_dir() and not overwrite:
        markers = [folder / name for name in finished] if finished else list(folder.iterdir())
        done = [p for p in markers if p.exists()]
        if done:
            raise FileExistsError(f"{folder} already holds a result ({done[0].name}); pass --overwrite to replace it, "
                                  f"or --out another folder")
    check_writable(folder / ".probe", "--out")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
