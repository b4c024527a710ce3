"""Where and with what a result was made: the machine, the library versions, the cache folder.

Run folders store `library_versions` in their ``config.json``; benchmark scripts store
`machine_info` in their JSON; generated artefacts (opening books, solution caches,
activation caches) live under `cache_dir`.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path


def cache_dir() -> Path:
    """Folder for generated books and other cached artefacts (``$SOLVEDLENS_CACHE``, default
    ``~/.cache/solvedlens``)."""
    return Path(os.environ.get("SOLVEDLENS_CACHE", Path.home() / ".cache" / "solvedlens"))


def library_versions() -> dict[str, str]:
    """Versions of the libraries a run depends on (stored in its config)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "numpy", "numba", "gymnasium", "stable-baselines3", "sb3-contrib", "solvedlens"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def cpu_model() -> str:
    """This machine's CPU model ("model name" in ``/proc/cpuinfo``; the platform's name elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    """CPU model, core count, library versions, date and load, for the record."""
    import numba
    import numpy

    return {
        "cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(), "numba": numba.__version__,
        "numpy": numpy.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "loadavg_start": os.getloadavg(),
    }
