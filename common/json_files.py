"""Reading a project JSON file with errors that name it: missing, or damaged (not valid JSON).

The owner modules of the on-disk formats (run folders, dataset folders, sweep folders) read
their JSON through `read_json`, so every such error reads the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(path: str | Path, *, missing: str, repair: str = "") -> Any:
    """The parsed content of `path`.

    :param missing: what a missing file means, for ``"PATH does not exist: <missing>"``.
    :param repair: appended to the damaged-file message (e.g. ``": rebuild the dataset"``).
    :raises FileNotFoundError: `path` is not a file.
    :raises ValueError: `path` is not valid JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {missing}")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); it is damaged{repair}") from exc
