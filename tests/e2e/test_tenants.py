"""Two tenants on the real cluster: two namespaces, each with its own MinIO user whose policy
(docs/multi-tenancy.md's) reaches only its own buckets and its namespace's prefixes of kubemr's
buckets, on the central server and on every node's server; each namespace's Secret holds its
own user's keys. Neither a tenant's code nor the operator acting for it reaches the other's
data, a task's word is never trusted, and kubemr deletes nothing it did not write.

The host reads and writes as the MinIO root user (the `storage` fixture's keys), except where a
test acts as a tenant (`acting_as`).
"""

from __future__ import annotations

import json
import pickle
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlparse

import pytest

from kubemr.errors import StorageError
from kubemr.storage import Credentials, store_for, using
from tests.e2e.conftest import SECRET, SYSTEM
from tests.e2e.test_operator import WORDCOUNT, corpus, job_manifest, output_counts, wait_until
from tests.s3.test_team_policy import team_policy

pytestmark = pytest.mark.e2e

WORK = "kubemr-work"  # the chart's workUri


@dataclass
class Tenant:
    namespace: str
    credentials: Credentials

    @property
    def bucket(self) -> str:
        """The tenant's own bucket, named as the guide says: `<namespace>.<name>`."""
        return f"s3://{self.namespace}.data"


def minio_servers(cluster, operator) -> dict[str, str]:
    """{bucket kubemr keeps there: endpoint} of the central server and each node's server."""
    servers = {}
    for service, bucket in [("minio", WORK), *[(f"minio-{n}", f"node-{n}") for n in operator]]:
        ip = cluster.get_json("service", service, "-n", SYSTEM)["spec"]["clusterIP"]
        servers[bucket] = f"http://{ip}:9000"
    return servers


@pytest.fixture(scope="module")
def tenants(cluster, storage, operator) -> Iterator[tuple[Tenant, Tenant]]:
    """Tenants a and b: a user and the guide's policy on every MinIO server (each server has
    users of its own), the tenant's keys in its namespace's Secret, and its own bucket."""
    from minio import Minio, MinioAdmin
    from minio.credentials import StaticProvider

    servers = minio_servers(cluster, operator)
    root = StaticProvider(storage["accessKey"], storage["secretKey"])
    admins = [MinioAdmin(endpoint=urlparse(e).netloc, credentials=root, secure=False)
              for e in servers.values()]
    for bucket, endpoint in servers.items():
        client = Minio(urlparse(endpoint).netloc, credentials=root, secure=False)
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)
    made = []
    for team in ("a", "b"):
        namespace = cluster.new_namespace(f"team-{team}")
        secret_key = uuid.uuid4().hex
        for admin in admins:
            admin.user_add(namespace, secret_key)
            admin.policy_add(namespace, policy=team_policy(namespace))
            admin.attach_policy([namespace], user=namespace)
        cluster.kubectl("create", "secret", "generic", SECRET, "-n", namespace,
                        f"--from-literal=accessKey={namespace}",
                        f"--from-literal=secretKey={secret_key}")
        made.append(Tenant(namespace, Credentials(namespace, secret_key, servers[WORK])))
    yield made[0], made[1]
    for admin in admins:
        for tenant in made:
            admin.user_remove(tenant.namespace)
            admin.policy_remove(tenant.namespace)


@contextmanager
def acting_as(tenant: Tenant) -> Iterator[None]:
    with using(tenant.credentials):
        yield


def snapshot(bucket: str) -> dict[str, bytes]:
    """Every object under the bucket with its bytes, read as root."""
    store = store_for(bucket + "/")
    return {o.uri: store.read_bytes(o.uri) for o in store.list(bucket + "/")}


def job_pods(cluster, namespace: str, name: str) -> list[dict]:
    return cluster.get_json("pods", "-n", namespace, "-l", f"kubemr.io/job={name}")["items"]


def ended(cluster, namespace: str, name: str, timeout: float = 300) -> dict:
    """The job once it has Succeeded or Failed."""
    def status() -> dict | None:
        found = cluster.get_json("mapreducejob", name, "-n", namespace).get("status") or {}
        return found if found.get("phase") in ("Succeeded", "Failed") else None

    return wait_until(status, timeout=timeout, what=f"{namespace}/{name} to end")


FORGER = WORDCOUNT + """
from kubemr.storage import store_for
TASK = json.loads(os.environ["KUBEMR_TASK"])

def forging(offset, line):
    # The first map task, with the tenant's own keys (its pod's), writes the COMMIT of every
    # reduce task under its job's work prefix, each naming data outside that prefix.
    if TASK["index"] == 0 and offset == 0:
        for r, data in enumerate(FORGED):
            uri = f"{TASK['work']}/reduce-{r:05d}/COMMIT"
            record = {"data": data.format(work=TASK["work"]), "attempt": 1, "counters": {}}
            store_for(uri).write_bytes(uri, json.dumps(record).encode())
    yield from mapper(offset, line)
"""


