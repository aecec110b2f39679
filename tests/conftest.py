"""Shared fixtures: job manifests in a temp dir, and a real MinIO server for S3 tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from kubemr.spec.manifest import parse_manifest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_job(tmp_path, inline: str, input_uri: str, **spec):
    """A validated job over `input_uri` writing to tmp_path/out, with functions from `inline`."""
    return parse_manifest(job_document(tmp_path, inline, input_uri, **spec))


def job_document(tmp_path, inline: str, input_uri: str, **spec) -> dict:
    """The manifest of make_job, unchecked."""
    return {
        "apiVersion": "kubemr.io/v1alpha1",
        "kind": "MapReduceJob",
        "metadata": {"name": spec.pop("name", "test")},
        "spec": {
            "input": {"uri": input_uri, **spec.pop("input", {})},
            "output": {"uri": str(tmp_path / "out") + "/", **spec.pop("output", {})},
            "mapper": "mapper",
            "code": {"inline": inline},
            **spec,
        },
    }


def read_output(prefix: str) -> list[str]:
    """Every line of every part under a local output prefix, in part order."""
    lines = []
    for name in sorted(os.listdir(prefix)):
        if name.startswith("part-"):
            with open(os.path.join(prefix, name), encoding="utf-8") as f:
                lines.extend(f.read().splitlines())
    return lines


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def minio(tmp_path_factory):
    """A real MinIO server on loopback; sets the KUBEMR_S3_* environment for the session."""
    port = _free_port()
    data = tmp_path_factory.mktemp("minio")
    env = dict(os.environ, MINIO_ROOT_USER="kubemr", MINIO_ROOT_PASSWORD="kubemr-secret")
    pid = int(subprocess.check_output([os.path.join(REPO, "hack", "minio.sh"), "start", str(data),
                                       str(port)], env=env, text=True).strip())
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint + "/minio/health/ready", timeout=1)
            break
        except OSError:
            if time.time() > deadline:
                with open(data / "minio.log") as f:
                    pytest.fail("MinIO did not become ready:\n" + f.read()[-2000:])
            time.sleep(0.2)
    saved = {k: os.environ.get(k) for k in
             ("KUBEMR_S3_ENDPOINT", "KUBEMR_S3_ACCESS_KEY", "KUBEMR_S3_SECRET_KEY")}
    os.environ.update(KUBEMR_S3_ENDPOINT=endpoint, KUBEMR_S3_ACCESS_KEY="kubemr",
                      KUBEMR_S3_SECRET_KEY="kubemr-secret")
    yield endpoint
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    os.kill(pid, 15)


@pytest.fixture(scope="session")
def browser():
    """A real headless Chromium driven by Selenium (Debian's chromium and chromium-driver:
    .ci/run installs them). Skipped without them, unless KUBEMR_E2E_REQUIRED=1 (CI)."""
    import shutil

    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                    "google-chrome"))), None)
    chromedriver = shutil.which("chromedriver") or shutil.which(
        "chromedriver", path=os.environ.get("CHROMEWEBDRIVER"))  # GitHub's Ubuntu runners
    if not (chromium and chromedriver):
        message = "no chromium and chromedriver: apt-get install chromium chromium-driver"
        if os.environ.get("KUBEMR_E2E_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,1500"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=chromedriver))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@contextlib.contextmanager
def dashboard(args: list[str], env: dict | None = None) -> Iterator[str]:
    """`kubemr ui ARGS` running, for as long as the block runs: its address."""
    ui = subprocess.Popen([sys.executable, "-m", "kubemr", "ui", *args], stdout=subprocess.PIPE,
                          text=True, env=env)
    try:
        line = ui.stdout.readline()
        assert "http://" in line, f"kubemr ui {' '.join(args)} printed no address: {line!r}"
        yield line.split("kubemr dashboard at ", 1)[1].split()[0]
    finally:
        ui.terminate()
        ui.wait(timeout=30)


def task_rows(browser) -> tuple[list, list[list[str]]]:
    """The rows of a job page's task table, and the text of their cells."""
    from selenium.webdriver.common.by import By

    rows = browser.find_elements(By.CSS_SELECTOR, "#tasks tbody tr")
    return rows, [[td.text for td in row.find_elements(By.TAG_NAME, "td")] for row in rows]


def follow_log(browser, row) -> str:
    """Open the log of a task table's row: the log page's text."""
    from selenium.webdriver.common.by import By

    row.find_element(By.LINK_TEXT, "log").click()
    return browser.find_element(By.ID, "log").text
