"""Constant masks of a Connect Four board size: rows by parity, centre, lines of four, squares.

Rules-layer data shared by the baseline players (`games.connect4.players`) and the
concepts (`games.connect4.concepts`); computed once per board size.
"""

from __future__ import annotations

import functools

import numpy as np

from games.connect4.position import BoardSize


@functools.lru_cache(maxsize=None)
def board_tables(width: int, height: int) -> dict:
    """Constant masks of a board size: rows by parity, centre column, lines of four, squares."""
    size = BoardSize(width, height)
    bit = size.bit
    odd_rows = sum(bit(c, r) for c in range(width) for r in range(0, height, 2))  # Allis rows 1, 3, 5
    even_rows = sum(bit(c, r) for c in range(width) for r in range(1, height, 2))
    lines = []
    for c in range(width):
        for r in range(height):
            for dc, dr in ((1, 0), (0, 1), (1, 1), (1, -1)):
                cells = [(c + k * dc, r + k * dr) for k in range(4)]
                if all(0 <= cc < width and 0 <= rr < height for cc, rr in cells):
                    lines.append(sum(bit(cc, rr) for cc, rr in cells))
    # square index in the spatial (row 0 on top, row-major) layout -> bit index
    square_bits = [c * (height + 1) + (height - 1 - row) for row in range(height) for c in range(width)]
    centre = [width // 2] if width % 2 else [width // 2 - 1, width // 2]
    return {
        "size": size,
        "odd_rows": np.uint64(odd_rows),
        "even_rows": np.uint64(even_rows),
        "lines": np.array(lines, dtype=np.uint64),
        "square_bits": np.array(square_bits, dtype=np.uint64),
        "centre": np.uint64(sum(bit(c, r) for c in centre for r in range(height))),
        "columns": np.array([((1 << height) - 1) << (c * (height + 1)) for c in range(width)], dtype=np.uint64),
        "bottoms": np.array([1 << (c * (height + 1)) for c in range(width)], dtype=np.uint64),
    }
