"""The dashboard's pages without a cluster: what they show, that nothing a job brings can inject
markup or script, that no credential reaches a page, the namespaces it may show, its read-only
server, and its pages of local runs (the local runner's record, `kubemr ui --local`)."""

from __future__ import annotations

import http.client
import re
import textwrap

import pytest

from kubemr.client.cluster import TaskAttempt
from kubemr.client.dashboard import (
    POD_GONE,
    ClusterJobs,
    LocalRuns,
    job_page,
    jobs_page,
    log_page,
    make_server,
    route,
)
from kubemr.errors import JobFailed, NotFound
from kubemr.runtime.local import run_local
from kubemr.runtime.logs import attempt_log_uri
from kubemr.storage import store_for
from tests.conftest import make_job

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'
SECRET_VALUE = "hunter2-s3cr3t"


def evil_job(namespace: str = "team", name: str = "wordcount") -> dict:
    """A job whose every user-written text carries markup, and whose spec holds credentials."""
    return {
        "metadata": {"namespace": namespace, "name": name, "uid": "0a1b2c3d4e5f"},
        "spec": {
            "input": {"uri": f"s3://books/{EVIL}/"}, "output": {"uri": "s3://results/wc/"},
            "storage": {"secretName": "team-keys",
                        "endpoint": f"http://admin:{SECRET_VALUE}@minio:9000"},
            "template": {"env": [{"name": "API_TOKEN", "value": SECRET_VALUE},
                                 {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {
                                     "name": "db", "key": "password"}}}]},
        },
        "status": {"phase": "Failed", "message": f"map task 0 failed: ValueError: {EVIL}",
                   "maps": {"total": 2, "succeeded": 1}, "reduces": {"total": 1,
                                                                     "succeeded": 0},
                   "mapsDone": "1/2", "reducesDone": "0/1",
                   "counters": {"user": {EVIL: 3}, "kubemr": {"map_input_records": 10}}},
    }


def attempts() -> list[TaskAttempt]:
    record = {"dataNode": "node-a", "counters": {"kubemr": {"map_input_records": 10,
                                                             "map_output_records": 42}}}
    return [
        TaskAttempt("map", 0, 1, "wc-map-0-1", "Failed", f"node-{EVIL}", 100.0, 101.5, None,
                    f"Traceback (most recent call last):\nValueError: {EVIL}"),
        TaskAttempt("map", 0, 2, "wc-map-0-2", "Succeeded", "node-a", 102.0, 104.0, record, ""),
        TaskAttempt("map", 1, 1, "wc-map-1-1", "Succeeded", "node-b", 100.0, 103.0, record, ""),
    ]


EVENTS = [{"time": "2026-01-01T00:00:00Z", "type": "Warning", "reason": "TaskFailed",
           "message": f"map task 0: {EVIL}", "count": 1}]


def no_markup_from_the_job(page: str) -> None:
    assert "<script" not in page and "<img" not in page and "onerror=alert" not in \
        page.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;" in page


def test_the_job_page_shows_tasks_timeline_counters_and_events_all_escaped():
    page = job_page(evil_job(), attempts(), EVENTS, now=110.0)
    no_markup_from_the_job(page)
    rows = re.findall(r"<tr><td>(map-\d)</td><td>(\d)</td>", page)
    assert rows == [("map-0", "1"), ("map-0", "2"), ("map-1", "1")]
    assert "42" in page  # records out
    assert 'href="/jobs/team/wordcount/logs/map-0/1"' in page
    assert '<div id="timeline"><svg' in page and "map-0 attempt 1 on node-" in page
    assert "map_input_records" in page and "TaskFailed" in page
    # A job that failed no longer refreshes itself.
    assert 'http-equiv="refresh"' not in page


def test_no_page_shows_credentials_or_the_pod_template():
    job = evil_job()
    pages = [job_page(job, attempts(), EVENTS, now=110.0), jobs_page("kubemr jobs", [job])]
    for page in pages:
        assert SECRET_VALUE not in page
        assert "API_TOKEN" not in page and "DB_PASSWORD" not in page
        assert "team-keys" not in page and "minio:9000" not in page


