"""The SDK and the `kubemr` CLI against the real cluster and the operator."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import textwrap

import pytest

import kubemr
from kubemr.client.sdk import Pipeline, Step, bundle_functions
from kubemr.storage import store_for
from tests.e2e.test_operator import (
    SECRET,
    corpus,
    job_manifest,
    new_bucket,
    running_pods,
    wait_for,
    wait_until,
)

pytestmark = pytest.mark.e2e


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "kubemr", *args], capture_output=True,
                            text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_a_lambda_closing_over_a_local_variable_runs_on_the_cluster(ns):
    bucket = new_bucket()
    want = corpus(bucket, files=2, lines=100)
    bonus = 1000
    job = kubemr.submit(lambda _, line: [(w, 1) for w in line.split()],
                        lambda w, ones: [(w, sum(ones) + bonus)], input=f"{bucket}/in/",
                        output=f"{bucket}/out/", reducers=2, namespace=ns,
                        storage={"secretName": SECRET}, name="closure")
    job.wait(timeout=300)
    assert dict(job.results()) == {w: n + bonus for w, n in want.items()}


def test_functions_from_main_run_on_the_cluster(ns, tmp_path):
    bucket = new_bucket()
    want = corpus(bucket, files=1, lines=100)
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import kubemr

        def mapper(_, line):
            for word in line.split():
                yield word.upper(), 1

        def reducer(word, ones):
            yield word, sum(ones)

        job = kubemr.submit(mapper, reducer, input="{bucket}/in/", output="{bucket}/out/",
                            namespace="{ns}", storage={{"secretName": "{SECRET}"}}, name="main")
        job.wait(timeout=300)
        print(dict(job.results())["ALPHA"])
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=400, env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                                sys.path)))
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) == want["alpha"]


def test_a_two_step_pipeline_runs_on_the_cluster(ns):
    bucket = new_bucket()
    want = corpus(bucket, files=2, lines=100)
    pipeline = Pipeline([
        Step(mapper=lambda _, line: [(w, 1) for w in line.split()],
             reducer=lambda w, ones: [(w, sum(ones))], combiner=lambda w, ones: [(w, sum(ones))],
             reducers=2),
        Step(mapper=lambda w, n: [("total", n)], reducer=lambda k, ns: [(k, sum(ns))]),
    ])
    job = pipeline.run(f"{bucket}/in/", f"{bucket}/out/", namespace=ns, name="steps",
                       storage={"secretName": SECRET})
    assert list(job.results()) == [("total", sum(want.values()))]


def test_code_from_another_python_is_refused_with_a_clear_message(cluster, ns):
    bucket = new_bucket()
    corpus(bucket, files=1, lines=10)
    bundle = pickle.loads(bundle_functions({"mapper": lambda k, v: [(v, 1)]}))
    bundle["python"] = "3.7.9"
    code_uri = f"{bucket}/code.pkl"
    store_for(code_uri).write_bytes(code_uri, pickle.dumps(bundle))
    manifest = job_manifest("old-python", ns, bucket, maxAttempts=1)
    spec = manifest["spec"]
    for role in ("combiner", "reducer"):
        spec.pop(role)
    spec["code"] = {"pickle": code_uri}
    cluster.apply(manifest)
    job = wait_for(cluster, ns, "old-python", "Failed")
    assert "made with Python 3.7 and cloudpickle" in job["status"]["message"]


def test_cli_on_a_finished_and_a_failed_job(cluster, ns, tmp_path):
    bucket = new_bucket()
    want = corpus(bucket, files=2, lines=100)
    good = tmp_path / "good.yaml"
    good.write_text(json.dumps(job_manifest("cli-good", ns, bucket, mapper="exits_first")))
    result = cli("submit", str(good), "--wait", "--progress", "--timeout", "400")
    assert "succeeded" in result.stderr

    listed = json.loads(cli("list", "-n", ns, "-o", "json").stdout)
    assert {"namespace": ns, "name": "cli-good", "phase": "Succeeded"}.items() <= \
        next(j for j in listed if j["name"] == "cli-good").items()
    described = cli("describe", "cli-good", "-n", ns).stdout
    assert "Phase:     Succeeded" in described and "map-0" in described
    assert "Failed" in described  # the first attempt of each map failed
    details = json.loads(cli("describe", "cli-good", "-n", ns, "-o", "json").stdout)
    assert {a["attempt"] for a in details["attempts"] if a["task_type"] == "map"} == {1, 2}
    cat = cli("cat", "cli-good", "-n", ns).stdout.splitlines()
    assert {w: int(n) for w, n in (line.split("\t") for line in cat)} == want
    logs = cli("logs", "cli-good", "-n", ns, "--task", "reduce-0")
    assert logs.returncode == 0
    page = tmp_path / "timeline.html"
    cli("timeline", "cli-good", "-n", ns, "-o", str(page))
    html = page.read_text()
    assert "<svg" in html and "map-0#2" in html and "✗" in html
    image = tmp_path / "timeline.svg"
    cli("timeline", "cli-good", "-n", ns, "-o", str(image))
    assert image.read_text().startswith("<svg") and "map-0#2" in image.read_text()

    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps(job_manifest("cli-bad", ns, new_bucket(), mapper="always_raises",
                                           maxAttempts=1, input={"uri": f"{bucket}/in/"})))
    failed = cli("submit", str(bad), "--wait", "--timeout", "400", check=False)
    assert failed.returncode == 1
    assert "ValueError: cannot parse line at byte" in failed.stderr
    assert "Traceback (most recent call last)" not in failed.stderr.split("failed:")[0]
    message = cluster.get_json("mapreducejob", "cli-bad", "-n", ns)["status"]["message"]
    failed_task = "map-" + re.search(r"map task (\d+) failed", message).group(1)
    logs = cli("logs", "cli-bad", "-n", ns, "--task", failed_task).stdout
    assert "ValueError: cannot parse line at byte" in logs
    described = cli("describe", "cli-bad", "-n", ns).stdout
    assert "Phase:     Failed" in described
    cli("delete", "cli-bad", "-n", ns)
    missing = cli("describe", "cli-bad", "-n", ns, check=False)
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_cli_errors_say_what_to_do(tmp_path):
    env = dict(os.environ, KUBECONFIG=str(tmp_path / "nothing"))
    result = subprocess.run([sys.executable, "-m", "kubemr", "list"], capture_output=True,
                            text=True, env=env)
    assert result.returncode == 2
    assert "KUBECONFIG" in result.stderr and "Traceback" not in result.stderr


def test_an_output_holding_a_committed_job_is_refused_before_submitting(cluster, ns):
    from kubemr.errors import KubemrError

    bucket = new_bucket()
    corpus(bucket, files=1, lines=10)
    summary = {"job": "earlier", "uid": "u", "parts": 0, "counters": {},
               "committedAt": "2026-01-01T00:00:00Z"}  # as kubemr writes it
    store_for(bucket + "/").write_bytes(f"{bucket}/out/_SUCCESS", json.dumps(summary).encode())
    with pytest.raises(KubemrError, match="already holds a committed job") as raised:
        kubemr.submit(lambda _, line: [(line, 1)], input=f"{bucket}/in/",
                      output=f"{bucket}/out/", namespace=ns, name="refused")
    assert "output.overwrite" in str(raised.value)
    assert cluster.get_json("mapreducejobs", "-n", ns)["items"] == []


def test_a_cluster_without_the_crd_is_named(monkeypatch):
    import kubemr.client.cluster
    from kubemr.errors import KubemrError

    # a group never installed
    monkeypatch.setattr(kubemr.client.cluster, "GROUP", "absent.kubemr.io")
    with pytest.raises(KubemrError, match="the MapReduceJob CRD is not installed") as raised:
        kubemr.client.cluster.Cluster().list_jobs("default")
    assert "helm install kubemr charts/kubemr" in str(raised.value)


def test_cli_submits_a_job_class_to_the_cluster(ns, tmp_path):
    """The class's module is not in the image: cloudpickle ships it by value."""
    bucket = new_bucket()
    want = corpus(bucket, files=2, lines=100)
    (tmp_path / "myjobs.py").write_text(textwrap.dedent("""
        import re

        WORD = re.compile(r"[a-z]+")

        class WordCount:
            def mapper(self, _, line):
                for word in WORD.findall(line.lower()):
                    yield word, 1

            def reducer(self, word, ones):
                yield word, sum(ones)

            combiner = reducer
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]))
    result = subprocess.run(
        [sys.executable, "-m", "kubemr", "submit", "myjobs:WordCount", "--input",
         f"{bucket}/in/", "--output-uri", f"{bucket}/out/", "--reducers", "2", "-n", ns,
         "--name", "class-job", "--wait", "--timeout", "300"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=400)
    assert result.returncode == 0, result.stderr
    assert "succeeded" in result.stderr
    assert dict(kubemr.read_output(f"{bucket}/out/", "jsonl")) == want


def test_cancel_stops_a_running_job(cluster, ns):
    bucket = new_bucket()
    corpus(bucket, files=2, lines=600)

    def slow(_, line):
        import time

        time.sleep(0.1)
        return [(w, 1) for w in line.split()]

    job = kubemr.submit(slow, lambda w, ones: [(w, sum(ones))], input=f"{bucket}/in/",
                        output=f"{bucket}/out/", namespace=ns, name="cancelled",
                        storage={"secretName": SECRET})
    wait_until(lambda: running_pods(cluster, ns, "cancelled"), what="a running map")
    job.cancel()
    wait_until(lambda: not cluster.get_json("pods", "-n", ns, "-l",
                                            "kubemr.io/job=cancelled")["items"]
               and not cluster.get_json("mapreducejobs", "-n", ns)["items"],
               what="the cancelled job and its pods to go")
    assert store_for(bucket + "/").list(f"{bucket}/out/") == []
