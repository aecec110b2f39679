"""The timeline: one lane per node, a bar per attempt, failed and retried attempts marked."""

import xml.etree.ElementTree as ET

from kubemr.client.cluster import TaskAttempt
from kubemr.client.timeline import render_html, render_svg

SVG = "{http://www.w3.org/2000/svg}"


def attempt(task_type, index, number, node, start, end, phase="Succeeded", error=""):
    return TaskAttempt(task_type, index, number, f"job-{task_type}-{index}-{number}", phase,
                       node, start, end, None, error)


ATTEMPTS = [
    attempt("map", 0, 1, "node-a", 100.0, 102.0, "Failed", "Traceback...\nValueError: bad <line>"),
    attempt("map", 0, 2, "node-b", 103.0, 105.0),
    attempt("map", 1, 1, "node-a", 100.0, 104.0),
    attempt("reduce", 0, 1, "node-b", 106.0, 110.0),
]


def test_svg_draws_a_lane_per_node_and_a_bar_per_attempt():
    root = ET.fromstring(render_svg("wc", ATTEMPTS, now=200.0))
    bars = root.findall(f"{SVG}rect[{SVG}title]")
    assert len(bars) == len(ATTEMPTS)
    labels = [t.text for t in root.findall(f"{SVG}text")]
    assert "node-a" in labels and "node-b" in labels
    assert "map-0 ✗" in labels and "map-0#2" in labels
    failed = next(b for b in bars if "attempt 1 on node-a: Failed" in b.find(f"{SVG}title").text)
    assert failed.get("stroke-dasharray") and "ValueError: bad <line>" in \
        failed.find(f"{SVG}title").text
    widths = {b.find(f"{SVG}title").text.split(":")[0]: float(b.get("width")) for b in bars}
    assert widths["reduce-0 attempt 1 on node-b"] == 2 * widths["map-0 attempt 2 on node-b"]


def test_a_job_with_no_started_task_says_so():
    assert "no task has started yet" in render_svg("wc", [], now=0.0)
    waiting = [attempt("map", 0, 1, "", None, None, "Pending")]
    assert "no task has started yet" in render_html("wc", waiting, now=0.0)


def test_combine_tasks_of_a_tree_of_reduces_have_a_color_of_their_own():
    tree = [*ATTEMPTS[1:3], attempt("combine", 0, 1, "node-a", 104.0, 105.0),
            ATTEMPTS[3]]
    root = ET.fromstring(render_svg("tree", tree, now=200.0))
    fills = {b.find(f"{SVG}title").text.split(" ")[0]: b.get("fill")
             for b in root.findall(f"{SVG}rect[{SVG}title]")}
    assert fills["combine-0"] not in (fills["map-0"], fills["reduce-0"])
    assert "combine" in render_html("tree", tree, now=200.0)


def test_a_committed_attempt_shows_where_its_time_went():
    done = TaskAttempt("map", 0, 1, "job-map-0-1", "Succeeded", "node-a", 100.0, 112.0,
                       {"timings": {"startup": 0.4, "map": 11.0, "read": 1.5, "upload": 0.2}},
                       "")
    title = ET.fromstring(render_svg("wc", [done], now=200.0)).find(
        f"{SVG}rect/{SVG}title").text
    assert title.endswith("startup 0.4s, map 11.0s, read 1.5s, upload 0.2s")
