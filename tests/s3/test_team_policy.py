"""The per-team MinIO policy of docs/multi-tenancy.md, on a real MinIO server: a team's keys
reach its own buckets and its namespace's prefixes of kubemr's buckets, a whole job runs with
them, and MinIO refuses them everything of another team."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from kubemr.errors import StorageError
from kubemr.storage import store_for
from kubemr.storage.s3 import S3Store

pytestmark = pytest.mark.s3

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "multi-tenancy.md"
WORK = "kubemr-work"
NODE_BUCKET = "node-worker1"
TEXT = "the quick brown fox\njumps over the lazy dog\nthe dog sleeps\n"
WORDCOUNT = """
def mapper(offset, line):
    for word in line.split():
        yield word, 1
def reducer(word, counts):
    yield word, sum(counts)
"""


def team_policy(namespace: str) -> dict:
    """The guide's policy of team-a, for `namespace`."""
    text = GUIDE.read_text()
    block = re.search(r"The policy of team-a, `team-a.json`:\n\n```json\n(.*?)```", text, re.S)
    return json.loads(block.group(1).replace("team-a", namespace))


@pytest.fixture(scope="module")
def teams(minio):
    """Two teams (namespaces), each a MinIO user with the guide's policy: {namespace: keys}."""
    from minio import MinioAdmin
    from minio.credentials import StaticProvider

    admin = MinioAdmin(endpoint=urlparse(minio).netloc, secure=False, credentials=StaticProvider(
        os.environ["KUBEMR_S3_ACCESS_KEY"], os.environ["KUBEMR_S3_SECRET_KEY"]))
    root = store_for(f"s3://{WORK}/")
    keys = {}
    for team in ("a", "b"):
        namespace = f"team-{team}-{uuid.uuid4().hex[:6]}"
        secret = uuid.uuid4().hex
        admin.user_add(namespace, secret)
        admin.policy_add(namespace, policy=team_policy(namespace))
        admin.attach_policy([namespace], user=namespace)
        keys[namespace] = {"KUBEMR_S3_ACCESS_KEY": namespace, "KUBEMR_S3_SECRET_KEY": secret}
        # What the team has, written with the root keys (as kubemr's operator or an admin would).
        root.write_bytes(f"s3://{namespace}.books/in/words.txt", TEXT.encode())
        root.write_bytes(f"s3://{WORK}/{namespace}/job-1234abcd/map-0/part", b"map output")
        root.write_bytes(f"s3://{WORK}/code/{namespace}/job-1234abcd.pkl", b"code")
        root.write_bytes(f"s3://{WORK}/_logs/{namespace}/job-1234abcd/map-00000/attempt-1.log",
                         b"a log")
        root.write_bytes(f"s3://{NODE_BUCKET}/{namespace}/job-1234abcd/map-0/part", b"on a node")
    return keys


def store_of(keys: dict, monkeypatch) -> S3Store:
    with monkeypatch.context() as env:
        for name, value in keys.items():
            env.setenv(name, value)
        return S3Store(os.environ["KUBEMR_S3_ENDPOINT"])


def test_a_team_reaches_its_buckets_and_its_namespaces_prefixes(teams, monkeypatch):
    namespace, keys = next(iter(teams.items()))
    store = store_of(keys, monkeypatch)
    for prefix in (f"s3://{namespace}.scratch/x/", f"s3://{WORK}/{namespace}/job-5678abcd/",
                   f"s3://{WORK}/code/{namespace}/mine/", f"s3://{NODE_BUCKET}/{namespace}/job-5/",
                   f"s3://{WORK}/_logs/{namespace}/job-5678abcd/map-00000/"):
        store.write_bytes(prefix + "a", b"data")
        store.copy(prefix + "a", prefix + "b")
        assert store.read_bytes(prefix + "b") == b"data"
        assert [o.uri for o in store.list(prefix)] == [prefix + "a", prefix + "b"]
        store.delete_prefix(prefix)
        assert store.list(prefix) == []
    assert store.read_bytes(f"s3://{WORK}/{namespace}/job-1234abcd/map-0/part") == b"map output"
    assert store.list(f"s3://{namespace}.books/in/")


