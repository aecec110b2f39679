"""Shared fixtures: job manifests in a temp dir, and a real MinIO server for S3 tests."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request

import pytest

from kubemr.spec.manifest import parse_manifest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_job(tmp_path, inline: str, input_uri: str, **spec):
    """A validated job over `input_uri` writing to tmp_path/out, with functions from `inline`."""
    doc = {
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
    return parse_manifest(doc)


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
