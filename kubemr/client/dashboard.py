"""The dashboard: read-only web pages of the jobs, each job's task attempts, timeline, counters
and events, and the log of any attempt.

One module builds the pages wherever they are served: by the operator, over the cluster's jobs
(`ClusterJobs`, only the namespaces the operator watches), and by `kubemr ui --local DIR`, over
the records the local runner keeps with `--logs DIR` (`LocalRuns`). The pages are plain HTML
built on the server. Everything a job brings (names, messages, errors, events, logs) is
escaped, and the Content-Security-Policy header allows no script at all. Only GET and HEAD are
served. No page shows a Secret, the job's pod template (its env), or storage settings: a job's
page shows its phase, input and output URIs, tasks, counters and events.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import quote, unquote

from kubemr.client.cluster import TaskAttempt
from kubemr.client.timeline import COLORS, render_svg
from kubemr.errors import KubemrError, NotFound
from kubemr.runtime.logs import every_stored_attempt
from kubemr.runtime.runs import read_attempt_log, read_run, read_runs

log = logging.getLogger("kubemr.dashboard")

ENDED = ("Succeeded", "Failed")
POD_GONE = "Pod gone"  # the phase shown of an attempt known only by its stored log
REFRESH_SECONDS = 10  # pages of a job still running reload themselves this often
STYLE = """
body{font:14px sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border-bottom:1px solid #ddd;padding:3px 10px;text-align:left;vertical-align:top}
th{background:#f4f4f4}
#tasks td:not(:nth-child(9)){white-space:nowrap}
.Succeeded{color:#2a7d2a}.Failed{color:#c0392b}.Running,.Mapping,.Reducing{color:#1f5fa0}
.bar{display:inline-block;width:120px;height:10px;background:#eee;vertical-align:middle}
.bar span{display:block;height:10px;background:#4c78a8}
pre{background:#f7f7f7;padding:1em;overflow-x:auto;white-space:pre-wrap}
.error{white-space:pre-wrap;max-width:40em;font-family:monospace;font-size:12px}
"""
# No script may run on any page, whatever a job's name, error or log holds.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Jobs(Protocol):
    """Where the pages' data comes from: the cluster, or a local runner's records."""

    title: str

    def jobs(self) -> list[dict]:
        """Jobs as the API returns them: metadata (namespace, name), spec, status."""

    def job(self, namespace: str, name: str) -> dict:
        """One job; NotFound if there is none (or it is not the dashboard's to show)."""

    def attempts(self, job: dict) -> list[TaskAttempt]:
        """The attempts of a job `job()` returned."""

    def events(self, namespace: str, name: str) -> list[dict]:
        """The job's events: time, type, reason, message, count."""

    def log(self, namespace: str, name: str, task: str, attempt: int) -> str: ...


@dataclass
class Page:
    status: int
    body: str
    content_type: str = "text/html; charset=utf-8"


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def job_path(namespace: str, name: str) -> str:
    return f"/jobs/{quote(namespace, safe='')}/{quote(name, safe='')}"


def log_path(namespace: str, name: str, task: str, attempt: int) -> str:
    return f"{job_path(namespace, name)}/logs/{quote(task, safe='')}/{attempt}"


def _document(title: str, body: str, refresh: bool = False) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return (f'<!doctype html>\n<html><head><meta charset="utf-8">{meta}<title>{esc(title)}'
            f"</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def _table(header: list[str], rows: list[list[str]], table_id: str) -> str:
    """A table of cells already escaped (or built of escaped parts)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>\n"
                   for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>'


def _progress(status: dict) -> tuple[int, int]:
    """Tasks committed and tasks in all: maps, a tree's combines and reduces together."""
    done = total = 0
    for kind in ("maps", "combines", "reduces"):
        counts = status.get(kind) or {}
        done += int(counts.get("succeeded") or 0)
        total += int(counts.get("total") or 0)
    return done, total


def _phase(status: dict) -> str:
    phase = str(status.get("phase") or "Pending")
    return f'<span class="{esc(phase)}">{esc(phase)}</span>'


def jobs_page(title: str, jobs: list[dict]) -> str:
    rows = []
    for job in sorted(jobs, key=lambda j: (j["metadata"].get("namespace", ""),
                                           j["metadata"]["name"])):
        meta, status = job["metadata"], job.get("status") or {}
        namespace = meta.get("namespace", "default")
        done, total = _progress(status)
        width = int(100 * done / total) if total else 0
        rows.append([esc(namespace),
                     f'<a href="{esc(job_path(namespace, meta["name"]))}">{esc(meta["name"])}</a>',
                     _phase(status), esc(status.get("mapsDone", "-")),
                     esc(status.get("reducesDone", "-")),
                     f'<span class="bar" title="{done}/{total}"><span style="width:{width}%">'
                     f"</span></span> {done}/{total}",
                     esc(status.get("startTime", "")), esc(status.get("completionTime", ""))])
    table = (_table(["Namespace", "Job", "Phase", "Maps", "Reduces", "Progress", "Started",
                     "Finished"], rows, "jobs") if rows else "<p>No jobs.</p>")
    running = any((j.get("status") or {}).get("phase") not in ENDED for j in jobs)
    return _document(title, f"<h1>{esc(title)}</h1>\n{table}", refresh=running)


def _records(attempt: TaskAttempt) -> tuple[str, str]:
    counters = ((attempt.record or {}).get("counters") or {}).get("kubemr", {})
    records_in = counters.get("map_input_records", counters.get(
        "tree_input_groups" if attempt.task_type == "combine" else "reduce_input_groups", ""))
    records_out = counters.get("map_output_records", counters.get(
        "tree_output_records" if attempt.task_type == "combine" else "reduce_output_records",
        ""))
    return str(records_in), str(records_out)


TASK_TYPES = ("map", "combine", "reduce")


def _task_order(attempt: TaskAttempt) -> tuple:
    return (TASK_TYPES.index(attempt.task_type) if attempt.task_type in TASK_TYPES else 3,
            attempt.index, attempt.attempt)


def _data_local(attempt: TaskAttempt) -> str:
    if attempt.task_type != "map" or not attempt.record:
        return ""
    nodes = attempt.record.get("dataNodes") or [attempt.record.get("dataNode")]
    return "yes" if None in nodes or attempt.node in nodes else "no"


def _error(error: str) -> str:
    """An attempt's error: its last line, the whole of it when unfolded."""
    lines = error.strip().splitlines()
    if not lines:
        return ""
    return (f'<details class="error"><summary>{esc(lines[-1][:200])}</summary>'
            f"{esc(chr(10).join(lines))}</details>")


def _attempt_rows(namespace: str, name: str, attempts: list[TaskAttempt]) -> list[list[str]]:
    rows = []
    for a in attempts:
        records_in, records_out = _records(a)
        link = log_path(namespace, name, a.name, a.attempt)
        rows.append([esc(a.name), str(a.attempt), _phase({"phase": a.phase}),
                     esc(a.node or "-"), _data_local(a),
                     f"{a.seconds:.1f}s" if a.seconds is not None else "-",
                     esc(records_in), esc(records_out),
                     _error(a.error),
                     f'<a class="log" href="{esc(link)}">log</a>'])
    return rows


def _counters(counters: dict) -> str:
    rows = [[esc(group), esc(counter), esc(value)]
            for group, values in sorted(counters.items()) if isinstance(values, dict)
            for counter, value in sorted(values.items())]
    return _table(["Group", "Counter", "Value"], rows, "counters") if rows else \
        "<p>No counters yet.</p>"


def _events(events: list[dict]) -> str:
    rows = [[esc(e.get("time", "")), esc(e.get("type", "")), esc(e.get("reason", "")),
             esc(e.get("message", "")), esc(e.get("count", ""))] for e in events]
    return _table(["Time", "Type", "Reason", "Message", "Count"], rows, "events") if rows else \
        "<p>No events.</p>"


def _uris(spec: dict) -> tuple[str, str]:
    source = spec.get("input") or {}
    uris = source.get("uris") or [source.get("uri", "")]
    return ", ".join(str(u) for u in uris), str((spec.get("output") or {}).get("uri", ""))


def job_page(job: dict, attempts: list[TaskAttempt], events: list[dict], now: float) -> str:
    meta, status = job["metadata"], job.get("status") or {}
    namespace, name = meta.get("namespace", "default"), meta["name"]
    source, output = _uris(job.get("spec") or {})
    done, total = _progress(status)
    facts = [("Phase", _phase(status)), ("Maps", esc(status.get("mapsDone", "-"))),
             *([("Combines", esc(status["combinesDone"]))] if status.get("combinesDone") else []),
             ("Reduces", esc(status.get("reducesDone", "-"))),
             ("Tasks committed", f"{done}/{total}"),
             ("Attempts", esc(status.get("attempts", len(attempts)))),
             ("Input", esc(source)), ("Output", esc(output)),
             ("Started", esc(status.get("startTime", ""))),
             ("Finished", esc(status.get("completionTime", "")))]
    if status.get("message"):
        facts.append(("Message", f'<div class="error" id="message">{esc(status["message"])}'
                                  "</div>"))
    summary = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in facts)
    tasks = (_table(["Task", "Attempt", "Phase", "Node", "Data-local", "Duration", "Records in",
                     "Records out", "Error", "Log"], _attempt_rows(namespace, name, attempts),
                    "tasks") if attempts else "<p>No task attempts yet.</p>")
    legend = " ".join(f'<span style="color:{c}">&#9632; {k}</span>' for k, c in COLORS.items())
    body = (f'<p><a href="/">All jobs</a></p>\n<h1>{esc(namespace)}/{esc(name)}</h1>\n'
            f'<table id="summary">{summary}</table>\n'
            f"<h2>Tasks</h2>\n{tasks}\n"
            f'<h2>Timeline</h2>\n<p>{legend} (hover a bar for details)</p>\n'
            f'<div id="timeline">{render_svg(name, attempts, now)}</div>\n'
            f"<h2>Counters</h2>\n{_counters(status.get('counters') or {})}\n"
            f"<h2>Events</h2>\n{_events(events)}")
    return _document(f"{namespace}/{name}", body,
                     refresh=status.get("phase") not in ENDED)


def log_page(namespace: str, name: str, task: str, attempt: int, text: str) -> str:
    title = f"{namespace}/{name} {task} attempt {attempt}"
    body = (f'<p><a href="/">All jobs</a> / <a href="{esc(job_path(namespace, name))}">'
            f"{esc(namespace)}/{esc(name)}</a></p>\n<h1>{esc(task)}, attempt {attempt}</h1>\n"
            f'<pre id="log">{esc(text) if text else "(empty)"}</pre>')
    return _document(title, body)


def message_page(title: str, message: str) -> str:
    return _document(title, f'<p><a href="/">All jobs</a></p>\n<h1>{esc(title)}</h1>\n'
                            f'<p id="message">{esc(message)}</p>')


def route(jobs: Jobs, path: str, now: Callable[[], float] = time.time) -> Page:
    """The page at `path`: / (the jobs), /jobs/NS/NAME (a job), /jobs/NS/NAME/logs/TASK/N (an
    attempt's log), /healthz."""
    parts = [unquote(p) for p in path.split("?", 1)[0].strip("/").split("/") if p]
    try:
        if not parts:
            return Page(200, jobs_page(jobs.title, jobs.jobs()))
        if parts == ["healthz"]:
            return Page(200, "ok\n", "text/plain; charset=utf-8")
        if parts[0] == "jobs" and len(parts) == 3:
            namespace, name = parts[1:]
            job = jobs.job(namespace, name)
            return Page(200, job_page(job, jobs.attempts(job),
                                      jobs.events(namespace, name), now()))
        if parts[0] == "jobs" and len(parts) == 6 and parts[3] == "logs" and parts[5].isdigit():
            namespace, name, _, task, attempt = parts[1:]
            jobs.job(namespace, name)
            text = jobs.log(namespace, name, task, int(attempt))
            return Page(200, log_page(namespace, name, task, int(attempt), text))
        return Page(404, message_page("Not found", f"no page at {path}"))
    except NotFound as e:
        return Page(404, message_page("Not found", str(e)))
    except KubemrError as e:
        return Page(502, message_page("Cannot show this page", str(e)))


class _Handler(BaseHTTPRequestHandler):
    jobs: Jobs
    server_version = "kubemr-dashboard"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._send(route(self.jobs, self.path), body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(route(self.jobs, self.path), body=False)

    def _refuse(self) -> None:
        page = Page(405, message_page("Read only", "the dashboard only shows; it changes nothing"))
        self._send(page, body=True, extra={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _refuse  # noqa: N815

    def _send(self, page: Page, body: bool, extra: dict | None = None) -> None:
        data = page.body.encode("utf-8")
        self.send_response(page.status)
        for key, value in {**SECURITY_HEADERS, **(extra or {}),
                           "Content-Type": page.content_type,
                           "Content-Length": str(len(data))}.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class ClusterJobs:
    """The jobs of the cluster, of `namespaces` only when given (the operator's watched ones)."""

    title = "kubemr jobs"

    def __init__(self, cluster, namespaces: tuple[str, ...] = ()):
        self.cluster = cluster  # kubemr.client.cluster.Cluster
        self.namespaces = namespaces

    def _check(self, namespace: str) -> None:
        if self.namespaces and namespace not in self.namespaces:
            raise NotFound(f"namespace {namespace} is not one this operator runs jobs of")

    def jobs(self) -> list[dict]:
        if not self.namespaces:
            return self.cluster.list_jobs(None)
        return [job for namespace in self.namespaces for job in self.cluster.list_jobs(namespace)]

    def job(self, namespace: str, name: str) -> dict:
        self._check(namespace)
        return self.cluster.get_job(namespace, name)

    def attempts(self, job: dict) -> list[TaskAttempt]:
        """The attempts of the job's pods, and those whose pod is gone but whose log is kept."""
        from kubemr.client.sdk import logs_folder

        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        self._check(namespace)
        attempts = self.cluster.attempts(namespace, name)
        try:
            stored = every_stored_attempt(logs_folder(job))
        except KubemrError as e:  # the store: unreachable, or no credentials here
            log.warning("cannot list the stored logs of %s/%s: %s", namespace, name, e)
            return attempts
        seen = {(a.task_type, a.index, a.attempt) for a in attempts}
        gone = [TaskAttempt(kind, index, number, "", POD_GONE, "", None, None, None, "")
                for kind, index, number in sorted(stored) if (kind, index, number) not in seen]
        return sorted(attempts + gone, key=_task_order)

    def events(self, namespace: str, name: str) -> list[dict]:
        self._check(namespace)
        return self.cluster.events(namespace, name)

    def log(self, namespace: str, name: str, task: str, attempt: int) -> str:
        from kubemr.client.sdk import Job

        self._check(namespace)
        return Job(name, namespace, self.cluster).logs(task, attempt)


class LocalRuns:
    """The runs the local runner recorded under a directory (`kubemr run --local --logs DIR`)."""

    title = "kubemr local runs"

    def __init__(self, base: str):
        self.base = base

    def jobs(self) -> list[dict]:
        return read_runs(self.base)

    def job(self, namespace: str, name: str) -> dict:
        record = read_run(self.base, name)
        if record["metadata"]["namespace"] != namespace:
            raise NotFound(f"no local run {namespace}/{name} under {self.base}")
        return record

    def attempts(self, job: dict) -> list[TaskAttempt]:
        attempts = [TaskAttempt(**a) for a in job["attempts"]]
        return sorted(attempts, key=_task_order)

    def events(self, namespace: str, name: str) -> list[dict]:
        return self.job(namespace, name)["events"]

    def log(self, namespace: str, name: str, task: str, attempt: int) -> str:
        return read_attempt_log(self.base, name, task, attempt)


def make_server(jobs: Jobs, host: str, port: int) -> ThreadingHTTPServer:
    """A server of the pages (port 0: any free port, see server.server_port)."""
    handler = type("Handler", (_Handler,), {"jobs": jobs})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve_in_background(jobs: Jobs, host: str, port: int) -> ThreadingHTTPServer:
    server = make_server(jobs, host, port)
    threading.Thread(target=server.serve_forever, name="dashboard", daemon=True).start()
    return server
