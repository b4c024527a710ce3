"""The side-by-side benchmark's plumbing: building a peer solver per board size, reading its
answers, drawing positions on other sizes, measuring a process's peak memory.

Pons' sources are not shipped, so the build is exercised on a stand-in with his file names,
his size constants and his output format (it answers a fixed score, the board size, for
every position).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

from games.connect4.position import Position
from solver.peer import (
    PONS_SOURCES,
    build_pons,
    check_pons_source,
    run_pons,
    sized_position_header,
)

REPO = Path(__file__).resolve().parents[1]

STAND_IN_POSITION = """#pragma once
namespace Demo {
  class Position {
    public:
      static const int WIDTH = 7;  // width of the board
      static const int HEIGHT = 6; // height of the board
  };
}
"""
STAND_IN_MAIN = """#include "position.hpp"
#include <iostream>
#include <string>
int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    std::cout << line << " " << Demo::Position::WIDTH * 10 + Demo::Position::HEIGHT << " " << line.size() << " 3" << std::endl;
  }
}
"""


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_vs_pons_under_test", REPO / "scripts" / "bench_vs_pons.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def stand_in(tmp_path) -> Path:
    source = tmp_path / "pons"
    source.mkdir()
    for name in PONS_SOURCES:
        (source / name).write_text("// stand-in\n")
    (source / "position.hpp").write_text(STAND_IN_POSITION)
    (source / "main.cpp").write_text(STAND_IN_MAIN)
    return source


def test_the_size_constants_are_rewritten_and_nothing_else():
    text = STAND_IN_POSITION
    sized = sized_position_header(text, 5, 4)
    assert "static const int WIDTH = 5;" in sized and "static const int HEIGHT = 4;" in sized
    assert sized.replace("= 5;", "= 7;").replace("= 4;", "= 6;") == text
    with pytest.raises(ValueError, match="found 1 size lines"):
        sized_position_header("static const int WIDTH = 7;", 5, 4)


def test_a_folder_without_his_sources_is_named(tmp_path, stand_in):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        check_pons_source(tmp_path / "missing")
    (stand_in / "MoveSorter.hpp").unlink()
    with pytest.raises(FileNotFoundError, match="lacks MoveSorter.hpp"):
        check_pons_source(stand_in)


@pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler")
def test_built_per_board_size_and_answers_parsed(tmp_path, stand_in):
    builds = tmp_path / "build"
    small = build_pons(stand_in, 5, 4, builds)
    big = build_pons(stand_in, 7, 6, builds)
    assert small != big and small.parent.name == "5x4"
    assert build_pons(stand_in, 5, 4, builds) == small  # reused, not rebuilt
    run = run_pons(small, ["4453", "1"])
    assert run.scores.tolist() == [54, 54] and run.nodes.tolist() == [4, 1] and run.micros.tolist() == [3.0, 3.0]
    assert run_pons(big, ["4"]).scores.tolist() == [76]
    with pytest.raises(ValueError, match="width < 10"):
        build_pons(stand_in, 10, 5, builds)


def test_a_failed_build_says_so(tmp_path, stand_in):
    if shutil.which("g++") is None:
        pytest.skip("no C++ compiler")
    (stand_in / "main.cpp").write_text("this is not C++\n")
    with pytest.raises(RuntimeError, match="building Pons' solver for 6x5 failed"):
        build_pons(stand_in, 6, 5, tmp_path / "build")


def test_random_positions_are_live_distinct_and_deterministic():
    bench = _bench_module()
    moves = bench.random_positions(40, 5, 4, seed=3)
    assert moves == bench.random_positions(40, 5, 4, seed=3)
    assert moves != bench.random_positions(40, 5, 4, seed=4)
    positions = [Position.from_moves(m, 5, 4) for m in moves]
    assert len({p.key() for p in positions}) == 40
    assert all(2 <= p.moves <= 14 and not p.is_terminal() and not p.can_win_next() for p in positions)


def test_board_sizes_parse_or_fail_clearly():
    bench = _bench_module()
    assert bench.parse_sizes("6x5, 5x4,") == [(6, 5), (5, 4)]
    assert bench.parse_sizes("") == []
    import typer

    for bad in ("6by5", "10x5", "3x3"):
        with pytest.raises(typer.BadParameter):
            bench.parse_sizes(bad)


def test_peak_memory_is_the_commands_own_not_ours():
    bench = _bench_module()
    ballast = bytearray(300 * 2**20)  # this process's peak must not leak into the child's
    ballast[::4096] = b"x" * len(ballast[::4096])
    small = bench.peak_rss_mb([sys.executable, "-c", "pass"])
    big = bench.peak_rss_mb([sys.executable, "-c", "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096])"])
    assert small < 100 < 200 < big < 300
    with pytest.raises(RuntimeError, match="failed"):
        bench.peak_rss_mb([sys.executable, "-c", "raise SystemExit(3)"])
