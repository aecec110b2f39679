"""A job's task attempts drawn as bars, one lane per node, over time (SVG, or an HTML page)."""

from __future__ import annotations

import html

from kubemr.client.cluster import TaskAttempt

COLORS = {"map": "#4c78a8", "combine": "#72b7b2", "reduce": "#f58518", "failed": "#e45756"}


STYLE = (".node{font:12px sans-serif} .bar{font:9px sans-serif;fill:white} "
         ".axis{font:10px sans-serif;fill:#555} .head{font:14px sans-serif}")


def render_svg(job_name: str, attempts: list[TaskAttempt], now: float) -> str:
    """A standalone SVG image: a title line, then one lane per node (hover a bar for details)."""
    timed = [a for a in attempts if a.started is not None]
    width, lane, label_width, bar = 1000, 34, 160, 12
    if not timed:
        return (f'<svg width="{width}" height="40" xmlns="http://www.w3.org/2000/svg">'
                f'<style>{STYLE}</style><text x="4" y="24" class="head">'
                f"{html.escape(job_name)}: no task has started yet</text></svg>\n")
    t0 = min(a.started for a in timed)
    t1 = max((a.finished or now) for a in timed)
    span = max(t1 - t0, 1e-3)
    nodes = sorted({a.node or "(unscheduled)" for a in timed})
    rows = [f'<text x="4" y="18" class="head">{html.escape(job_name)}: {len(timed)} task '
            f"attempts on {len(nodes)} nodes, {span:.1f}s (failed attempts dashed, in red)</text>"]
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
            timings = (a.record or {}).get("timings") or {}
            title = (f"{a.name} attempt {a.attempt} on {node}: {a.phase}, {seconds:.1f}s"
                     + (f"\n{a.error.strip().splitlines()[-1]}" if failed and a.error else "")
                     + ("\n" + ", ".join(f"{step} {t:.1f}s" for step, t in timings.items())
                        if timings else ""))
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
    return (f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
            f'<rect width="100%" height="100%" fill="white"/><style>{STYLE}</style>'
            f'{"".join(rows)}{axis}</svg>\n')


def render_html(job_name: str, attempts: list[TaskAttempt], now: float) -> str:
    legend = " ".join(f'<span style="color:{c}">■ {k}</span>' for k, c in COLORS.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>kubemr timeline: {html.escape(job_name)}</title></head>
<body style="font-family:sans-serif"><p>{legend} (hover a bar for details)</p>
{render_svg(job_name, attempts, now)}</body></html>
"""