@pytest.mark.parametrize("named", ["theirs", "dotdot"])
def test_a_forged_commit_outside_the_jobs_prefix_is_neither_copied_nor_deleted(cluster,
                                                                                tenants, named):
    """Reduce task 0's COMMIT names b's object, or (dotdot) a name under the job's prefix whose
    `..` segments lead to b's work prefix; reduce task 1's, an object a's keys may read."""
    a, b = tenants
    theirs, own = f"{b.bucket}/keep/secret.txt", f"{a.bucket}/keep/mine.txt"
    store_for(theirs).write_bytes(theirs, b"tenant b only\n")
    store_for(own).write_bytes(own, b"a's own, outside the job's prefix\n")
    before = {**snapshot(a.bucket), **snapshot(b.bucket)}
    name = f"forger-{named}"
    corpus(f"{a.bucket}/{name}", files=1, lines=40)
    forged = theirs if named == "theirs" else \
        "{work}/reduce-00000/../../../" + f"{b.namespace}/victim-1234abcd/reduce-00000/attempt-1"
    code = FORGER + f"\nFORGED = {[forged, own]!r}\n"
    cluster.apply(job_manifest(name, a.namespace, f"{a.bucket}/{name}", mapper="forging",
                               reducers=2, code={"inline": code}))
    status = ended(cluster, a.namespace, name)
    assert status["phase"] == "Failed" and status["failureClass"] == "UntrustedCommit", status
    uid = cluster.get_json("mapreducejob", name, "-n", a.namespace)["metadata"]["uid"]
    forged = forged.format(work=f"s3://{WORK}/{a.namespace}/{name}-{uid[:8]}")
    assert f"the COMMIT of reduce task 0 names {forged!r}" in status["message"], status
    # No reduce task ran: the forged COMMITs stood for them, and the operator refused them.
    assert not [p for p in job_pods(cluster, a.namespace, name)
                if p["metadata"]["labels"]["kubemr.io/task-type"] == "reduce"]
    after = {**snapshot(a.bucket), **snapshot(b.bucket)}
    assert after[theirs] == before[theirs] and after[own] == before[own]
    assert not [uri for uri in after if uri.startswith(f"{a.bucket}/{name}/out/")]


def planted_pickle(target: str) -> bytes:
    """A batch of map output that, once unpickled, writes `target` with the keys of whoever
    unpickles it."""
    class Plant:
        def __reduce__(self):
            return exec, ("from kubemr.storage import store_for\n"
                          f"store_for({target!r}).write_bytes({target!r}, b'the plant ran')",)

    return pickle.dumps([Plant()])


def suspended(cluster, namespace: str, name: str) -> dict | None:
    job = cluster.get_json("mapreducejob", name, "-n", namespace)
    return job if (job.get("status") or {}).get("phase") == "Suspended" else None


def test_a_pickle_planted_by_another_tenant_is_never_executed(cluster, tenants):
    a, b = tenants
    alive = f"{a.bucket}/plant-is-live"
    pickle.loads(planted_pickle(alive))  # the plant does run where it is unpickled
    assert store_for(alive).read_bytes(alive) == b"the plant ran"
    ran = f"{b.bucket}/the-plant-ran"
    want = corpus(f"{b.bucket}/victim", files=2, lines=200)
    cluster.apply(job_manifest("victim", b.namespace, f"{b.bucket}/victim", suspend=True))
    # Suspended, the job is planned and its work prefix known, and no task has run yet.
    job = wait_until(lambda: suspended(cluster, b.namespace, "victim"),
                     what="the victim job planned")
    folder = f"victim-{job['metadata']['uid'][:8]}"
    node_buckets = [f"node-{n}" for n in cluster.worker_nodes()]
    plant = planted_pickle(ran)
    with acting_as(a):
        # Where b's reduce tasks read (map outputs on the central and the node servers, and the
        # COMMITs naming them), a's keys are refused.
        for bucket in [WORK, *node_buckets]:
            for name in ("map-00000/attempt-1.out", "map-00000/COMMIT"):
                uri = f"s3://{bucket}/{b.namespace}/{folder}/{name}"
                with pytest.raises(StorageError, match="AccessDenied"):
                    store_for(uri).write_bytes(uri, plant)
        # The same names in a's own prefix are a's to write, and nothing of b's reads them.
        planted = [f"s3://{bucket}/{a.namespace}/{folder}/map-00000/attempt-1.out"
                   for bucket in [WORK, *node_buckets]]
        for uri in planted:
            store_for(uri).write_bytes(uri, plant)
    cluster.kubectl("patch", "mapreducejob", "victim", "-n", b.namespace, "--type", "merge",
                    "-p", json.dumps({"spec": {"suspend": False}}))
    status = ended(cluster, b.namespace, "victim")
    assert status["phase"] == "Succeeded", status
    assert output_counts(f"{b.bucket}/victim") == want
    assert not store_for(ran).exists(ran)
    # b's cleanup (just after the status says Succeeded), with b's keys, deleted b's work and
    # left a's plants where they were.
    work = [f"s3://{bucket}/{b.namespace}/{folder}/" for bucket in [WORK, *node_buckets]]
    wait_until(lambda: not any(store_for(uri).list(uri) for uri in work), timeout=60,
               what="the victim's intermediate data to be deleted")
    assert all(store_for(uri).read_bytes(uri) == plant for uri in planted)


