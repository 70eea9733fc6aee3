"""The spend chart: stacked bars of estimated cost per day, one colour per DAG, as inline SVG.

Drawn on the server (no JavaScript, nothing to vendor); every text that comes from data is escaped.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from html import escape

from airflow_provider_kling.plugins.ui.queries import SpendDay

PALETTE = ("#7c3aed", "#0891b2", "#ea580c", "#16a34a", "#db2777", "#ca8a04", "#2563eb", "#dc2626", "#4b5563")
MAX_DAYS = 62
WIDTH, HEIGHT = 860, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 14, 40


def colours(dag_ids: list[str]) -> dict[str, str]:
    return {dag_id: PALETTE[i % len(PALETTE)] for i, dag_id in enumerate(dag_ids)}


def money(value: Decimal) -> str:
    """Dollars to the tenth of a cent (Kling prices per second are such), never rounded away:
    a total must equal the sum of the amounts shown beside it ($2.025, not $2.02)."""
    shown = f"${value:,.3f}"
    return shown[:-1] if shown.endswith("0") else shown


def _nice_max(value: Decimal) -> Decimal:
    if value <= 0:
        return Decimal(1)
    magnitude = Decimal(10) ** (len(str(int(value))) - 1) if value >= 1 else Decimal("0.1")
    while magnitude > value * 10:
        magnitude /= 10
    for step in (1, 2, 2.5, 5, 10):
        top = magnitude * Decimal(str(step))
        if top >= value:
            return top
    return value


def spend_svg(days: list[SpendDay], palette: dict[str, str]) -> str:
    """An SVG document fragment; an empty-state picture when nothing was spent."""
    if not days:
        return (
            f'<svg class="spend" role="img" aria-label="No estimated spend" viewBox="0 0 {WIDTH} 60" '
            f'width="{WIDTH}" height="60"><text x="{WIDTH // 2}" y="34" text-anchor="middle" '
            'fill="#6b7280">No estimated spend in this selection</text></svg>'
        )
    last = days[-1].day
    first = max(days[0].day, last - timedelta(days=MAX_DAYS - 1))
    span = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    by_day: dict[date, SpendDay] = {d.day: d for d in days}
    totals = {d: sum(by_day[d].by_dag.values(), Decimal(0)) if d in by_day else Decimal(0) for d in span}
    top = _nice_max(max(totals.values()))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(span)
    bar_w = max(2.0, min(40.0, slot * 0.7))
    parts = [
        f'<svg class="spend" role="img" aria-label="Estimated cost per day and DAG" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" font-size="11" '
        'font-family="system-ui, sans-serif">'
    ]
    for i in range(5):  # gridlines and y labels
        value = top * i / 4
        y = TOP + plot_h - float(value / top) * plot_h
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#6b7280">{money(value)}</text>'
        )
    label_every = max(1, len(span) // 10)
    for index, day in enumerate(span):
        x = LEFT + slot * index + (slot - bar_w) / 2
        y = TOP + plot_h
        entry = by_day.get(day)
        for dag_id, cost in sorted(entry.by_dag.items()) if entry else ():
            h = float(cost / top) * plot_h
            y -= h
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{palette.get(dag_id, PALETTE[-1])}"><title>{escape(dag_id)} {day.isoformat()}: '
                f"{money(cost)}</title></rect>"
            )
        if index % label_every == 0 or index == len(span) - 1:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                f'fill="#374151">{day.strftime("%b %d")}</text>'
            )
    parts.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="#9ca3af"/>'
    )
    parts.append("</svg>")
    return "".join(parts)
