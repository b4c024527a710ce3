"""Shared helpers of the benchmark scripts: machine description and atomic JSON output."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from games.atomic import atomic_write_text


def machine_info() -> dict:
    """CPU model, core count, library versions, date and load, for the record."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba
    import numpy

    return {
        "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "numba": numba.__version__,
        "numpy": numpy.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "loadavg_start": os.getloadavg(),
    }


def write_json(path: Path, report: dict) -> Path:
    """Write `report` as indented JSON, atomically (temporary file, then rename)."""
    return atomic_write_text(json.dumps(report, indent=1), path)
