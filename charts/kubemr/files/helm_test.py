"""`helm test`: a word count over a few bytes through the operator, checked record by record.

Runs in the kubemr image in the release's namespace (templates/tests/pod.yaml): writes the input
to the chart's storage, submits a MapReduceJob with the kubemr CLI and waits for it, reads its
output back and compares it with the counts computed here. Any difference, a failed job or a
timeout exits 1, and helm reports the test as failed.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from urllib.parse import urlparse

import urllib3
from minio import Minio

TEXT = "the quick brown fox\njumps over the lazy dog\nthe dog sleeps\n"
CODE = """
def mapper(offset, line):
    for word in line.split():
        yield word, 1

def reducer(word, counts):
    yield word, sum(counts)
"""


def say(message: str) -> None:
    print(f"kubemr helm test: {message}", flush=True)


def kubemr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubemr", *args], capture_output=True, text=True)


def job_manifest(name: str, namespace: str, base_uri: str) -> dict:
    """The word count: input under BASE_URI/in/, jsonl output under BASE_URI/out/."""
    return {
        "apiVersion": "kubemr.io/v1alpha1",
        "kind": "MapReduceJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "input": {"uri": f"{base_uri}/in/"},
            "output": {"uri": f"{base_uri}/out/", "format": "jsonl"},
            "mapper": "mapper",
            "combiner": "reducer",
            "reducer": "reducer",
            "reducers": 2,
            "maxAttempts": 2,
            "ttlSecondsAfterFinished": 3600,
            "code": {"inline": CODE},
        },
    }


def main() -> int:
    namespace = os.environ["NAMESPACE"]
    timeout = os.environ.get("KUBEMR_TEST_TIMEOUT", "240")
    name = f"kubemr-test-{uuid.uuid4().hex[:6]}"
    work = urlparse(os.environ["KUBEMR_WORK_URI"])
    bucket = work.netloc
    prefix = "/".join(p for p in (work.path.strip("/"), "helm-test", name) if p)
    endpoint = urlparse(os.environ["KUBEMR_S3_ENDPOINT"])
    # A storage that does not answer fails the test in about a minute, not at helm's timeout.
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=10, read=60),
                               retries=urllib3.Retry(total=2, backoff_factor=1))
    s3 = Minio(endpoint.netloc, access_key=os.environ["KUBEMR_S3_ACCESS_KEY"],
               secret_key=os.environ["KUBEMR_S3_SECRET_KEY"], secure=endpoint.scheme == "https",
               http_client=http)

    say(f"writing {len(TEXT)} bytes to s3://{bucket}/{prefix}/in/ at {endpoint.geturl()}")
    try:
        if not s3.bucket_exists(bucket):
            s3.make_bucket(bucket)
        data = TEXT.encode()
        s3.put_object(bucket, f"{prefix}/in/words.txt", io.BytesIO(data), len(data))
    except Exception as e:  # whatever the cause, the storage is not usable
        say(f"cannot write to the storage at {endpoint.geturl()} (storageEndpoint, "
            f"storageSecret): {type(e).__name__}: {e}")
        return 1

    manifest = job_manifest(name, namespace, f"s3://{bucket}/{prefix}")
    path = "/tmp/helm-test-job.json"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f)

    say(f"submitting mapreducejob {namespace}/{name}, waiting up to {timeout}s")
    submitted = kubemr("submit", path, "--namespace", namespace, "--wait", "--timeout", timeout)
    if submitted.returncode != 0:
        say(f"the job did not succeed:\n{submitted.stderr.strip()}")
        print(kubemr("describe", name, "--namespace", namespace).stdout, flush=True)
        return 1

    output = kubemr("cat", name, "--namespace", namespace, "-o", "json")
    if output.returncode != 0:
        say(f"cannot read the job's output:\n{output.stderr.strip()}")
        return 1
    got = dict(json.loads(line) for line in output.stdout.splitlines() if line)
    want = dict(Counter(TEXT.split()))
    if got != want:
        say(f"wrong output: got {got}, want {want}")
        return 1

    kubemr("delete", name, "--namespace", namespace)
    for obj in s3.list_objects(bucket, prefix=f"{prefix}/", recursive=True):
        s3.remove_object(bucket, obj.object_name)
    say(f"ok: job {name} counted {sum(want.values())} words ({len(want)} distinct)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
