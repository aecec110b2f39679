"""A job's task attempts drawn as bars, one lane per node, over time (an HTML page)."""

from __future__ import annotations

import html

from kubemr.cluster import TaskAttempt

COLORS = {"map": "#4c78a8", "reduce": "#f58518", "failed": "#e45756"}


def render_html(job_name: str, attempts: list[TaskAttempt], now: float) -> str:
    timed = [a for a in attempts if a.started is not None]
    if not timed:
        return f"<html><body><p>{html.escape(job_name)}: no task has started yet</p></body></html>"
    t0 = min(a.started for a in timed)
    t1 = max((a.finished or now) for a in timed)
    span = max(t1 - t0, 1e-3)
    nodes = sorted({a.node or "(unscheduled)" for a in timed})
    width, lane, label_width, bar = 1000, 34, 160, 12
    rows = []
    for row, node in enumerate(nodes):
        y = 30 + row * lane
        rows.append(f'<text x="4" y="{y + 16}" class="node">{html.escape(node)}</text>')
        mine = [a for a in timed if (a.node or "(unscheduled)") == node]
        for slot, a in enumerate(mine):
            x = label_width + (a.started - t0) / span * (width - label_width - 10)
            w = max(2.0, ((a.finished or now) - a.started) / span * (width - label_width - 10))
            failed = a.phase == "Failed"
            color = COLORS["failed"] if failed else COLORS[a.task_type]
            yy = y + 2 + (slot % 2) * (bar + 2)
            seconds = (a.finished or now) - a.started
            title = (f"{a.name} attempt {a.attempt} on {node}: {a.phase}, {seconds:.1f}s"
                     + (f"\n{a.error.strip().splitlines()[-1]}" if failed and a.error else ""))
            dashed = ' stroke="black" stroke-dasharray="3,2"' if failed else ""
            mark = ("#" + str(a.attempt) if a.attempt > 1 else "") + (" ✗" if failed else "")
            rows.append(
                f'<rect x="{x:.1f}" y="{yy}" width="{w:.1f}" height="{bar}" fill="{color}"'
                f'{dashed}>'
                f"<title>{html.escape(title)}</title></rect>"
                f'<text x="{x + 2:.1f}" y="{yy + 10}" class="bar">{a.name}{mark}</text>')
    height = 50 + len(nodes) * lane
    axis = "".join(
        f'<text x="{label_width + i / 5 * (width - label_width - 10):.0f}" y="{height - 6}" '
        f'class="axis">{span * i / 5:.1f}s</text>' for i in range(6))
    legend = " ".join(f'<span style="color:{c}">■ {k}</span>' for k, c in COLORS.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>kubemr timeline: {html.escape(job_name)}</title>
<style>body{{font-family:sans-serif}} .node{{font-size:12px}} .bar{{font-size:9px;fill:white}}
.axis{{font-size:10px;fill:#555}}</style></head>
<body><h3>{html.escape(job_name)}: {len(timed)} task attempts on {len(nodes)} nodes,
{span:.1f}s</h3><p>{legend} (failed attempts dashed; hover for details)</p>
<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">{"".join(rows)}{axis}
</svg></body></html>
"""
