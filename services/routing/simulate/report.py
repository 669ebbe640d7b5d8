"""The HTML report: one self-contained page, charts as inline SVG drawn here (no script, no CDN).

Per policy, side by side: the figures, each reseller's leads received against
its entitlement (on the diagonal: exactly its weighted share), the changes per
week (first assignments, reassignments, expiries) and the hops histogram. A
page that opens offline, in a mail client or in an artefact store, years later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

from services.routing.simulate.metrics import DEVIATION_FLOOR, Summary
from services.routing.simulate.table import figure_rows

WIDTH, HEIGHT, PAD = 420, 260, 40
#: Series of the weekly chart: change kind -> colour.
WEEKLY = {"assigned": "#1f77b4", "reassigned": "#ff7f0e", "expired": "#d62728",
          "queued": "#7f7f7f"}
_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
.row{display:flex;flex-wrap:wrap;gap:20px}.col{flex:0 0 auto}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px}
td.v{text-align:right}svg.chart{background:#fafafa;border:1px solid #ddd}
.legend span{display:inline-block;margin-right:12px;font-size:12px}
"""


def _ticks(top: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to about ``top``."""
    if top <= 0:
        return [0.0]
    step = 10 ** math.floor(math.log10(top / count))
    for factor in (1, 2, 5, 10):
        if top / (step * factor) <= count:
            step *= factor
            break
    return [step * i for i in range(int(top / step) + 1)]


def _frame(chart_id: str, title: str, x_top: float, y_top: float, body: list[str], *,
           x_label: str, y_label: str, x_ticks: bool = True) -> str:
    """An SVG chart: axes with ticks from 0 to the tops, then ``body`` (chart coordinates
    from ``x``/``y`` below)."""
    parts = [f'<svg class="chart" id="{chart_id}" xmlns="http://www.w3.org/2000/svg" '
             f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'role="img"><title>{escape(title)}</title>',
             f'<text x="{WIDTH / 2}" y="14" text-anchor="middle" font-size="12">'
             f'{escape(title)}</text>',
             f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - 10}" y2="{HEIGHT - PAD}" '
             'stroke="#333"/>',
             f'<line x1="{PAD}" y1="20" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#333"/>']
    for tick in _ticks(x_top) if x_ticks else ():
        px = _x(tick, x_top)
        parts.append(f'<text x="{px:.1f}" y="{HEIGHT - PAD + 14}" font-size="10" '
                     f'text-anchor="middle">{tick:g}</text>')
    for tick in _ticks(y_top):
        py = _y(tick, y_top)
        parts.append(f'<text x="{PAD - 4}" y="{py + 3:.1f}" font-size="10" '
                     f'text-anchor="end">{tick:g}</text>'
                     f'<line x1="{PAD}" y1="{py:.1f}" x2="{WIDTH - 10}" y2="{py:.1f}" '
                     'stroke="#e5e5e5"/>')
    parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT - 6}" font-size="11" '
                 f'text-anchor="middle">{escape(x_label)}</text>'
                 f'<text x="12" y="{HEIGHT / 2}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 12 {HEIGHT / 2})">{escape(y_label)}</text>')
    return "".join(parts + body + ["</svg>"])


def _x(value: float, top: float) -> float:
    return PAD + (WIDTH - PAD - 10) * (value / top if top else 0)


def _y(value: float, top: float) -> float:
    return HEIGHT - PAD - (HEIGHT - PAD - 20) * (value / top if top else 0)


def share_chart(summary: Summary, chart_id: str) -> str:
    """Each reseller's received leads against its entitlement, and the diagonal."""
    top = max([1.0] + [max(s.entitlement, s.received) for s in summary.shares]) * 1.05
    body = [f'<line x1="{_x(0, top):.1f}" y1="{_y(0, top):.1f}" x2="{_x(top, top):.1f}" '
            f'y2="{_y(top, top):.1f}" stroke="#2ca02c" stroke-dasharray="4 3"/>']
    body.extend(f'<circle cx="{_x(s.entitlement, top):.1f}" cy="{_y(s.received, top):.1f}" '
                f'r="2.5" fill="#1f77b4" fill-opacity="0.6"><title>{escape(s.reseller_id)}: '
                f'{s.received} received, {s.entitlement:.1f} entitled (weight {s.weight})'
                '</title></circle>' for s in summary.shares)
    return _frame(chart_id, f"{summary.policy}: received vs entitlement", top, top, body,
                  x_label="entitlement (leads)", y_label="received (leads)")


def weekly_chart(summary: Summary, chart_id: str) -> str:
    """Changes per week, one line per kind."""
    series: Mapping[str, Mapping[int, int]] = {k: summary.weekly.get(k, {}) for k in WEEKLY}
    last = max([1] + [max(weeks, default=0) for weeks in series.values()])
    top = max([1] + [max(weeks.values(), default=0) for weeks in series.values()]) * 1.1
    body = []
    for kind, colour in WEEKLY.items():
        points = " ".join(f"{_x(w, last):.1f},{_y(series[kind].get(w, 0), top):.1f}"
                          for w in range(last + 1))
        body.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                    f'stroke-width="1.5"><title>{kind}</title></polyline>')
    return _frame(chart_id, f"{summary.policy}: changes per week", last, top, body,
                  x_label="week of the year", y_label="changes")


