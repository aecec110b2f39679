"""The operator's dashboard in a real headless browser, on the real cluster, opened as a user
does with `kubemr ui` (a port-forward to the chart's Service): the jobs page lists a job, its
page shows its tasks (a failed first attempt and its retry), events and counters, and the failed
attempt's log opens. With KUBEMR_DASHBOARD_SCREENSHOT=docs/dashboard.png it saves the job's page
there (docs/dashboard.md shows it)."""

from __future__ import annotations

import os
import time

import pytest
from selenium.webdriver.common.by import By

from tests.conftest import dashboard, follow_log, task_rows
from tests.e2e.conftest import SYSTEM
from tests.e2e.test_operator import WORDCOUNT, corpus, job_manifest, new_bucket, wait_for

pytestmark = pytest.mark.e2e

FAILS_FIRST = WORDCOUNT + """
def fails_first(offset, line):
    if ATTEMPT == 1:
        print(f"attempt 1 of this task gives up at byte {offset}", flush=True)
        raise RuntimeError("the first attempt fails <script>alert(1)</script>")
    yield from mapper(offset, line)
"""


def test_a_jobs_page_shows_its_tasks_and_opens_a_failed_attempts_log(cluster, ns, browser):
    bucket = new_bucket()
    corpus(bucket, files=2, lines=75)  # one map task per file
    cluster.apply(job_manifest("dashed", ns, bucket, mapper="fails_first", reducers=2,
                               backoffSeconds=0, code={"inline": FAILS_FIRST}))
    wait_for(cluster, ns, "dashed", "Complete")
    # A task commits before its pod ends: the job may be Succeeded while the last reduce's pod
    # is still exiting (and shown Running). The page is checked once every pod has ended.
    deadline = time.time() + 60
    while {pod["status"]["phase"] for pod in cluster.get_json("pods", "-n", ns)["items"]} - \
            {"Succeeded", "Failed"}:
        assert time.time() < deadline, "the job's pods did not end within 60 s of its success"
        time.sleep(1)

    env = dict(os.environ, KUBECONFIG=cluster.kubeconfig,
               PATH=os.path.dirname(cluster.kubectl_bin) + os.pathsep + os.environ["PATH"])
    with dashboard(["-n", SYSTEM], env=env) as url:
        browser.get(url)
        browser.find_element(By.LINK_TEXT, "dashed").click()
        assert browser.find_element(By.CSS_SELECTOR, "#summary").text.startswith(
            "Phase Succeeded")
        rows, cells = task_rows(browser)
        assert [c[:3] for c in cells] == [
            ["map-0", "1", "Failed"], ["map-0", "2", "Succeeded"],
            ["map-1", "1", "Failed"], ["map-1", "2", "Succeeded"],
            ["reduce-0", "1", "Succeeded"], ["reduce-1", "1", "Succeeded"]]
        nodes = set(cluster.worker_nodes())
        assert all(c[3] in nodes for c in cells)  # the node each attempt ran on
        assert cells[1][4] in ("yes", "no") and cells[1][6].isdigit()  # data-local, records in
        assert "<script>alert(1)</script>" in cells[0][8]  # the error, as text
        assert browser.find_elements(By.TAG_NAME, "script") == []
        assert browser.find_element(By.CSS_SELECTOR, "#timeline svg")
        assert "map_input_records" in browser.find_element(By.ID, "counters").text
        assert "TaskFailed" in browser.find_element(By.ID, "events").text
        if os.environ.get("KUBEMR_DASHBOARD_SCREENSHOT"):
            browser.save_screenshot(os.environ["KUBEMR_DASHBOARD_SCREENSHOT"])
        log = follow_log(browser, rows[0])
    assert "attempt 1 of this task gives up at byte 0" in log
    assert "RuntimeError: the first attempt fails <script>alert(1)</script>" in log
