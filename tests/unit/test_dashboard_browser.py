"""The dashboard in a real headless browser, over local runs: `kubemr run --local --logs DIR`,
then `kubemr ui --local DIR`; a job's page shows its tasks, and a failed attempt's log opens.
(tests/e2e/test_dashboard.py does the same through the operator on the cluster.)"""

from __future__ import annotations

import json

from selenium.webdriver.common.by import By

from kubemr.client import cli
from tests.conftest import dashboard, follow_log, job_document, task_rows
from tests.unit.test_dashboard import fails_first


def test_a_local_runs_page_shows_its_tasks_and_opens_a_failed_attempts_log(tmp_path, browser):
    (tmp_path / "in.txt").write_text("to be or not to be\n")
    manifest = tmp_path / "job.yaml"
    manifest.write_text(json.dumps(job_document(
        tmp_path, fails_first(tmp_path / "failed-once"), str(tmp_path / "in.txt"), name="flaky",
        reducer="reducer", reducers=2, backoffSeconds=0)))
    logs = tmp_path / "logs"
    assert cli.main(["run", str(manifest), "--local", "-q", "--logs", str(logs)]) == 0
    with dashboard(["--local", str(logs)]) as url:
        browser.get(url)
        browser.find_element(By.PARTIAL_LINK_TEXT, "flaky-").click()
        rows, cells = task_rows(browser)
        assert [c[:3] for c in cells] == [["map-0", "1", "Failed"], ["map-0", "2", "Succeeded"],
                                          ["reduce-0", "1", "Succeeded"],
                                          ["reduce-1", "1", "Succeeded"]]
        # The error is shown as text: the job's <script> is not a script on the page.
        assert "<script>alert(1)</script>" in cells[0][8]
        assert browser.find_elements(By.TAG_NAME, "script") == []
        assert browser.find_element(By.CSS_SELECTOR, "#timeline svg")
        log = follow_log(browser, rows[0])
    assert "attempt 1 gives up <b>now</b>" in log
    assert "RuntimeError: the first attempt fails" in log
