"""Two teams on one real MinIO, each with its own user scoped by a policy to its own bucket and
its own prefix of the work bucket. The operator's pass acts with each job's own credentials
(from the job's Secret, as its task pods do), so neither a team's code nor the operator acting
for that team can read, write or delete the other team's objects.

The pass runs against a stand-in for the API server (tests/unit/standin.py) whose "pods" are
worker processes given the job's Secret, as a kubelet would."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from kubemr_operator import reconcile as reconcile_module
from kubemr_operator.config import Settings

from kubemr.storage import Credentials, store_for, using
from tests.conftest import make_job
from tests.unit.standin import StandInCluster, job_object, run_to_the_end

pytestmark = pytest.mark.s3

WORDCOUNT = """
def mapper(offset, line):
    for word in line.split():
        yield word, 1

def reducer(word, counts):
    yield word, sum(counts)

def snooping(offset, line):
    from kubemr.storage import store_for
    yield store_for("s3://team-b/in/secret.txt").read_bytes("s3://team-b/in/secret.txt"), 1
"""


def policy(team: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:*"],
         "Resource": [f"arn:aws:s3:::{team}", f"arn:aws:s3:::{team}/*"]},
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": [f"arn:aws:s3:::kubemr-work/{team}/*"]},
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::kubemr-work"],
         "Condition": {"StringLike": {"s3:prefix": [f"{team}/*"]}}},
    ]}


@pytest.fixture(scope="module")
def teams(minio):
    from minio import Minio
    from minio.credentials import StaticProvider
    from minio.minioadmin import MinioAdmin

    host = minio.split("://", 1)[1]
    admin = MinioAdmin(endpoint=host, credentials=StaticProvider("kubemr", "kubemr-secret"),
                       secure=False)
    root = Minio(host, access_key="kubemr", secret_key="kubemr-secret", secure=False)
    secrets = {}
    for team in ("team-a", "team-b"):
        for bucket in (team, "kubemr-work"):
            if not root.bucket_exists(bucket):
                root.make_bucket(bucket)
        admin.policy_add(f"{team}-policy", policy=policy(team))
        admin.user_add(f"{team}-user", f"{team}-secret-key")
        admin.attach_policy([f"{team}-policy"], user=f"{team}-user")
        secrets[("team" + team[-2:], "minio-credentials")] = {
            "accessKey": f"{team}-user", "secretKey": f"{team}-secret-key"}
        store = store_for(f"s3://{team}/")
        store.write_bytes(f"s3://{team}/in/words.txt", f"{team} words {team}\n".encode() * 50)
    store_for("s3://team-b/").write_bytes("s3://team-b/in/secret.txt", b"team b only\n")
    return {"endpoint": minio, "secrets": secrets}


def run_job(tmp_path, teams, namespace: str, **spec_overrides) -> tuple[dict, StandInCluster]:
    team = "team" + namespace[-2:]
    spec = make_job(tmp_path, WORDCOUNT, f"s3://{team}/in/words.txt", reducer="reducer",
                    speculation=False, backoffSeconds=0, maxAttempts=1,
                    storage={"secretName": "minio-credentials"},
                    output={"uri": f"s3://{team}/out-{tmp_path.name}/"}).spec
    spec = {**json.loads(json.dumps(spec)), **spec_overrides}
    job = job_object(spec, name="wc", uid=f"{namespace}000000")
    job["metadata"]["namespace"] = namespace
    settings = Settings(work_uri="s3://kubemr-work", s3_endpoint=teams["endpoint"])
    scratch = tmp_path / "pods"
    scratch.mkdir(exist_ok=True)
    cluster = StandInCluster(job, scratch, settings)
    cluster.secrets = teams["secrets"]
    reconcile_module._caches.clear()
    run_to_the_end(job, cluster, settings)
    return job["status"], cluster


def as_team(teams, namespace: str):
    secret = teams["secrets"][(namespace, "minio-credentials")]
    return using(Credentials(secret["accessKey"], secret["secretKey"], teams["endpoint"]))


def test_a_team_job_runs_with_its_own_credentials(tmp_path, teams):
    status, _ = run_job(tmp_path, teams, "team-a")
    assert status["phase"] == "Succeeded", status.get("message")
    store = store_for("s3://team-a/")
    parts = [o.uri for o in store.list(f"s3://team-a/out-{tmp_path.name}/")
             if "part-" in o.uri]
    counts = Counter()
    for uri in parts:
        for line in store.read_bytes(uri).decode().splitlines():
            word, n = line.split("\t")
            counts[word] = int(n)
    assert counts == {"team-a": 100, "words": 50}
    assert store_for("s3://kubemr-work/").list("s3://kubemr-work/team-a/") == []


@pytest.mark.parametrize("field, value", [
    ("input", {"uris": ["s3://team-b/in/"], "format": "text", "splitSize": 1 << 20}),
    ("output", {"uri": "s3://team-b/out/", "format": "text"}),
])
def test_the_operator_acting_for_a_team_cannot_reach_the_other_teams_bucket(tmp_path, teams,
                                                                             field, value):
    status, cluster = run_job(tmp_path, teams, "team-a", **{field: value})
    assert status["phase"] == "Failed" and status["failureClass"] == "InvalidInput", status
    assert "refused" in status["message"] and "team-b" in status["message"]
    assert cluster.pods == {}
    assert store_for("s3://team-b/").read_bytes("s3://team-b/in/secret.txt") == b"team b only\n"
    assert not store_for("s3://team-b/").list("s3://team-b/out/")


def test_a_teams_code_cannot_read_the_other_teams_objects(tmp_path, teams):
    status, _ = run_job(tmp_path, teams, "team-a", mapper="snooping")
    assert status["phase"] == "Failed", status
    assert "team-b/in/secret.txt" in status["message"] and "refused" in status["message"]


def test_a_team_cannot_plant_objects_in_the_other_teams_work_prefix(teams):
    from kubemr.errors import StorageError

    with as_team(teams, "team-a"):
        with pytest.raises(StorageError, match="refused"):
            store_for("s3://kubemr-work/").write_bytes(
                "s3://kubemr-work/team-b/wc-team-b00/map-00000/COMMIT", b"{}")
        with pytest.raises(StorageError, match="refused"):
            store_for("s3://kubemr-work/").list("s3://kubemr-work/team-b/")
        store_for("s3://kubemr-work/").write_bytes("s3://kubemr-work/team-a/probe", b"ok")
        store_for("s3://kubemr-work/").delete("s3://kubemr-work/team-a/probe")
