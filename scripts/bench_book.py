"""How deep an opening book: what each depth costs to build, weighs, and removes from labelling.

Measurements on this machine, then a table per candidate depth (JSON under results/):

* counts: canonical live positions with exactly k stones, by enumeration
  (`games.connect4.enumerate.positions_by_ply`, one per mirror pair, won positions left out);
* solve time per position at each timed ply: `--per-ply-n` positions drawn uniformly (seeded)
  from that ply's enumerated level, each solved alone with empty tables by a worker process
  (`--jobs` of them); a solve still running after `--timeout-s` is killed and recorded as
  censored, its time counted as the timeout (so a mean with censored samples is a lower
  bound). At plies within the shipped book's depth the book is switched off (the cost of
  building that level); past it the book is on, and its hits are recorded to show that a
  book never answers a position inside a search from a root deeper than the book.
  With `--label-plies`, the same worker then times labelling: every child with empty tables
  (what labelling pays when the position is a book hit), then the position again (labelling
  without a hit pays both);
* cold against warm tables (`--warm-ply`): the first `--warm-n` positions of a level in
  enumeration order (siblings, like one build chunk) solved each with empty tables, then in a
  row on one solver's tables, as a build worker does;
* labelling cost at plies not measured here: results/bench_labeling_per_ply.json (`--labelling`).

For each candidate depth d: build cost = positions at ply d x mean solve time at ply d
(CPU-hours of this machine; a lower bound when samples were censored; times the warm/cold
ratio for the warm estimate), book entries (positions with <= d stones) and size on disk
(the real keys saved with scores drawn from the measured ones), and what labelling a
position with k stones still costs for k = d-1 .. `--label-max-ply`.

Plies that are not timed in this run keep their rows from an existing `--out` file, so a
slow ply can be measured on its own:

    python scripts/bench_book.py --time-plies 4-10 --label-plies 4-10 --per-ply-n 12 --timeout-s 60
    python scripts/bench_book.py --time-plies 3 --label-plies "" --per-ply-n 10 --timeout-s 120
    python scripts/bench_book.py --time-plies 2 --label-plies "" --per-ply-n 8 --timeout-s 120
    python scripts/bench_book.py --time-plies "" --warm-ply 5 --warm-n 32
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import random
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import typer

HELP = __doc__.replace("\n    python", "\n\b\n    python", 1)
app = typer.Typer(add_completion=False, help=HELP, rich_markup_mode=None)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "bench_book.json"
LABELLING = ROOT / "results" / "bench_labeling_per_ply.json"
FORMAT = 2  # rows of an --out file in another format are not reused


# ------------------------------------------------------------------------------ timing worker
def _serve(conn, parent_pid: int, width: int, height: int, tt_log2: int, book_path: str | None) -> None:
    """Worker process: time (ply, moves, use_book, label) items one at a time.

    Phase "solve": the position alone, tables emptied first (what a book build pays per
    position). With `label`, phase "label": tables emptied, every child solved (what
    labelling pays when the position itself is a book hit), then the position again on
    the tables this left (labelling without a book pays both). One message per phase.
    """
    import signal

    from common.processes import die_with_parent
    from games.connect4.position import Position
    from solver import Solver
    from solver.book import OpeningBook

    die_with_parent(parent_pid, signal.SIGKILL, ignore_ctrl_c=True)
    solver = Solver(width, height, tt_log2=tt_log2)
    book = OpeningBook.load(book_path) if book_path else None
    solver.solve("1" * (height - 1))  # load the compiled kernel before any timing
    conn.send("ready")
    while True:
        item = conn.recv()
        if item is None:
            return
        ply, moves, use_book, label = item
        position = Position.from_moves(moves, width, height)
        solver.use_book(book if use_book else None)
        solver.reset()
        hits = solver.book_hits
        kids = [position.play(c) for c in position.legal_moves() if not position.is_winning_move(c)]
        scores, stats = solver.solve_many([position])
        conn.send({"score": int(scores[0]), "seconds": float(stats.seconds[0]), "nodes": int(stats.nodes[0]),
                   "children": len(kids)})
        if label:
            solver.reset()
            _, kid_stats = solver.solve_many(kids)
            _, warm = solver.solve_many([position])
            conn.send({"children_cold_s": float(kid_stats.seconds.sum()), "children_nodes": int(kid_stats.nodes.sum()),
                       "root_after_s": float(warm.seconds[0])})
        conn.send({"book_hits": solver.book_hits - hits})


class _TimedWorker:
    """One worker process; a phase past the timeout kills it, and the next item starts a new one."""

    def __init__(self, args: tuple) -> None:
        self.args = args
        self.proc = None
        self.conn = None

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, os.getpid(), *self.args), daemon=True)
        self.proc.start()
        if not self.conn.poll(300) or self.conn.recv() != "ready":
            raise RuntimeError("the timing worker did not start")

    def _wait(self, timeout_s: float) -> dict | None:
        if self.conn.poll(timeout_s):
            return self.conn.recv()
        self.close(kill=True)
        return None

    def run(self, item: tuple, timeout_s: float) -> dict:
        """The sample's record; a phase that ran past `timeout_s` is censored (its time counted as `timeout_s`)."""
        if self.proc is None:
            self._start()
        ply, moves, use_book, label = item
        record = {"ply": ply, "moves": moves, "book": bool(use_book), "score": None, "seconds": timeout_s,
                  "nodes": None, "children": None, "censored": True, "book_hits": None}
        if label:  # not run when the solve phase is killed
            record.update({"children_cold_s": None, "children_nodes": None, "root_after_s": None, "label_s": None,
                           "label_censored": None})
        self.conn.send(item)
        solved = self._wait(timeout_s)
        if solved is None:
            return record
        record.update(solved, censored=False)
        if label:
            record.update(children_cold_s=timeout_s, label_s=timeout_s, label_censored=True)
            labelled = self._wait(timeout_s)
            if labelled is None:
                return record
            record.update(labelled, label_censored=False,
                          label_s=labelled["children_cold_s"] + labelled["root_after_s"])
        record.update(self._wait(timeout_s) or {})
        return record

    def close(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.conn.send(None)
        self.proc.join(timeout=30)
        self.proc = self.conn = None


def _describe(r: dict, timeout_s: float) -> str:
    text = f"ply {r['ply']:2d} {r['moves']:>12s}: "
    if r["censored"]:
        return text + f"solve >= {timeout_s:.0f} s (killed)"
    text += f"solve {r['seconds']:8.3f} s, {r['nodes']:>13,} nodes, score {r['score']:+3d}"
    if "label_s" in r:
        text += (f"; children >= {timeout_s:.0f} s (killed)" if r["label_censored"] else
                 f"; children (cold) {r['children_cold_s']:8.3f} s, label {r['label_s']:8.3f} s")
    return text + f"; book hits {r['book_hits']}"


def time_samples(items: list[tuple], jobs: int, timeout_s: float, worker_args: tuple, echo=print) -> list[dict]:
    """Time every (ply, moves, use_book, label) item with `jobs` workers, in order; results in item order."""
    results: list[dict | None] = [None] * len(items)
    upcoming = iter(range(len(items)))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def drive() -> None:
        worker = _TimedWorker(worker_args)
        try:
            while True:
                with lock:
                    i = next(upcoming, None)
                if i is None:
                    return
                results[i] = worker.run(items[i], timeout_s)
                echo(_describe(results[i], timeout_s))
        except BaseException as exc:  # noqa: BLE001 - reported in the main thread
            errors.append(exc)
        finally:
            worker.close(kill=bool(errors))

    threads = [threading.Thread(target=drive, daemon=True) for _ in range(max(1, min(jobs, len(items))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [r for r in results if r is not None]


# ------------------------------------------------------------------------------ summaries
def _stats(values: list[float], lower_bound: bool) -> dict:
    if not values:
        return {"mean": None, "sem": None, "median": None, "min": None, "max": None, "lower_bound": True}
    return {"mean": statistics.fmean(values),
            "sem": statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None,
            "median": statistics.median(values), "min": min(values), "max": max(values), "lower_bound": lower_bound}


def summarise_ply(ply: int, level_size: int, samples: list[dict], timeout_s: float) -> dict:
    """One ply's row; censored phases count as `timeout_s`, so their means are lower bounds."""
    timed = [s for s in samples if not s["censored"]]
    labelled = [s for s in samples if "label_s" in s]
    row = {
        "ply": ply, "level_positions": level_size, "sampled": len(samples), "timed": len(timed),
        "censored": len(samples) - len(timed), "timeout_s": timeout_s,
        "book": samples[0]["book"] if samples else None,
        "solve_s": _stats([s["seconds"] for s in samples], len(timed) < len(samples)),
        "solve_nodes_mean_timed": statistics.fmean(s["nodes"] for s in timed) if timed else None,
        "nodes_per_s": (sum(s["nodes"] for s in timed) / sum(s["seconds"] for s in timed)
                        if timed and sum(s["seconds"] for s in timed) > 0 else None),
        "book_hits": sum(s["book_hits"] or 0 for s in timed),
        "children_searched_mean": statistics.fmean(s["children"] for s in timed) if timed else None,
    }
    if labelled:  # lower bounds when a phase was killed, or not run because the solve was
        ran = [s for s in labelled if s["label_s"] is not None]
        incomplete = len(labelled) - sum(s["label_censored"] is False for s in labelled)
        row["label_s"] = _stats([s["label_s"] for s in ran], incomplete > 0)
        row["children_cold_s"] = _stats([s["children_cold_s"] for s in ran], incomplete > 0)
        row["label_censored_or_not_run"] = incomplete
    row["samples"] = samples
    return row


def labelling_costs(path: Path) -> dict[int, dict]:
    """Per-ply label and oracle cost from bench_labeling.py's per-ply JSON (mean seconds; timed/positions)."""
    import json

    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run scripts/bench_labeling.py --per-ply 0-41 first")
    data = json.loads(path.read_text())
    out = {}
    for row in data["rows"]:
        out[int(row["ply"])] = {"label_mean_s": row["label_s"]["mean"], "oracle_mean_s": row["oracle_s"]["mean"],
                                "timed": row["timed"], "positions": row["positions"],
                                "censored_at_least_s": (row["censored"] or {}).get("seconds_at_least")}
    return out


def book_size_bytes(levels, depth: int, scores_by_ply: dict[int, list[int]], seed: int, width: int, height: int) -> int:
    """Bytes on disk of a book of `depth`: the real keys, with scores drawn from the measured ones of each ply."""
    import tempfile

    import numpy as np

    from solver.book import OpeningBook

    rng = np.random.default_rng(seed)
    keys, scores = [], []
    for ply in range(depth + 1):
        level = levels[ply]
        pool = scores_by_ply.get(ply) or scores_by_ply.get(min(scores_by_ply, key=lambda k: abs(k - ply)), [0])
        keys.extend(p.canonical_key() for p in level)
        scores.extend(rng.choice(pool, size=len(level)).tolist())
    order = np.argsort(np.array(keys, dtype=np.uint64))
    book = OpeningBook(width, height, depth, np.array(keys, dtype=np.uint64)[order],
                       np.array(scores, dtype=np.int8)[order])
    with tempfile.TemporaryDirectory() as tmp:
        return book.save(Path(tmp) / "b.npz").stat().st_size


def existing_books(width: int, height: int) -> dict[str, Path]:
    """Shipped and cached books of this board size, by a printable name."""
    from solver.book import find_books

    return {str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else f"cache/books/{path.name}"): path
            for path in find_books(width, height)}


def check_book(path: Path, rows: dict[int, dict], width: int, height: int) -> dict:
    """A book's size and build record (``.build.json`` from make_book.py), and whether its scores agree with
    the solver's on the timed samples it holds (plies up to its depth)."""
    import json

    import numpy as np

    from games.connect4.position import Position
    from solver.book import OpeningBook

    book = OpeningBook.load(path)
    checked = [s for ply, r in rows.items() if ply <= book.depth for s in r["samples"] if s["score"] is not None]
    agree = sum(book.lookup(Position.from_moves(s["moves"], width, height)) == s["score"] for s in checked)
    shared = {}
    for other_name, other_path in existing_books(width, height).items():
        other = OpeningBook.load(other_path)
        if other_path != path and other.depth < book.depth:  # the shallower book's entries are all in this one
            common = np.isin(other.keys, book.keys)
            mine = book.scores[np.searchsorted(book.keys, other.keys[common])]
            shared[other_name] = {"shared": int(common.sum()), "agree": int((mine == other.scores[common]).sum())}
    record = path.with_suffix(".build.json")
    return {"depth": book.depth, "entries": len(book), "bytes": path.stat().st_size,
            "checked_against_solver": len(checked), "agree": agree,
            "checked_moves": [s["moves"] for s in checked], "against_shallower_books": shared,
            "build": json.loads(record.read_text()) if record.is_file() else None}


def warm_tables(level, ply: int, n: int, width: int, height: int, tt_log2: int) -> dict:
    """Cold against warm tables on the first `n` positions of a level in enumeration order (siblings, as in
    one build chunk): each solved with empty tables, then all in a row on one solver's tables."""
    from solver import Solver

    positions = level[:n]
    solver = Solver(width, height, tt_log2=tt_log2)
    solver.solve("1" * (height - 1))  # load the kernel
    _, cold = solver.solve_many(positions, reset_each=True)
    solver.reset()
    _, warm = solver.solve_many(positions)
    return {"ply": ply, "positions": len(positions), "first": positions[0].history, "last": positions[-1].history,
            "cold_s": float(cold.seconds.sum()), "warm_s": float(warm.seconds.sum()),
            "cold_nodes": int(cold.nodes.sum()), "warm_nodes": int(warm.nodes.sum()),
            "warm_over_cold_s": float(warm.seconds.sum() / cold.seconds.sum()),
            "warm_over_cold_nodes": float(warm.nodes.sum() / cold.nodes.sum()), "loadavg_end": list(os.getloadavg())}


def depth_table(counts: list[int], rows: dict[int, dict], labelling: dict[int, dict], sizes: dict[int, int],
                depths: list[int], label_max_ply: int, cores_here: int, warm: dict | None = None) -> list[dict]:
    """Build cost, size and what labelling still costs, for each candidate depth."""
    def measured(ply: int, key: str) -> dict | None:
        stats = (rows.get(ply) or {}).get(key)
        return stats if stats and stats["mean"] is not None else None

    def label_cost(ply: int, depth: int) -> dict:
        """Seconds to label one position with `ply` stones (its score and every column) with a book of `depth`."""
        if ply < depth:
            return {"seconds": 0.0, "lower_bound": False, "source": "book: the position and its children"}
        if ply == depth:
            m = measured(ply, "children_cold_s")
            return ({"seconds": m["mean"], "lower_bound": m["lower_bound"],
                     "source": "measured: the children, tables empty (the position is a book hit)"}
                    if m else {"seconds": None, "lower_bound": True, "source": "not measured"})
        m = measured(ply, "label_s")
        if m:
            return {"seconds": m["mean"], "lower_bound": m["lower_bound"],
                    "source": "measured: children (tables empty) + the position (same book or none: no hit)"}
        old = labelling.get(ply)
        if old and old["label_mean_s"] is not None:
            return {"seconds": old["label_mean_s"], "lower_bound": old["timed"] < old["positions"],
                    "source": "bench_labeling_per_ply (every concept; machine loaded)"}
        return {"seconds": None, "lower_bound": True, "source": "not measured"}

    table = []
    for d in depths:
        solve = measured(d, "solve_s")
        cpu_h = None if solve is None else counts[d] * solve["mean"] / 3600
        table.append({
            "depth": d, "deepest_positions": counts[d], "book_entries": sum(counts[:d + 1]),
            "solve_mean_s": None if solve is None else solve["mean"],
            "build_cpu_hours": cpu_h, "build_is_lower_bound": True if solve is None else solve["lower_bound"],
            "build_cpu_hours_warm_estimate": (None if cpu_h is None or not warm
                                              else cpu_h * warm["warm_over_cold_s"]),
            "build_wall_hours_here_cold": None if cpu_h is None else cpu_h / cores_here,
            "build_wall_hours_here_warm": (None if cpu_h is None or not warm
                                           else cpu_h * warm["warm_over_cold_s"] / cores_here),
            "book_bytes": sizes.get(d),
            "labelling_s_by_ply": {str(k): label_cost(k, d) for k in range(max(0, d - 1), label_max_ply + 1)},
        })
    return table


# ------------------------------------------------------------------------------ CLI
@app.command(help=HELP)
def main(
    width: int = typer.Option(7, min=4, help="board width"),
    height: int = typer.Option(6, min=4, help="board height"),
    count_max: int = typer.Option(10, min=0, help="enumerate (count) positions with 0..this many stones"),
    time_plies: str = typer.Option("2-10", help="plies whose solve time is measured in this run (\"\": none)"),
    label_plies: str = typer.Option("4-10", help="timed plies whose labelling cost is measured too (costs ~2x)"),
    depths: str = typer.Option("2-10", help="candidate book depths for the table"),
    per_ply_n: int = typer.Option(12, min=1, help="positions sampled per timed ply"),
    timeout_s: float = typer.Option(60.0, min=1.0, help="seconds before a phase is killed (censored)"),
    jobs: int = typer.Option(2, min=1, help="timing worker processes"),
    seed: int = typer.Option(0, help="sampling seed"),
    tt_log2: int = typer.Option(24, help="log2 of the solver's main table size"),
    label_max_ply: int = typer.Option(11, min=0, help="last ply of the labelling-cost columns"),
    warm_ply: int = typer.Option(-1, help="compare cold and warm tables on positions with this many stones "
                                          "(-1: keep the comparison of the --out file)"),
    warm_n: int = typer.Option(32, min=2, help="positions of the warm-table comparison"),
    labelling: Path = typer.Option(LABELLING, help="per-ply labelling costs (scripts/bench_labeling.py --per-ply)"),
    out: Path = typer.Option(RESULTS, help="JSON output; rows of plies not timed now are kept from it"),
) -> None:
    import json

    from common.atomic import atomic_write_json
    from common.cli import parse_int_ranges
    from common.outputs import check_writable
    from common.provenance import machine_info
    from games.connect4.enumerate import positions_by_ply
    from games.connect4.position import BoardSize
    from solver.book import SHIPPED_BOOK_DIR, OpeningBook, book_filename

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    size = BoardSize(width, height)
    plies = parse_int_ranges(time_plies, "--time-plies") if time_plies.strip() else []
    depth_list = parse_int_ranges(depths, "--depths")
    labelled_plies = set(parse_int_ranges(label_plies, "--label-plies")) if label_plies.strip() else set()
    if max(plies + depth_list) >= size.n_squares:
        raise ValueError(f"plies and depths must be below {size.n_squares} on a {width}x{height} board")
    if max(depth_list) > count_max:
        raise ValueError(f"--depths goes to {max(depth_list)} but --count-max is {count_max}: the table needs counts")
    labels = labelling_costs(labelling)
    if warm_ply >= 0 and warm_ply > count_max:
        raise ValueError(f"--warm-ply {warm_ply} is past --count-max {count_max}")
    check_writable(out, "--out")
    old: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    settings = (width, height, seed, tt_log2, FORMAT)
    if old and tuple(old.get(k) for k in ("width", "height", "seed", "tt_log2", "format")) != settings:
        typer.echo(f"{out} is for another board, seed, table size or format; its timing rows are not reused")
        old = {}

    start = time.perf_counter()
    machine = machine_info()
    enumerate_to = max([count_max, *plies, *(int(r["ply"]) for r in old.get("solve_rows", []))])
    t0 = time.perf_counter()
    levels = positions_by_ply(enumerate_to, width, height, canonical=True)
    counts = [len(level) for level in levels]
    count_s = time.perf_counter() - t0
    typer.echo(f"counted positions with 0..{enumerate_to} stones in {count_s:.1f} s: {counts}")

    shipped = SHIPPED_BOOK_DIR / book_filename(width, height, 2)
    book_depth = OpeningBook.load(shipped).depth if shipped.is_file() else -1
    items = []
    for ply in plies:
        rng = random.Random(seed * 1000 + ply)
        chosen = rng.sample(range(counts[ply]), min(per_ply_n, counts[ply]))
        items += [(ply, levels[ply][i].history, ply > book_depth, ply in labelled_plies) for i in chosen]
    worker_args = (width, height, tt_log2, str(shipped) if book_depth >= 0 else None)
    samples = time_samples(items, jobs, timeout_s, worker_args, echo=typer.echo)

    rows = {}
    for r in old.get("solve_rows", []):  # kept rows are summarised again from their samples, like new ones
        rows[int(r["ply"])] = {**summarise_ply(int(r["ply"]), counts[int(r["ply"])], r["samples"], r["timeout_s"]),
                               "run": r["run"]}
    run = {"date": machine["date"], "loadavg_start": list(machine["loadavg_start"]),
           "loadavg_end": list(os.getloadavg()), "jobs": jobs}
    for ply in plies:
        rows[ply] = summarise_ply(ply, counts[ply], [s for s in samples if s["ply"] == ply], timeout_s)
        rows[ply]["run"] = run
    scores_by_ply = {p: [s["score"] for s in r["samples"] if s["score"] is not None] for p, r in rows.items()}
    scores_by_ply = {p: v for p, v in scores_by_ply.items() if v} or {0: [0]}
    sizes = {d: book_size_bytes(levels, d, scores_by_ply, seed, width, height) for d in depth_list}
    actual = {name: check_book(path, rows, width, height) for name, path in existing_books(width, height).items()}
    warm = old.get("warm_tables")
    if warm_ply >= 0:
        warm = warm_tables(levels[warm_ply], warm_ply, warm_n, width, height, tt_log2)
        typer.echo(f"warm tables at ply {warm_ply}: {warm['warm_s']:.1f} s against {warm['cold_s']:.1f} s cold "
                   f"for {warm['positions']} siblings ({warm['warm_over_cold_s']:.2f})")
    table = depth_table(counts, rows, labels, sizes, depth_list, label_max_ply, os.cpu_count() or 1, warm)
    past_book = [r for p, r in rows.items() if p > book_depth and r["timed"]]
    report = {
        "format": FORMAT, "machine": machine, "width": width, "height": height, "seed": seed,
        "tt_log2": tt_log2,
        "method": "counts: canonical live positions by enumeration; each timed sample is drawn uniformly from the "
                  "enumerated level and measured by a worker process (search time of Solver.solve_many): solve_s, "
                  "the position alone with empty tables (what a book build pays per position); children_cold_s, "
                  "every child with empty tables (labelling when the position is a book hit); label_s, "
                  "children_cold_s plus the position on the tables they left (labelling with no book hit: "
                  "the score and every column); a phase past timeout_s is killed and counted at timeout_s (means "
                  "then lower bounds); the shipped book is off at plies within its depth and on past it; build "
                  "cost = level size x mean solve_s (an upper estimate for a real build, whose workers keep "
                  "their tables warm from one sibling to the next); labelling costs at plies not measured here "
                  "come from labelling_source; book bytes: the real keys saved with scores drawn from the "
                  "measured scores of each ply",
        "labelling_source": str(labelling.relative_to(ROOT) if labelling.is_relative_to(ROOT) else labelling),
        "counts": {"plies": list(range(enumerate_to + 1)), "positions": counts, "seconds": count_s},
        "book_in_search": {
            "consulted_inside_search": True,
            "where": "solver/search.py negamax: a node with moves <= BOOK_DEPTH is looked up; solve_root: the root",
            "hits_from_roots_past_the_book": sum(r["book_hits"] for r in past_book),
            "roots_past_the_book_timed": sum(r["timed"] for r in past_book),
            "shipped_book_depth": book_depth,
            "why": "a search never visits a position with fewer stones than its root, so a book of depth d answers "
                   "nothing inside the search of a position with more than d stones",
        },
        "solve_rows": [rows[p] for p in sorted(rows)],
        "warm_tables": warm,
        "existing_books": actual,
        "depths": table,
        "loadavg_end": list(os.getloadavg()),
        "seconds": time.perf_counter() - start,
    }
    atomic_write_json(report, out)

    def seconds(cost: dict | None) -> str:
        if not cost or cost["seconds"] is None:
            return "-"
        return (">=" if cost["lower_bound"] else "") + f"{cost['seconds']:.3g}"

    typer.echo("depth  positions    entries   build CPU-h  book bytes  label s at d  label s at d+1")
    for row in table:
        cpu = row["build_cpu_hours"]
        label = row["labelling_s_by_ply"]
        typer.echo(f"{row['depth']:5d}  {row['deepest_positions']:9,d}  {row['book_entries']:9,d}  "
                   f"{'-' if cpu is None else ('>=' if row['build_is_lower_bound'] else '') + f'{cpu:.3g}':>12s}  "
                   f"{row['book_bytes'] or 0:10,d}  {seconds(label.get(str(row['depth']))):>12s}  "
                   f"{seconds(label.get(str(row['depth'] + 1))):>14s}")
    typer.echo(f"wrote {out}")


if __name__ == "__main__":
    from common.cli import run_app

    run_app(app)
