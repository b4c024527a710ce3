"""Child processes that never outlive their parent.

Worker pools (dataset labelling, probe sweeps) and the pipeline's steps call
`die_with_parent` in the child: on Linux the kernel then signals the child when its parent
dies, even by ``kill -9`` (``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon thread polls the
parent's pid. A child whose parent is already gone stops at once.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _load_libc() -> ctypes.CDLL | None:
    # Loaded once, in the parent: a ``preexec_fn`` runs between fork and exec, where loading
    # a library is not safe.
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()


def set_parent_death_signal(signum: int) -> bool:
    """Ask the kernel to send `signum` to this process when its parent dies; False where unsupported."""
    if _LIBC is None:
        return False
    try:
        return _LIBC.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except AttributeError:  # a libc without prctl
        return False


def die_with_parent(parent_pid: int, signum: int = signal.SIGKILL, *, watchdog: bool = True,
                    ignore_ctrl_c: bool = False) -> None:
    """Make this (child) process stop when `parent_pid` goes.

    :param parent_pid: the pid of the parent, read in the parent before the child started.
    :param signum: the signal the child gets (SIGKILL for pool workers, SIGTERM for a step
        that should stop its own workers first).
    :param watchdog: where the kernel cannot do it, poll the parent from a daemon thread (not
        in a ``preexec_fn``, whose threads do not survive ``exec``).
    :param ignore_ctrl_c: ignore SIGINT (pool workers: the parent stops the pool on Ctrl-C).
    """
    if ignore_ctrl_c:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    armed = set_parent_death_signal(signum)
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os.kill(os.getpid(), signum)
    if not armed and watchdog:
        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(0.5)
            os.kill(os.getpid(), signum)

        threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
