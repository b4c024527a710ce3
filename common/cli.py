"""One way for every command-line door to fail: a one-line message and a non-zero exit.

Scripts end with ``run_app(app)`` instead of ``app()``. Errors a user can cause (bad
option values, missing or corrupt files, folders that cannot be written) are raised as
ordinary exceptions by the library and reach the user as ``error: <message>`` on stderr
with exit status 2, never as a traceback; Ctrl-C exits with status 130 after one line.
Set ``SOLVEDLENS_DEBUG=1`` to see the full traceback instead.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Callable, NoReturn

#: Exceptions that mean "the input or the environment is wrong", not "the program is wrong".
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, OSError)  # OSError: missing, unreadable, read-only

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """An error whose message is the whole story for the user (raised by scripts' own checks)."""


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: message`` on stderr and exit with `code`."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])  # KeyError's str() adds quotes around the message
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0] if len(text.splitlines()) > 3 else " ".join(text.split())


def _interrupted() -> NoReturn:
    print("interrupted (finished work is kept; rerun the same command to resume)", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_INTERRUPTED) from None


def run_app(app: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run a typer/click app (or any callable) turning user errors into one line and exit 2."""
    if os.environ.get("SOLVEDLENS_DEBUG"):
        app(*args, **kwargs)
        return
    try:
        app(*args, **kwargs)
    except KeyboardInterrupt:
        _interrupted()
    except SystemExit as exc:
        if exc.code == EXIT_INTERRUPTED:  # click/typer turn Ctrl-C into a silent exit 130
            _interrupted()
        raise
    except (UserError, *USER_ERRORS) as exc:
        fail(_message(exc))


def help_text(doc: str) -> str:
    """A script's module docstring as click help: indented example blocks kept verbatim (click's
    no-rewrap marker before each; a reST ``::`` before one becomes ``:``)."""
    return re.sub(r":?:?\n\n(    \S)", lambda m: (":" if m.group(0).startswith(":") else "") + "\n\n\b\n" + m.group(1), doc)


def parse_int_ranges(spec: str, name: str) -> list[int]:
    """Non-negative integers from ``"2-10"`` or ``"2,4,6"`` (or a mix), sorted and distinct.

    :param name: the option, for the error message.
    :raises ValueError: naming the option and the accepted forms.
    """
    out: list[int] = []
    try:
        for part in spec.split(","):
            lo, _, hi = part.partition("-")
            out.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        out = []
    if not out or min(out) < 0:
        raise ValueError(f"{name} {spec!r}: give plies like 2-10 or 2,4,6 (>= 0)")
    return sorted(set(out))
