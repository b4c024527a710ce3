"""RGB pictures of grid boards for `render_mode="rgb_array"` (numpy only, no display)."""

from __future__ import annotations

import numpy as np

BACKGROUND = np.array([30, 60, 160], dtype=np.uint8)  # board blue
EMPTY = np.array([235, 235, 235], dtype=np.uint8)
PLAYER_COLOURS = (np.array([220, 40, 40], dtype=np.uint8), np.array([245, 200, 30], dtype=np.uint8))  # red, yellow


def draw_grid(cells: np.ndarray, cell_px: int = 32, shape: str = "disc") -> np.ndarray:
    """Draw an ``R x C`` grid of 0 (empty), 1 (player 0) and 2 (player 1) cells.

    :param cells: int array, row 0 drawn at the top.
    :param cell_px: size of one cell in pixels.
    :param shape: "disc" (Connect Four stones) or "square" (tic-tac-toe marks, Nim objects).
    :returns: ``(R * cell_px) x (C * cell_px) x 3`` uint8 image.
    """
    rows, cols = cells.shape
    img = np.empty((rows * cell_px, cols * cell_px, 3), dtype=np.uint8)
    img[:] = BACKGROUND
    yy, xx = np.mgrid[0:cell_px, 0:cell_px]
    c = (cell_px - 1) / 2
    if shape == "disc":
        inside = (yy - c) ** 2 + (xx - c) ** 2 <= (0.42 * cell_px) ** 2
    else:
        m = int(0.1 * cell_px)
        inside = (yy >= m) & (yy < cell_px - m) & (xx >= m) & (xx < cell_px - m)
    for r in range(rows):
        for col in range(cols):
            v = int(cells[r, col])
            colour = EMPTY if v == 0 else PLAYER_COLOURS[v - 1]
            block = img[r * cell_px:(r + 1) * cell_px, col * cell_px:(col + 1) * cell_px]
            block[inside] = colour
    return img
