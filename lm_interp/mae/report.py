"""Reports of a neuron's MAEs: JSON (the data), Markdown (the table) and HTML (per-token activation colouring).

The table follows the original MAE write-up: prompt, type (Original / MAE / Positive /
Negative) and the pivot activation. The Markdown and HTML are generated from the JSON
dictionary only; every token text in the HTML is escaped.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.atomic import atomic_write_text
from lm_interp.mae.pipeline import NeuronExplanation


@dataclass
class Decoder:
    """Token ids -> display strings: ``piece(id)`` per token; words joined with spaces for word-level vocabularies."""

    piece: Callable[[int], str]
    word_level: bool = False

    @classmethod
    def from_tokenizer(cls, tokenizer, word_level: bool) -> Decoder:
        return cls(lambda t: tokenizer.decode([int(t)]), word_level)

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return [(" " if self.word_level and i else "") + self.piece(t) for i, t in enumerate(ids)]

    def text(self, ids: Sequence[int]) -> str:
        return "".join(self.pieces(ids))


def _row(kind: str, ids: Sequence[int], acts: np.ndarray, dec: Decoder, **extra) -> dict:
    acts = np.asarray(acts, dtype=float)
    return {"type": kind, "prompt": dec.text(ids), "activation": round(float(acts[-1]), 4),
            "tokens": dec.pieces(ids), "token_ids": [int(t) for t in ids],
            "activations": [round(float(a), 4) for a in acts], **extra}


def explanation_to_dict(exp: NeuronExplanation, dec: Decoder, meta: dict | None = None) -> dict:
    """JSON-ready dictionary: per example the original window, its MAE, saliency and variants; fidelity."""
    examples = []
    for m in exp.maes:
        ex, pr = m.example, m.pruned
        rows = [_row("Original", ex.tokens[:ex.pivot + 1], ex.activations[:ex.pivot + 1], dec,
                     window=dec.text(ex.tokens), window_tokens=dec.pieces(ex.tokens), window_activations=[round(float(a), 4) for a in ex.activations]),
                _row("MAE", pr.tokens, pr.activations, dec, importance=[round(float(v), 4) for v in m.importance])]
        rows += [_row(v.label, v.tokens, v.activations, dec, position=v.position, original=dec.piece(v.original),
                      substitute=dec.piece(v.substitute), backend=v.backend) for v in m.variants]
        examples.append({
            "source_window": ex.source, "pivot": ex.pivot, "pivot_token": dec.piece(ex.tokens[ex.pivot]),
            "original_activation": round(pr.original_activation, 4), "mae_activation": round(pr.activation, 4),
            "original_length": ex.pivot + 1, "window_length": len(ex.tokens), "mae_length": len(pr.tokens),
            "n_positive": sum(v.label == "Positive" for v in m.variants),
            "n_negative": sum(v.label == "Negative" for v in m.variants), "rows": rows})
    summary = {
        "neuron_max": round(exp.neuron_max, 4), "n_examples": len(exp.maes),
        "mean_original_length": float(np.mean([e["original_length"] for e in examples])) if examples else 0.0,
        "mean_mae_length": float(np.mean([e["mae_length"] for e in examples])) if examples else 0.0,
        "n_positive": sum(e["n_positive"] for e in examples), "n_negative": sum(e["n_negative"] for e in examples)}
    return {**(meta or {}), "summary": summary, "fidelity": exp.fidelity, "examples": examples}


def to_markdown(report: dict) -> str:
    """The prompt / type / activation table per example, and the fidelity table."""
    title = f"Neuron {report.get('hook', '?')}[{report.get('neuron', '?')}]"
    s = report["summary"]
    lines = [f"# {title}", ""]
    if report.get("description"):
        lines += [f"Model: {report['description']}", ""]
    lines += [f"Max activation {s['neuron_max']}; {s['n_examples']} examples; mean length up to the pivot "
              f"{s['mean_original_length']:.1f} -> MAE {s['mean_mae_length']:.1f} tokens; "
              f"{s['n_positive']} positive / {s['n_negative']} negative variants.", "",
              "## Fidelity on held-out text (firing = at least half the max activation)", "",
              "| predictor | precision | recall | F1 | firing tokens | tokens |", "|---|---|---|---|---|---|"]
    for name, f in report["fidelity"].items():
        lines.append(f"| {name} | {f['precision']:.3f} | {f['recall']:.3f} | {f['f1']:.3f} | {f['n_firing']} | "
                     f"{f['n_tokens']} |")
    lines.append("")
    for i, e in enumerate(report["examples"]):
        lines += [f"## Example {i + 1}: pivot {e['pivot_token']!r}, {e['original_length']} -> {e['mae_length']} tokens",
                  "", "| prompt | type | activation |", "|---|---|---|"]
        for r in e["rows"]:
            prompt = r["prompt"].replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{prompt}` | {r['type']} | {r['activation']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def _tokens_html(tokens: Sequence[str], acts: Sequence[float], scale: float, mark: int | None = None) -> str:
    spans = []
    for i, (tok, a) in enumerate(zip(tokens, acts)):
        alpha = min(max(a / scale, 0.0), 1.0) if scale > 0 else 0.0
        style = f"background: rgba(230, 60, 30, {alpha:.2f});"
        if i == mark:
            style += " outline: 1px solid #333;"
        spans.append(f'<span class="tok" style="{style}" title="{a:.3f}">{html.escape(tok)}</span>')
    return "".join(spans)


def to_html(report: dict) -> str:
    """A standalone page: every row's tokens coloured by activation (relative to the neuron max)."""
    scale = report["summary"]["neuron_max"]
    title = html.escape(f"Neuron {report.get('hook', '?')}[{report.get('neuron', '?')}]")
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>",
           "<style>body{font-family:sans-serif;margin:2em} table{border-collapse:collapse} "
           "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left} .tok{white-space:pre;font-family:monospace} "
           ".Positive{color:#185} .Negative{color:#a22}</style></head><body>", f"<h1>{title}</h1>"]
    if report.get("description"):
        out.append(f"<p>{html.escape(str(report['description']))}</p>")
    out.append("<h2>Fidelity on held-out text</h2><table><tr><th>predictor</th><th>precision</th><th>recall</th>"
               "<th>F1</th></tr>")
    for name, f in report["fidelity"].items():
        out.append(f"<tr><td>{html.escape(name)}</td><td>{f['precision']:.3f}</td><td>{f['recall']:.3f}</td>"
                   f"<td>{f['f1']:.3f}</td></tr>")
    out.append("</table>")
    for i, e in enumerate(report["examples"]):
        out.append(f"<h2>Example {i + 1}: {e['original_length']} &rarr; {e['mae_length']} tokens</h2>")
        first = e["rows"][0]
        out.append("<p>Window: " + _tokens_html(first["window_tokens"], first["window_activations"], scale,
                                                e["pivot"]) + "</p>")
        out.append("<table><tr><th>prompt</th><th>type</th><th>activation</th></tr>")
        for r in e["rows"]:
            mark = r.get("position")
            out.append(f"<tr><td>{_tokens_html(r['tokens'], r['activations'], scale, mark)}</td>"
                       f"<td class='{html.escape(r['type'])}'>{html.escape(r['type'])}</td>"
                       f"<td>{r['activation']:.3f}</td></tr>")
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)


def write_neuron_report(report: dict, out_dir: str | Path, stem: str) -> list[Path]:
    """Write ``stem.json``, ``stem.md`` and ``stem.html`` into `out_dir` atomically; returns the paths."""
    out_dir = Path(out_dir)
    paths = [out_dir / f"{stem}.json", out_dir / f"{stem}.md", out_dir / f"{stem}.html"]
    atomic_write_text(json.dumps(report, indent=1), paths[0])
    atomic_write_text(to_markdown(report), paths[1])
    atomic_write_text(to_html(report), paths[2])
    return paths