def test_the_jobs_page_shows_phase_and_progress_and_links_each_job():
    running = evil_job(name="running")
    running["status"].update(phase="Mapping", message="")
    page = jobs_page("kubemr jobs", [evil_job(), running])
    assert re.findall(r'<a href="/jobs/team/(\w+)">', page) == ["running", "wordcount"]
    assert page.count("1/3") >= 2  # tasks committed of all, maps and reduces together
    assert 'class="Mapping"' in page and 'class="Failed"' in page
    assert 'http-equiv="refresh"' in page  # a job still runs


def test_a_log_page_escapes_the_log():
    page = log_page("team", "wordcount", "map-0", 1, f"starting\n{EVIL}\n")
    no_markup_from_the_job(page)
    assert '<pre id="log">starting\n' in page


class Jobs:
    """The dashboard's source of jobs (kubemr.client.dashboard.Jobs), in memory."""

    title = "kubemr jobs"

    def __init__(self):
        self.job_ = evil_job()

    def jobs(self):
        return [self.job_]

    def job(self, namespace, name):
        if (namespace, name) != ("team", "wordcount"):
            raise NotFound(f"no job {namespace}/{name}")
        return self.job_

    def attempts(self, job):
        return attempts()

    def events(self, namespace, name):
        return EVENTS

    def log(self, namespace, name, task, attempt):
        if (task, attempt) != ("map-0", 1):
            raise NotFound(f"{task} has no attempt {attempt}")
        return f"attempt 1 says {EVIL}\n"


def test_routes_and_what_is_not_found():
    jobs = Jobs()
    assert route(jobs, "/").status == 200
    assert route(jobs, "/jobs/team/wordcount").status == 200
    log = route(jobs, "/jobs/team/wordcount/logs/map-0/1")
    assert log.status == 200 and "attempt 1 says &lt;script&gt;" in log.body
    for path in ("/jobs/team/other", "/jobs/team/wordcount/logs/map-0/9", "/nothing",
                 "/jobs/team/wordcount/logs/map-0/one", "/jobs/x"):
        page = route(jobs, path)
        assert page.status == 404, path
    # The path itself is escaped on the page that says it is not there.
    page = route(jobs, "/%3Cscript%3Ealert(1)%3C/script%3E")
    assert page.status == 404 and "<script" not in page.body


class ListingCluster:
    """What ClusterJobs asks of kubemr.client.cluster.Cluster, for two namespaces' jobs whose
    logs are kept under `logs`."""

    def __init__(self, logs: str):
        self.jobs = {ns: [evil_job(ns, "wc")] for ns in ("team-a", "team-b")}
        for jobs in self.jobs.values():
            jobs[0]["status"]["logs"] = logs

    def list_jobs(self, namespace):
        if namespace is None:
            return [j for jobs in self.jobs.values() for j in jobs]
        return self.jobs.get(namespace, [])

    def get_job(self, namespace, name):
        return self.jobs[namespace][0]

    def attempts(self, namespace, name):
        return attempts()

    def events(self, namespace, name):
        return EVENTS


def test_attempts_whose_pods_are_gone_are_listed_by_their_stored_logs(tmp_path):
    logs = tmp_path.as_uri()
    for kind, index, number in [("map", 0, 1), ("map", 0, 2), ("reduce", 0, 1), ("reduce", 0, 2)]:
        uri = attempt_log_uri(logs, kind, index, number)
        store_for(uri).write_bytes(uri, f"log of {kind}-{index} attempt {number}\n".encode())
    store_for(logs + "/map-00000/notes.txt").write_bytes(logs + "/map-00000/notes.txt", b"")
    jobs = ClusterJobs(ListingCluster(logs))
    # The pods of map-0 attempts 1 and 2 and of map-1 attempt 1 are there; reduce-0's are gone.
    shown = [(a.name, a.attempt, a.phase) for a in jobs.attempts(jobs.job("team-a", "wc"))]
    assert shown == [("map-0", 1, "Failed"), ("map-0", 2, "Succeeded"), ("map-1", 1, "Succeeded"),
                     ("reduce-0", 1, POD_GONE), ("reduce-0", 2, POD_GONE)]
    page = route(jobs, "/jobs/team-a/wc").body
    assert 'href="/jobs/team-a/wc/logs/reduce-0/2"' in page


