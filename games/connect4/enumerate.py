"""Enumerate Connect Four positions ply by ply, optionally one per mirror pair.

Used to build opening books and as a perft-style check of the move generator: counting
every distinct position after n plies (won ones included, play stopping at a win) gives
OEIS A212693 on 7x6 (1, 7, 49, 238, 1120, 4263, 16422, ...).
"""

from __future__ import annotations

from games.connect4.position import Position


def positions_by_ply(
    max_ply: int, width: int = 7, height: int = 6, *, canonical: bool = True, include_terminal: bool = False
) -> list[list[Position]]:
    """Distinct positions reachable after 0..max_ply plies, one list per ply.

    :param canonical: keep one position per mirror pair (the first met).
    :param include_terminal: keep positions where the game is over (they are never expanded).
    """
    if max_ply < 0:
        raise ValueError(f"max_ply must be >= 0, got {max_ply}")
    levels: list[list[Position]] = []
    frontier = [Position.empty(width, height)]
    for ply in range(max_ply + 1):
        kept = [p for p in frontier if include_terminal or not p.is_terminal()]
        levels.append(kept)
        if ply == max_ply:
            break
        seen: set[int] = set()
        nxt: list[Position] = []
        for p in frontier:
            if p.is_terminal():
                continue
            for col in p.legal_moves():
                child = p.play(col)
                key = child.canonical_key() if canonical else child.key()
                if key not in seen:
                    seen.add(key)
                    nxt.append(child)
        frontier = nxt
    return levels