def test_a_team_is_refused_another_teams_data(teams, monkeypatch):
    (a, keys), (b, _) = teams.items()
    store = store_of(keys, monkeypatch)
    theirs = [f"s3://{b}.books/in/words.txt", f"s3://{WORK}/{b}/job-1234abcd/map-0/part",
              f"s3://{WORK}/code/{b}/job-1234abcd.pkl",
              f"s3://{WORK}/_logs/{b}/job-1234abcd/map-00000/attempt-1.log",
              f"s3://{NODE_BUCKET}/{b}/job-1234abcd/map-0/part"]
    for uri in theirs:
        with pytest.raises(StorageError, match="AccessDenied"):
            store.read_bytes(uri)
        with pytest.raises(StorageError, match="AccessDenied"):
            store.write_bytes(uri, b"overwritten")
        with pytest.raises(StorageError, match="AccessDenied"):
            store.copy(uri, f"s3://{a}.books/stolen")
        with pytest.raises(StorageError, match="AccessDenied"):
            store.list(uri.rsplit("/", 1)[0] + "/")
    # Nor the names of what kubemr's buckets hold, nor a bucket in another team's name.
    for prefix in (f"s3://{WORK}/", f"s3://{NODE_BUCKET}/", f"s3://{WORK}/code/",
                   f"s3://{WORK}/_logs/"):
        with pytest.raises(StorageError, match="AccessDenied"):
            store.list(prefix)
    with pytest.raises(StorageError, match="AccessDenied"):
        store.write_bytes(f"s3://{b}.new/x", b"x")
    root = store_for(f"s3://{WORK}/")
    assert root.read_bytes(theirs[1]) == b"map output"


def test_a_job_runs_with_its_teams_keys_and_cannot_write_elsewhere(teams, tmp_path):
    (a, keys), (b, _) = teams.items()

    def run(name: str, output: str, intermediate: str) -> subprocess.CompletedProcess:
        manifest = {
            "apiVersion": "kubemr.io/v1alpha1", "kind": "MapReduceJob",
            "metadata": {"name": name, "namespace": a},
            "spec": {"input": {"uri": f"s3://{a}.books/in/"}, "output": {"uri": output},
                     "intermediate": {"uri": intermediate}, "mapper": "mapper",
                     "combiner": "reducer", "reducer": "reducer", "reducers": 2,
                     "maxAttempts": 1, "backoffSeconds": 0, "code": {"inline": WORDCOUNT}}}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(manifest))
        code = ("import sys\nfrom kubemr.client.cli import main\n"
                f"sys.exit(main(['run', {str(path)!r}, '--local']))\n")
        return subprocess.run([sys.executable, "-c", code], env={**os.environ, **keys},
                              capture_output=True, text=True, timeout=300)

    done = run("wc", f"s3://{a}.results/wc/", f"s3://{WORK}/{a}")
    assert done.returncode == 0, done.stderr
    store = store_for(f"s3://{a}.results/")
    got = Counter()
    for obj in store.list(f"s3://{a}.results/wc/"):
        if obj.uri.rsplit("/", 1)[1].startswith("part-"):
            for line in store.read_bytes(obj.uri).decode().splitlines():
                word, count = line.split("\t")
                got[word] += int(count)
    assert got == Counter(TEXT.split())
    for output, intermediate in ((f"s3://{b}.results/wc/", f"s3://{WORK}/{a}"),
                                 (f"s3://{a}.results/wc2/", f"s3://{WORK}/{b}")):
        refused = run("elsewhere", output, intermediate)
        assert refused.returncode != 0
        assert "AccessDenied" in refused.stderr or "cannot create bucket" in refused.stderr, \
            refused.stderr
