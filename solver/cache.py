"""A persistent cache of exact solutions in SQLite, keyed by canonical position key.

Labelling a dataset solves every position and all its children; many positions recur
across datasets (openings above all), so results are kept in one SQLite file shared by
datasets and processes (WAL journal, so readers and one writer work at once). A row
holds the score of the position and the score of each column, stored for the canonical
orientation (the smaller key of a position and its mirror image).

A corrupt or foreign file is never used and never touched silently: opening it raises
`CorruptCacheError` naming the file. The cache holds nothing that cannot be recomputed,
so the remedy is to delete the file, or to open it with ``rebuild=True`` (``make_dataset.py
--rebuild-cache``), which moves it (and its ``-wal``/``-shm`` companions) aside to
``FILE.corrupt-<time>`` with a warning and starts an empty cache.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from games.connect4.position import Position

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS solutions (
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    key INTEGER NOT NULL,          -- canonical key, as a signed 64-bit integer
    score INTEGER NOT NULL,
    columns TEXT NOT NULL,         -- comma-separated column scores, '' for a full column
    PRIMARY KEY (width, height, key)
) WITHOUT ROWID
"""


class CorruptCacheError(ValueError):
    """The solution cache file is not a usable SQLite database (the message names it and the remedy)."""


def _signed(key: int) -> int:
    """SQLite integers are signed 64-bit: map a uint64 key onto them."""
    return key - (1 << 64) if key >= 1 << 63 else key


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    """True for a damaged or foreign file; False for a busy, read-only or missing one."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return True
    return not isinstance(exc, sqlite3.OperationalError) and not name


def _corrupt(path: Path, exc: sqlite3.DatabaseError) -> Exception:
    if not _is_corruption(exc):  # locked, read-only, disk full...: say so, touch nothing
        return OSError(f"solution cache {path}: {exc}")
    return CorruptCacheError(
        f"solution cache {path} is corrupt or not a solution cache ({exc}); it only holds solutions that can be "
        f"recomputed: delete it (rm {path}*) or rerun with --rebuild-cache to move it aside and start a new one")


class SolutionCache:
    """Exact scores (position and per column) stored by canonical key.

    :param path: the SQLite file (created with its folder if missing).
    :param rebuild: if the file is corrupt, move it aside to ``FILE.corrupt-<time>`` (with
        a warning) and start an empty cache, instead of raising `CorruptCacheError`.
    :param verify: read every page on opening (SQLite ``quick_check``, about a second per
        100 MB), so that damage deep in the file is found now rather than mid-labelling.
    """

    def __init__(self, path: str | Path, *, rebuild: bool = False, verify: bool = False) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise ValueError(f"solution cache {self.path} is a folder; give a file name such as {self.path / 'solutions.sqlite'}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open(verify)
        except sqlite3.DatabaseError as exc:
            if not rebuild or not _is_corruption(exc):
                raise _corrupt(self.path, exc) from exc
            aside = self.move_aside()
            logger.warning("solution cache %s was corrupt (%s); moved it to %s and started an empty one",
                           self.path, exc, aside)
            self._db = self._open()
        self.hits = 0
        self.misses = 0

    def _open(self, verify: bool = False) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60.0)
        try:
            if verify:
                result = db.execute("PRAGMA quick_check").fetchone()[0]
                if result != "ok":
                    raise sqlite3.DatabaseError(f"quick_check: {result}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            db.commit()
            columns = [row[1] for row in db.execute("PRAGMA table_info(solutions)")]
            if columns != ["width", "height", "key", "score", "columns"]:
                raise sqlite3.DatabaseError(f"its 'solutions' table has columns {columns}")
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def move_aside(self) -> Path:
        """Rename the file and its WAL companions to ``FILE.corrupt-<time>``; returns the new name."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                src.rename(Path(f"{aside}{suffix}"))
        return aside

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "SolutionCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        try:
            return int(self._db.execute("SELECT COUNT(*) FROM solutions").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.path, exc) from exc

    def get_many(self, positions: Sequence[Position]) -> list[tuple[int, list[int | None]] | None]:
        """For each position, (score, column scores) in its own orientation, or None if unknown."""
        out: list[tuple[int, list[int | None]] | None] = []
        try:
            for p in positions:
                key = p.canonical_key()
                row = self._db.execute(
                    "SELECT score, columns FROM solutions WHERE width=? AND height=? AND key=?",
                    (p.size.width, p.size.height, _signed(key)),
                ).fetchone()
                if row is None:
                    self.misses += 1
                    out.append(None)
                    continue
                self.hits += 1
                columns = [None if v == "" else int(v) for v in row[1].split(",")]
                if key != p.key():  # stored for the mirror image
                    columns = columns[::-1]
                out.append((int(row[0]), columns))
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.path, exc) from exc
        return out

    def put_many(self, positions: Sequence[Position], scores: Sequence[int], columns: Sequence[Sequence[float | None]]) -> None:
        """Store solutions given in each position's own orientation."""
        rows = []
        for p, score, cols in zip(positions, scores, columns):
            cols = [None if c is None or (isinstance(c, float) and np.isnan(c)) else int(c) for c in cols]
            key = p.canonical_key()
            if key != p.key():
                cols = cols[::-1]
            rows.append((p.size.width, p.size.height, _signed(key), int(score), ",".join("" if c is None else str(c) for c in cols)))
        try:
            self._db.executemany("INSERT OR REPLACE INTO solutions VALUES (?, ?, ?, ?, ?)", rows)
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.path, exc) from exc
