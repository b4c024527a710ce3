"""Markdown tables from data frames, without optional dependencies (``tabulate`` is not required)."""

from __future__ import annotations

from typing import Any, Callable


def frame_to_markdown(frame: Any, cell: Callable[[Any], str] = str) -> str:
    """A plain Markdown table of a pandas data frame, each value written by `cell` ("|" escaped).

    An empty frame gives ``_(none)_``. The text ends with a newline.
    """
    if frame.empty:
        return "_(none)_\n"
    lines = ["| " + " | ".join(str(c) for c in frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(("" if v is None else cell(v)).replace("|", "/") for v in row) + " |"
              for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"
