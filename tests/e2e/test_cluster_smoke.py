"""Smoke tests of the real cluster: scheduling on every node, pod-to-pod traffic
across nodes through MinIO's Service name and cluster DNS, host access to MinIO,
and pod deletion leaving its node clean."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

BASE_IMAGE = "kubemr/base-python:bookworm"

# SigV4 S3 client in plain Python, shared by the pods and the host side of the test.
S3_CLIENT = r'''
import datetime, hashlib, hmac, urllib.request, urllib.error

def s3(method, endpoint, path, access, secret, body=b""):
    host = endpoint.split("://", 1)[1]
    now = datetime.datetime.now(datetime.timezone.utc)
    amz, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    ph = hashlib.sha256(body).hexdigest()
    canon = "\n".join([method, path, "", f"host:{host}", f"x-amz-content-sha256:{ph}",
                       f"x-amz-date:{amz}", "", "host;x-amz-content-sha256;x-amz-date", ph])
    scope = f"{day}/us-east-1/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(canon.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (day, "us-east-1", "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    req = urllib.request.Request(endpoint + path, data=body if method == "PUT" else None,
                                 method=method)
    req.add_header("x-amz-date", amz)
    req.add_header("x-amz-content-sha256", ph)
    req.add_header("Authorization", "AWS4-HMAC-SHA256 Credential=" + access + "/" + scope
                   + ", SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=" + sig)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
'''

POD_SCRIPT = S3_CLIENT + r'''
import os, sys, time
ep = "http://minio.kubemr-system:9000"
ak, sk = os.environ["ACCESS_KEY"], os.environ["SECRET_KEY"]
me, peer, bucket = os.environ["NODE_NAME"], os.environ["PEER_NODE"], os.environ["BUCKET"]
deadline = time.time() + 90
while True:
    try:
        st, body = s3("PUT", ep, "/" + bucket, ak, sk)
        if st in (200, 409):
            break
        print("create bucket:", st, body[:200], flush=True)
    except OSError as e:
        print("create bucket:", e, flush=True)
    if time.time() > deadline:
        sys.exit("MinIO not reachable through its Service name")
    time.sleep(1)
st, body = s3("PUT", ep, f"/{bucket}/{me}.txt", ak, sk, f"hello from {me}".encode())
assert st == 200, (st, body)
print("wrote", f"{bucket}/{me}.txt", flush=True)
while True:
    st, body = s3("GET", ep, f"/{bucket}/{peer}.txt", ak, sk)
    if st == 200:
        break
    if time.time() > deadline:
        sys.exit(f"object of {peer} never appeared ({st})")
    time.sleep(1)
assert body.decode() == f"hello from {peer}", body
print(f"READ-OK {peer}: {body.decode()}", flush=True)
'''


def _s3_host():
    ns: dict = {}
    exec(S3_CLIENT, ns)  # the same client the pods run
    return ns["s3"]


def _secret(cluster, ns: str, name: str) -> dict[str, str]:
    data = cluster.get_json("secret", "-n", ns, name)["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def _wait(pred, timeout: float, what: str, interval: float = 1.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def _pod(name: str, node: str, command: list[str], env: dict[str, str] | None = None,
         restart: str = "Never") -> dict:
    envs = [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    envs += [{"name": k, "value": v} for k, v in (env or {}).items()]
    envs += [
        {"name": "ACCESS_KEY",
         "valueFrom": {"secretKeyRef": {"name": "minio-credentials", "key": "accessKey"}}},
        {"name": "SECRET_KEY",
         "valueFrom": {"secretKeyRef": {"name": "minio-credentials", "key": "secretKey"}}},
    ]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "kubemr-smoke"}},
        "spec": {
            "restartPolicy": restart,
            "nodeSelector": {"kubernetes.io/hostname": node},
            "terminationGracePeriodSeconds": 10,
            "containers": [{
                "name": "main", "image": BASE_IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": command, "env": envs,
            }],
        },
    }


def _copy_credentials(cluster, ns: str) -> dict[str, str]:
    cred = _secret(cluster, "kubemr-system", "minio-credentials")
    cluster.kubectl("-n", ns, "create", "secret", "generic", "minio-credentials",
                    f"--from-literal=accessKey={cred['accessKey']}",
                    f"--from-literal=secretKey={cred['secretKey']}")
    return cred


def test_every_node_ready_and_labelled(cluster):
    nodes = cluster.get_json("nodes")["items"]
    workers = [n for n in nodes if n["metadata"]["labels"].get("kubemr.io/role") == "worker"]
    assert len(workers) >= 3, [n["metadata"]["name"] for n in nodes]
    for n in nodes:
        ready = {c["type"]: c["status"] for c in n["status"]["conditions"]}["Ready"]
        assert ready == "True", n["metadata"]["name"]
        labels = n["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == n["metadata"]["name"]
    for n in workers:
        assert "node-role.kubernetes.io/worker" in n["metadata"]["labels"]


def test_pod_per_node_exchanges_objects_through_minio_service(cluster):
    nodes = cluster.worker_nodes()
    assert len(nodes) >= 3
    ns = cluster.new_namespace("smoke")
    cred = _copy_credentials(cluster, ns)
    bucket = f"smoke-{ns.rsplit('-', 1)[1]}"
    for i, node in enumerate(nodes):
        peer = nodes[(i + 1) % len(nodes)]
        pod = _pod(f"exchange-{i}", node, ["python3", "-c", POD_SCRIPT],
                   env={"PEER_NODE": peer, "BUCKET": bucket})
        pod["metadata"]["namespace"] = ns
        cluster.apply(pod)

    def phases():
        items = cluster.get_json("pods", "-n", ns)["items"]
        ph = {p["metadata"]["name"]: p["status"].get("phase") for p in items}
        if any(v == "Failed" for v in ph.values()):
            logs = {n: cluster.kubectl("-n", ns, "logs", n, check=False).stdout for n in ph}
            raise AssertionError(f"pod failed: {ph}\n{json.dumps(logs, indent=1)}")
        return items if all(v == "Succeeded" for v in ph.values()) else None

    items = _wait(phases, 240, "every exchange pod to succeed", interval=2)
    for p in items:
        i = int(p["metadata"]["name"].split("-")[1])
        assert p["spec"]["nodeName"] == nodes[i], "pod ran on another node than intended"
        peer = nodes[(i + 1) % len(nodes)]
        out = cluster.kubectl("-n", ns, "logs", p["metadata"]["name"]).stdout
        assert f"READ-OK {peer}: hello from {peer}" in out, out

    # The pods ran in different pod subnets (one bridge per node).
    ips = {p["spec"]["nodeName"]: p["status"].get("podIP") for p in items}
    assert len(set(ips.values())) == len(nodes), ips

    # The host reaches MinIO too (ClusterIP through kube-proxy) and sees every object.
    if cluster.mode == "local":
        svc = cluster.get_json("svc", "-n", "kubemr-system", "minio")
        ep = f"http://{svc['spec']['clusterIP']}:9000"
        s3 = _s3_host()
        for node in nodes:
            st, body = s3("GET", ep, f"/{bucket}/{node}.txt", cred["accessKey"], cred["secretKey"])
            assert (st, body.decode()) == (200, f"hello from {node}")


def test_deleted_running_pod_is_gone_and_its_node_clean(cluster):
    nodes = cluster.worker_nodes()
    node = nodes[1 % len(nodes)]
    ns = cluster.new_namespace("smoke-del")
    _copy_credentials(cluster, ns)
    pod = _pod("sleeper", node, ["python3", "-c",
               "import signal, sys, time\n"
               "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
               "print('sleeping', flush=True)\n"
               "time.sleep(3600)\n"])
    pod["metadata"]["namespace"] = ns
    cluster.apply(pod)

    def running():
        p = cluster.get_json("pod", "-n", ns, "sleeper")
        return p if p["status"].get("phase") == "Running" else None

    p = _wait(running, 120, "sleeper Running")
    assert p["spec"]["nodeName"] == node
    uid = p["metadata"]["uid"]
    cid = p["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]

    def kubelet_pods():
        raw = cluster.kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/pods").stdout
        return {i["metadata"]["uid"] for i in json.loads(raw)["items"]}

    assert uid in kubelet_pods()
    cluster.kubectl("-n", ns, "delete", "pod", "sleeper", "--wait=true", "--timeout=60s")
    gone = cluster.kubectl("-n", ns, "get", "pod", "sleeper", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    _wait(lambda: uid not in kubelet_pods(), 60, "the kubelet to forget the pod")

    if cluster.mode == "local":
        # Node-level cleanliness: no container, no pod directory, no pod cgroup.
        sock = f"/run/kubemr/{node}/containerd.sock"
        node_dir = Path(cluster.kubeconfig).parent / "state" / "nodes" / node

        def clean():
            tasks = subprocess.run(["ctr", "-a", sock, "-n", "k8s.io", "tasks", "ls", "-q"],
                                   capture_output=True, text=True).stdout.split()
            containers = subprocess.run(
                ["ctr", "-a", sock, "-n", "k8s.io", "containers", "ls", "-q"],
                capture_output=True, text=True).stdout.split()
            pod_dir = node_dir / "kubelet" / "pods" / uid
            cgroups = list(Path(f"/sys/fs/cgroup/pids/kubemr-{node}").rglob(f"*{uid}*"))
            left = {"task": cid in tasks, "container": cid in containers,
                    "pod_dir": pod_dir.exists(), "cgroups": [str(c) for c in cgroups]}
            return None if not any(left.values()) else (False, left)

        def check():
            r = clean()
            return True if r is None else False

        try:
            _wait(check, 90, "the node to be clean of the deleted pod", interval=2)
        except AssertionError as e:
            raise AssertionError(f"{e}: {clean()}") from None
