"""Reports: one Markdown file and one self-contained HTML file (plots inline) per comparison.

Input is what :func:`slimforge.measure.measure_variants` returns (plus optional training
histories and per-layer widths); output is a table of every variant (accuracy, change in
accuracy, latency, speed-up, MACs, parameters, size) and plots: accuracy against latency with
the Pareto front marked, layer widths before and after pruning, and training curves.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from slimforge.artifacts import atomic_write_bytes
from slimforge.files import staged_output


def build_rows(measurement: Mapping[str, Any], baseline: str | None = None, batch_size: int | None = None) -> list[dict[str, Any]]:
    """Table rows with deltas against ``baseline`` (default: the first variant).

    ``quality`` is each variant's value of the measurement's ``metric`` (``accuracy`` unless it names
    another, a recommender's ``ndcg@10``); ``delta_points`` its change against the baseline, in points
    for accuracy and in percent of the baseline's value for any other metric. Rows of an accuracy
    measurement also keep it under ``accuracy``."""
    variants = list(measurement["variants"])
    if not variants:
        return []
    metric = measurement.get("metric", "accuracy")
    bs = str(batch_size or measurement["batch_sizes"][-1])
    base = next((v for v in variants if v["name"] == baseline), variants[0])
    base_ms = base["latency"][bs]["p50_ms"]
    rows = []
    for v in variants:
        ms = v["latency"][bs]["p50_ms"]
        acc, ref = v.get(metric), base.get(metric)
        rows.append({
            "variant": v["name"],
            "kind": v.get("kind", ""),
            "metric": metric,
            "quality": acc,
            **({"accuracy": acc} if metric == "accuracy" else {}),
            "delta_points": None if acc is None or ref is None else _change(metric, acc, ref),
            "latency_ms": ms,
            "p90_ms": v["latency"][bs]["p90_ms"],
            "throughput": v["latency"][bs]["throughput"],
            "speedup": base_ms / ms,
            "macs": v.get("macs"),
            "params": v.get("params"),
            "size_bytes": v.get("size_bytes"),
            "batch_size": int(bs),
            **_reference_speedups(measurement.get("reference"), bs, ms),
        })
    return rows


def _change(metric: str, value: float, baseline: float) -> float | None:
    if metric == "accuracy":
        return 100.0 * (value - baseline)
    return 100.0 * (value / baseline - 1.0) if baseline else None


def _reference_speedups(reference: Mapping[str, Any] | None, bs: str, ms: float) -> dict[str, Any]:
    """Speed-ups against the original model in eager and in its fastest fp32 form (see slimforge.deploy_forms)."""
    if not reference or not reference.get("forms"):
        return {}
    forms = reference["forms"]
    best = reference["best_fp32_form"][bs]
    out = {"best_fp32_form": best, "speedup_vs_best_fp32": forms[best][bs]["p50_ms"] / ms}
    if "eager" in forms:
        out["speedup_vs_eager"] = forms["eager"][bs]["p50_ms"] / ms
    return out


def reference_notes(measurement: Mapping[str, Any], batch_size: int | None = None) -> list[str]:
    """One line per reference fp32 form of the original model: its latency, or why it was not timed."""
    reference = measurement.get("reference")
    if not reference:
        return []
    bs = str(batch_size or measurement["batch_sizes"][-1])
    best = reference["best_fp32_form"].get(bs)
    lines = [f"original model as {form}: p50 {lat[bs]['p50_ms']:.3f} ms{' (fastest fp32 form)' if form == best else ''}"
             for form, lat in reference["forms"].items()]
    lines += [f"original model as {form}: not timed ({why})" for form, why in reference.get("unavailable", {}).items()]
    return lines


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated in (lower latency, higher accuracy)."""
    front = []
    for i, (lat, acc) in enumerate(points):
        dominated = any(
            (l2 <= lat and a2 >= acc) and (l2 < lat or a2 > acc) for j, (l2, a2) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def layer_widths(model: nn.Module) -> dict[str, int]:
    """Output width of every conv / linear layer (channels, neurons), in model order."""
    widths = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d | nn.Conv1d):
            widths[name] = m.out_channels
        elif isinstance(m, nn.Linear):
            widths[name] = m.out_features
    return widths


def write_report(
    out: str | Path,
    measurement: Mapping[str, Any],
    *,
    title: str = "slimforge report",
    baseline: str | None = None,
    histories: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    widths: Mapping[str, Mapping[str, int]] | None = None,
    notes: Sequence[str] = (),
    headline: str | None = None,
    highlight: str | None = None,
    split: str = "test",
    extra: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``measurements.json`` into folder ``out``
    (replaced whole, in one step).

    headline: the result in one sentence, shown first; highlight: the variant whose row stands
    out (the chosen model); split: the split the accuracy column was measured on (its header says
    so); extra: more columns per variant, {variant: {header: text}} (e.g. validation accuracy, a verdict)."""
    out = Path(out)
    rows = build_rows(measurement, baseline)  # at the largest batch size: the plot's
    sizes = list(measurement.get("batch_sizes") or [])
    table = [r for bs in sizes for r in build_rows(measurement, baseline, bs)] if len(sizes) > 1 else rows  # every batch size asked
    notes = [*notes, *reference_notes(measurement)]
    metric = measurement.get("metric", "accuracy")
    page = _Page(title, split, headline, highlight, dict(extra or {}), metric)
    figures = {f"{metric[0].upper()}{metric[1:]} against latency": _pareto_png(rows)}
    if widths:
        figures["Layer widths before and after pruning"] = _widths_png(widths)
    if histories:
        figures["Training curves"] = _curves_png(histories, metric)
    figures = {k: v for k, v in figures.items() if v is not None}
    machine = measurement.get("machine") or {}
    context = (f"threads {measurement.get('threads')}, batch size {', '.join(map(str, sizes)) or '-'}, torch {measurement.get('torch', '')}"
               + (f", {machine.get('cpu')} ({machine.get('isa')}, {machine.get('cores')} cores)" if machine else ""))
    names = {"markdown": "report.md", "html": "report.html", "json": "measurements.json"}
    with staged_output(out) as work:
        atomic_write_bytes(work / names["json"], json.dumps({"measurement": measurement, "rows": table}, indent=2, default=str).encode())
        atomic_write_bytes(work / names["markdown"], _markdown(page, table, context, notes, figures, work).encode())
        atomic_write_bytes(work / names["html"], _html(page, table, context, notes, figures).encode())
    return {key: out / name for key, name in names.items()}


# ---------------------------------------------------------------- rendering

COLUMNS = [
    ("variant", "variant", str),
    ("batch_size", "batch", str),
    ("quality", "accuracy", lambda v: f"{100 * v:.2f}%"),
    ("delta_points", "Δ accuracy (pts)", lambda v: f"{v:+.2f}"),
    ("latency_ms", "latency p50 (ms)", lambda v: f"{v:.3f}"),
    ("p90_ms", "p90 (ms)", lambda v: f"{v:.3f}"),
    ("speedup", "speed-up", lambda v: f"{v:.2f}x"),
    ("speedup_vs_eager", "vs eager", lambda v: f"{v:.2f}x"),
    ("speedup_vs_best_fp32", "vs best fp32", lambda v: f"{v:.2f}x"),
    ("best_fp32_form", "best fp32 form", str),
    ("throughput", "samples/s", lambda v: f"{v:,.0f}"),
    ("macs", "MACs", lambda v: f"{v / 1e6:.2f} M"),
    ("params", "params", lambda v: f"{v / 1e3:.1f} k"),
    ("size_bytes", "size", lambda v: f"{v / 1024:.0f} KiB"),
]


REFERENCE_KEYS = ("speedup_vs_eager", "speedup_vs_best_fp32", "best_fp32_form")


# A metric other than accuracy (a recommender's NDCG@10) is shown as it is, its change in percent of the baseline's.
_OTHER_METRIC = {"quality": lambda v: f"{v:.4f}", "delta_points": lambda v: f"{v:+.2f}%"}


def _metric(rows: Sequence[Mapping[str, Any]]) -> str:
    return rows[0].get("metric", "accuracy") if rows else "accuracy"


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[tuple]:
    """COLUMNS, less the reference-deployment ones when nothing was measured against reference forms."""
    has_reference = any(r.get("best_fp32_form") is not None for r in rows)
    several_batches = len({r.get("batch_size") for r in rows}) > 1
    columns = [c for c in COLUMNS if (has_reference or c[0] not in REFERENCE_KEYS) and (several_batches or c[0] != "batch_size")]
    if _metric(rows) != "accuracy":
        columns = [(key, header, _OTHER_METRIC.get(key, fmt)) for key, header, fmt in columns]
    return columns


def _cells(row: Mapping[str, Any], columns: Sequence[tuple]) -> list[str]:
    return ["-" if row.get(key) is None else fmt(row[key]) for key, _, fmt in columns]


@dataclass(frozen=True)
class _Page:
    """What a report says around its measurements: title, the accuracy's split, headline, chosen row, extra columns."""

    title: str
    split: str = "test"
    headline: str | None = None
    highlight: str | None = None
    extra: dict[str, Mapping[str, str]] = field(default_factory=dict)
    metric: str = "accuracy"

    def headers(self, columns: Sequence[tuple]) -> list[str]:
        if self.metric == "accuracy":
            named = {"quality": f"{self.split} accuracy", "delta_points": f"Δ {self.split} (pts)"}
        else:
            named = {"quality": f"{self.split} {self.metric}", "delta_points": f"Δ {self.split} {self.metric} (%)"}
        return _after_accuracy(columns, [named.get(key, header) for key, header, _ in columns], self.extra_headers())

    def extra_headers(self) -> list[str]:
        return list(dict.fromkeys(h for cells in self.extra.values() for h in cells))

    def cells(self, row: Mapping[str, Any], columns: Sequence[tuple]) -> list[str]:
        mine = self.extra.get(row.get("variant"), {})
        return _after_accuracy(columns, _cells(row, columns), [mine.get(h, "-") for h in self.extra_headers()])


def _after_accuracy(columns: Sequence[tuple], cells: list[str], extra: list[str]) -> list[str]:
    """The extra columns (validation accuracy, verdict) right after the accuracy ones, where the eye compares them."""
    keys = [key for key, _, _ in columns]
    at = keys.index("delta_points") + 1 if "delta_points" in keys else len(cells)
    return cells[:at] + extra + cells[at:]


def _markdown(page: _Page, rows, context, notes, figures, out: Path) -> str:
    lines = [f"# {page.title}", ""]
    if page.headline:
        lines += [f"**{page.headline}**", ""]
    lines += [f"Measured interleaved in one process; {context}.", ""]
    columns = _columns(rows)
    lines.append("| " + " | ".join(page.headers(columns)) + " |")
    lines.append("|" + "---|" * len(page.headers(columns)))
    for r in rows:
        cells = page.cells(r, columns)
        if r.get("variant") == page.highlight:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [f"- {n}" for n in notes]
    for i, (caption, png) in enumerate(figures.items()):
        name = f"figure{i + 1}.png"
        atomic_write_bytes(out / name, png)
        lines += ["", f"![{caption}]({name})"]
    return "\n".join(lines) + "\n"


def _html(page: _Page, rows, context, notes, figures) -> str:
    title = page.title
    columns = _columns(rows)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in page.headers(columns))
    body = "".join(
        ('<tr class="best">' if r.get("variant") == page.highlight else "<tr>")
        + "".join(f"<td>{html.escape(c)}</td>" for c in page.cells(r, columns)) + "</tr>"
        for r in rows
    )
    headline = f'<p class="headline" id="headline">{html.escape(page.headline)}</p>' if page.headline else ""
    imgs = "".join(
        f'<figure><img alt="{html.escape(c)}" src="data:image/png;base64,{base64.b64encode(p).decode()}"><figcaption>{html.escape(c)}</figcaption></figure>'
        for c, p in figures.items()
    )
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:sans-serif;margin:1.5em auto;padding:0 1em;max-width:1280px;box-sizing:border-box}}
.headline{{background:#eef7ee;border-left:5px solid #2a7a3a;padding:.6em 1em;font-size:1.1em}}
.table-wrap{{overflow-x:auto;max-width:100%}}table{{border-collapse:collapse;font-size:14px}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}}td:first-child,th:first-child{{text-align:left}}
tr.best td{{background:#fff3c4;font-weight:bold}}
figure{{display:inline-block;vertical-align:top;margin:1em 1em 0 0;max-width:100%}}img{{max-width:100%;height:auto}}</style></head>
<body><h1>{html.escape(title)}</h1>{headline}<p>Measured interleaved in one process; {html.escape(context)}.</p>
<div class="table-wrap"><table id="variants"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>
<ul>{notes_html}</ul>{imgs}</body></html>
"""


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _figure().close(fig)
    return buf.getvalue()


def _pareto_png(rows: Sequence[Mapping[str, Any]]) -> bytes | None:
    metric = _metric(rows)
    scale = 100 if metric == "accuracy" else 1
    pts = [(r["latency_ms"], scale * r["quality"]) for r in rows if r.get("quality") is not None]
    if not pts:
        return None
    named = [r for r in rows if r.get("quality") is not None]
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], color="tab:blue")
    # Labels staggered in latency order, so neighbouring points' names do not print over each other.
    order = sorted(range(len(pts)), key=lambda i: (pts[i][0], pts[i][1]))
    for rank, i in enumerate(order):
        ax.annotate(named[i]["variant"], pts[i], textcoords="offset points", xytext=(5, (4, -11, 15, -22)[rank % 4]), fontsize=7)
    front = pareto_front(pts)
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], color="tab:red", marker="o", label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel(f"latency p50 (ms, batch {rows[0]['batch_size']})")
    ax.set_ylabel("accuracy (%)" if metric == "accuracy" else metric)
    ax.legend()
    ax.grid(alpha=0.3)
    return _png(fig)


def _widths_png(widths: Mapping[str, Mapping[str, int]]) -> bytes:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(8, 4))
    for label, w in widths.items():
        ax.plot(range(len(w)), list(w.values()), marker=".", label=label)
    ax.set_xlabel("layer (model order)")
    ax.set_ylabel("output channels / neurons")
    ax.legend()
    ax.grid(alpha=0.3)
    return _png(fig)


def _curves_png(histories: Mapping[str, Sequence[Mapping[str, Any]]], metric: str = "accuracy") -> bytes:
    key, scale = f"val_{metric}", 100 if metric == "accuracy" else 1
    plt = _figure()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    for label, h in histories.items():
        epochs = [m["epoch"] for m in h]
        ax1.plot(epochs, [m["train_loss"] for m in h], label=f"{label} train")
        ax1.plot(epochs, [m["val_loss"] if m.get("val_loss") is not None else float("nan") for m in h], linestyle="--", label=f"{label} val")
        ax2.plot(epochs, [scale * m[key] if m.get(key) is not None else float("nan") for m in h], label=label)
    ax1.set_xlabel("epoch"), ax1.set_ylabel("loss"), ax1.legend(fontsize=7)
    ax2.set_xlabel("epoch"), ax2.set_ylabel("validation accuracy (%)" if metric == "accuracy" else f"validation {metric}"), ax2.legend(fontsize=7)
    return _png(fig)


def read_history(run: str | Path) -> list[dict[str, Any]]:
    """A run folder's metrics.jsonl as a list of per-epoch dicts ([] when absent)."""
    path = Path(run) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
