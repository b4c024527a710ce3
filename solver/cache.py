"""A persistent cache of exact solutions in SQLite, keyed by canonical position key.

Labelling a dataset solves every position and all its children; many positions recur
across datasets (openings above all), so results are kept in one SQLite file shared by
datasets and processes (WAL journal, so readers and one writer work at once). A row
holds the score of the position and the score of each column, stored for the canonical
orientation (the smaller key of a position and its mirror image).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Sequence

import numpy as np

from games.connect4.position import Position

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


def _signed(key: int) -> int:
    """SQLite integers are signed 64-bit: map a uint64 key onto them."""
    return key - (1 << 64) if key >= 1 << 63 else key


class SolutionCache:
    """Exact scores (position and per column) stored by canonical key.

    :param path: the SQLite file (created with its folder if missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._db.commit()
        self.hits = 0
        self.misses = 0

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "SolutionCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM solutions").fetchone()[0])

    def get_many(self, positions: Sequence[Position]) -> list[tuple[int, list[int | None]] | None]:
        """For each position, (score, column scores) in its own orientation, or None if unknown."""
        out: list[tuple[int, list[int | None]] | None] = []
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
        self._db.executemany("INSERT OR REPLACE INTO solutions VALUES (?, ?, ?, ?, ?)", rows)
        self._db.commit()