def test_a_code_bundle_in_another_tenants_prefix_is_never_loaded(cluster, tenants):
    """Tenant a uploads a bundle where its own code bundles go; a job of b's that names it
    (b tricked into it) is refused it by MinIO at planning, before any pod exists."""
    a, b = tenants
    bundle = f"s3://{WORK}/code/{a.namespace}/tricked.pkl"
    ran = f"{b.bucket}/the-bundle-ran"
    with acting_as(a):
        store_for(bundle).write_bytes(bundle, planted_pickle(ran))
    corpus(f"{b.bucket}/tricked", files=1, lines=20)
    cluster.apply(job_manifest("tricked", b.namespace, f"{b.bucket}/tricked",
                               code={"pickle": bundle}))
    status = ended(cluster, b.namespace, "tricked")
    assert status["phase"] == "Failed" and status["failureClass"] == "InvalidInput", status
    assert f"refused to list {bundle}: AccessDenied" in status["message"], status
    assert not job_pods(cluster, b.namespace, "tricked")
    assert not store_for(ran).exists(ran)


def test_overwrite_next_to_a_foreign_object_fails_at_planning_and_leaves_it(cluster, tenants):
    a, _ = tenants
    prefix = f"{a.bucket}/shared/out"
    corpus(f"{a.bucket}/shared", files=1, lines=20)
    earlier = {"job": "earlier", "uid": "1234", "parts": 1, "counters": {},
               "committedAt": "2026-01-01T00:00:00Z"}
    for name, data in (("part-00000", b"alpha\t1\n"), ("_SUCCESS", json.dumps(earlier).encode()),
                       ("keep/x", b"not kubemr's\n")):
        store_for(prefix + "/").write_bytes(f"{prefix}/{name}", data)
    before = snapshot(a.bucket)
    cluster.apply(job_manifest("overwrite", a.namespace, f"{a.bucket}/shared",
                               output={"uri": prefix + "/", "overwrite": True}))
    status = ended(cluster, a.namespace, "overwrite")
    assert status["phase"] == "Failed" and status["failureClass"] == "InvalidInput", status
    assert "'keep/x'" in status["message"] and "kubemr did not write" in status["message"]
    assert not job_pods(cluster, a.namespace, "overwrite")
    assert snapshot(a.bucket) == before  # the earlier output, keep/x, and no lock left


def test_of_two_jobs_racing_for_one_output_exactly_one_succeeds(cluster, tenants):
    a, _ = tenants
    bucket = f"{a.bucket}/race"
    want = corpus(bucket, files=2, lines=200)
    jobs = [job_manifest(name, a.namespace, bucket) for name in ("racer-1", "racer-2")]
    cluster.apply({"apiVersion": "v1", "kind": "List", "items": jobs})
    statuses = {name: ended(cluster, a.namespace, name) for name in ("racer-1", "racer-2")}
    phases = sorted((s["phase"], name) for name, s in statuses.items())
    assert [p for p, _ in phases] == ["Failed", "Succeeded"], statuses
    (_, loser), (_, winner) = phases
    lost = statuses[loser]
    assert lost["failureClass"] == "InvalidInput", lost
    assert f"is in use by job {a.namespace}/{winner} " in lost["message"], lost
    assert output_counts(bucket) == want
    assert not store_for(bucket + "/").exists(f"{bucket}/out/_KUBEMR_LOCK")


@pytest.mark.parametrize("field", ["input", "output"])
def test_a_job_naming_another_tenants_bucket_fails_and_touches_nothing(cluster, tenants, field):
    a, b = tenants
    corpus(f"{a.bucket}/reach-{field}", files=1, lines=20)
    corpus(f"{b.bucket}/reach-{field}", files=1, lines=20)
    before = snapshot(b.bucket)
    spec = {"input": {"uri": f"{b.bucket}/reach-{field}/in/", "splitSize": 2000}} \
        if field == "input" else {"output": {"uri": f"{b.bucket}/reach-{field}/out/"}}
    name = f"reach-{field}"
    cluster.apply(job_manifest(name, a.namespace, f"{a.bucket}/reach-{field}", **spec))
    status = ended(cluster, a.namespace, name)
    assert status["phase"] == "Failed" and status["failureClass"] == "InvalidInput", status
    assert "refused" in status["message"] and "AccessDenied" in status["message"], status
    assert f"{b.bucket}/reach-{field}/" in status["message"], status
    assert not job_pods(cluster, a.namespace, name)
    assert snapshot(b.bucket) == before