def test_an_operator_for_some_namespaces_shows_only_their_jobs(tmp_path):
    everyone = ClusterJobs(ListingCluster(tmp_path.as_uri()))
    assert len(everyone.jobs()) == 2
    assert route(everyone, "/jobs/team-b/wc").status == 200
    only_a = ClusterJobs(ListingCluster(tmp_path.as_uri()), namespaces=("team-a",))
    assert [j["metadata"]["namespace"] for j in only_a.jobs()] == ["team-a"]
    page = route(only_a, "/jobs/team-b/wc")
    assert page.status == 404 and "not one this operator runs" in page.body
    assert route(only_a, "/jobs/team-b/wc/logs/map-0/1").status == 404


@pytest.fixture
def server():
    server = make_server(Jobs(), "127.0.0.1", 0)
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def request(server, method: str, path: str) -> tuple[int, dict, str]:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
    connection.request(method, path)
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    return response.status, dict(response.getheaders()), body


def test_the_server_is_read_only_and_forbids_scripts(server):
    status, headers, body = request(server, "GET", "/jobs/team/wordcount")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "script-src" not in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        status, headers, _ = request(server, method, "/jobs/team/wordcount")
        assert status == 405 and headers["Allow"] == "GET, HEAD", method
    status, _, body = request(server, "HEAD", "/")
    assert status == 200 and body == ""
    assert request(server, "GET", "/healthz")[0] == 200


FAILS_FIRST = textwrap.dedent("""
    import os
    def mapper(offset, line):
        if not os.path.exists(FLAG):  # the first attempt of each job: FLAG is per job
            open(FLAG, "w").close()
            print("attempt 1 gives up <b>now</b>", flush=True)
            raise RuntimeError("the first attempt fails <script>alert(1)</script>")
        for word in line.split():
            yield word, 1
    def reducer(word, counts):
        yield word, sum(counts)
""")


def fails_first(flag) -> str:
    """FAILS_FIRST, whose first attempt fails: the one that finds no file `flag`."""
    return f"FLAG = {str(flag)!r}\n" + FAILS_FIRST


def test_local_runs_are_shown_from_the_runners_record(tmp_path):
    (tmp_path / "in.txt").write_text("a b a\n")
    logs = tmp_path / "logs"

    run_local(make_job(tmp_path, fails_first(tmp_path / "flaky"), str(tmp_path / "in.txt"),
                       name="flaky", reducer="reducer", backoffSeconds=0), logs=str(logs))
    with pytest.raises(JobFailed):
        run_local(make_job(tmp_path, fails_first(tmp_path / "broken"), str(tmp_path / "in.txt"),
                           name="broken",
                           maxAttempts=1, output={"uri": str(tmp_path / "out2") + "/"}),
                  logs=str(logs))
    runs = LocalRuns(str(logs))
    by_job = {j["metadata"]["job"]: j for j in runs.jobs()}
    assert {job: j["status"]["phase"] for job, j in by_job.items()} == \
        {"flaky": "Succeeded", "broken": "Failed"}
    assert "the first attempt fails" in by_job["broken"]["status"]["message"]
    flaky = by_job["flaky"]["metadata"]
    assert flaky["name"].startswith("flaky-")
    listing = route(runs, "/")
    assert listing.status == 200 and f'/jobs/default/{flaky["name"]}"' in listing.body

    page = route(runs, f"/jobs/default/{flaky['name']}")
    assert page.status == 200
    no_markup_from_the_job(page.body)
    assert re.findall(r'<tr><td>([a-z]+-\d)</td><td>(\d)</td><td><span class="(\w+)"',
                      page.body) == [("map-0", "1", "Failed"), ("map-0", "2", "Succeeded"),
                                     ("reduce-0", "1", "Succeeded")]
    assert "map_input_records" in page.body and "AttemptFailed" in page.body
    assert "<td>local</td><td>yes</td>" in page.body  # data-local, on the one node there is
    log = route(runs, f"/jobs/default/{flaky['name']}/logs/map-0/1")
    assert log.status == 200 and "attempt 1 gives up &lt;b&gt;now&lt;/b&gt;" in log.body
    assert "RuntimeError: the first attempt fails" in log.body
    assert route(runs, f"/jobs/default/{flaky['name']}/logs/map-0/7").status == 404
    assert route(runs, f"/jobs/other/{flaky['name']}").status == 404
    assert route(runs, "/jobs/default/..").status == 404


def test_kubemr_ui_local_needs_a_directory_of_runs(tmp_path, capsys):
    from kubemr.client import cli

    assert cli.main(["ui", "--local", str(tmp_path / "nothing")]) == 2
    assert "kubemr run JOB.yaml --local --logs" in capsys.readouterr().err