def hops_chart(summary: Summary, chart_id: str) -> str:
    """How many leads had 0, 1, 2... assignments."""
    hist = summary.hops_histogram
    last = max(hist, default=0) + 1
    top = max([1, *hist.values()]) * 1.1
    band = (WIDTH - PAD - 10) / last
    body = [f'<rect x="{_x(h, last) + band * 0.15:.1f}" y="{_y(n, top):.1f}" '
            f'width="{band * 0.7:.1f}" height="{_y(0, top) - _y(n, top):.1f}" fill="#9467bd">'
            f'<title>{h} hops: {n} leads</title></rect>'
            f'<text x="{_x(h, last) + band / 2:.1f}" y="{HEIGHT - PAD + 14}" font-size="10" '
            f'text-anchor="middle">{h}</text>' for h, n in sorted(hist.items())]
    return _frame(chart_id, f"{summary.policy}: hops per lead", last, top, body,
                  x_label="assignments of a lead", y_label="leads", x_ticks=False)


def _figures_table(summaries: Sequence[Summary]) -> str:
    head = "".join(f"<th>{escape(s.policy)}</th>" for s in summaries)
    columns = [figure_rows(s) for s in summaries]
    rows = []
    for index, (label, _) in enumerate(columns[0]):
        cells = "".join(f'<td class="v">{escape(c[index][1])}</td>' for c in columns)
        rows.append(f"<tr><th>{escape(label)}</th>{cells}</tr>")
    return f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def render(summaries: Sequence[Summary], *, source: str) -> str:
    """The whole page."""
    legend = "".join(f'<span style="color:{c}">&#9632; {k}</span>' for k, c in WEEKLY.items())
    sections = []
    for title, draw, note in (
            ("Received against entitlement", share_chart,
             "One dot per reseller; on the dashed diagonal it received exactly its weighted "
             f"share. Deviations are judged from an entitlement of {DEVIATION_FLOOR:.0f}."),
            ("Changes per week", weekly_chart, f'<span class="legend">{legend}</span>'),
            ("Hops per lead", hops_chart, "Assignments each lead had (0: queued at once).")):
        charts = "".join(f'<div class="col">{draw(s, f"{draw.__name__}-{i}")}</div>'
                         for i, s in enumerate(summaries))
        sections.append(f"<h2>{title}</h2><p>{note}</p><div class=\"row\">{charts}</div>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Routing simulation</title><style>{_CSS}</style></head><body>"
            f"<h1>Routing simulation</h1><p>Inputs: {escape(source)}</p>"
            f"{_figures_table(summaries)}{''.join(sections)}</body></html>\n")


def write(path: Path, summaries: Sequence[Summary], *, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(summaries, source=source), encoding="utf-8")
    return path
