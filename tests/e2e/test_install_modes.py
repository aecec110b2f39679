"""The chart's install modes on the real cluster: the cluster-wide operator (release kubemr, the
`operator` fixture) with the task pods' NetworkPolicy of docs/multi-tenancy.md applied by hand,
and a second release that runs one namespace's jobs only.

NetworkPolicy is enforced only where the CNI implements it: kind's kindnet does, the local
cluster's bridge plugin does not. On both, the policy must be accepted and jobs must run under
it; on kind, a pod it selects must also fail to reach the API server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.error
import urllib.request

import pytest
import yaml

from tests.conftest import dashboard
from tests.e2e.conftest import REPO, SECRET, SYSTEM, helm_bin
from tests.e2e.test_operator import (
    corpus,
    job_manifest,
    new_bucket,
    output_counts,
    wait_for,
    wait_until,
)

pytestmark = pytest.mark.e2e

RELEASE = "kubemr-ns"
PROBE = """
import json, socket
def reach(host, port):
    try:
        socket.create_connection((host, port), timeout=5).close()
        return "open"
    except OSError as e:
        return type(e).__name__
print(json.dumps({"storage": reach("minio.kubemr-system", 9000),
                  "api": reach("kubernetes.default.svc", 443)}))
"""


def can_i(cluster, service_account: str, *args: str) -> bool:
    result = cluster.kubectl("auth", "can-i", *args, "--as", service_account, check=False)
    return result.stdout.strip() == "yes"


def guide_network_policy(namespace: str) -> dict:
    text = (REPO / "docs" / "multi-tenancy.md").read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S)
                if "kind: NetworkPolicy" in b]
    policy = yaml.safe_load(block)
    policy["metadata"]["namespace"] = namespace
    return policy


def probe(cluster, namespace: str, image: str) -> dict:
    """What a pod labelled as a task pod (so selected by the task pods' NetworkPolicy) reaches."""
    name = "netpol-probe"
    cluster.apply({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {
            "app.kubernetes.io/managed-by": "kubemr-operator", "kubemr.io/job": name}},
        "spec": {
            "restartPolicy": "Never", "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "probe", "image": image, "imagePullPolicy": "IfNotPresent",
                "command": ["python", "-c", PROBE],
                "securityContext": {"readOnlyRootFilesystem": True,
                                    "allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]}}}]}})
    wait_until(lambda: cluster.get_json("pod", name, "-n", namespace)["status"].get("phase")
               in ("Succeeded", "Failed"), timeout=120, what="the probe pod to finish")
    reached = json.loads(cluster.kubectl("logs", name, "-n", namespace).stdout)
    cluster.kubectl("delete", "pod", name, "-n", namespace, "--wait=false")
    return reached


def check_network_policy(cluster, namespace: str, image: str) -> None:
    reached = probe(cluster, namespace, image)
    assert reached["storage"] == "open", reached
    if cluster.mode == "kind":  # kindnet enforces NetworkPolicy; the bridge plugin does not
        assert reached["api"] != "open", reached


def operator_image(cluster, namespace: str, deployment: str) -> str:
    found = cluster.get_json("deployment", deployment, "-n", namespace)
    return found["spec"]["template"]["spec"]["containers"][0]["image"]


def test_cluster_wide_mode_with_the_guides_network_policy(cluster, ns):
    account = f"system:serviceaccount:{SYSTEM}:kubemr-operator"
    assert can_i(cluster, account, "create", "pods", "-n", ns)
    assert can_i(cluster, account, "list", "mapreducejobs.kubemr.io", "--all-namespaces")
    assert can_i(cluster, account, "update", "leases/kubemr-operator", "-n", SYSTEM)
    assert not can_i(cluster, account, "update", "leases/kubemr-operator", "-n", ns)
    assert not can_i(cluster, account, "update", "leases/another", "-n", SYSTEM)
    cluster.apply(guide_network_policy(ns))
    bucket = new_bucket()
    want = corpus(bucket, files=2, lines=300)
    cluster.apply(job_manifest("fenced", ns, bucket))
    wait_for(cluster, ns, "fenced", "Complete")
    assert output_counts(bucket) == want
    check_network_policy(cluster, ns, operator_image(cluster, SYSTEM, "kubemr-operator"))


def check_dashboard(cluster, release_ns: str, watched: str, other: str) -> None:
    """The release's dashboard, through `kubemr ui`: the watched namespace's job, its events and
    a log (the Role's rights), and nothing of the other namespace."""
    env = dict(os.environ, KUBECONFIG=cluster.kubeconfig,
               PATH=os.path.dirname(cluster.kubectl_bin) + os.pathsep + os.environ["PATH"])

    def get(url: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    with dashboard(["-n", release_ns, "--service", f"{RELEASE}-dashboard"], env=env) as url:
        status, jobs = get(url)
        assert status == 200 and f"/jobs/{watched}/wc" in jobs and other not in jobs
        status, page = get(f"{url}jobs/{watched}/wc")
        assert status == 200 and "<td>Normal</td><td>Planned</td>" in page  # an event
        status, log = get(f"{url}jobs/{watched}/wc/logs/reduce-0/1")
        assert status == 200 and '<pre id="log">' in log
        assert get(f"{url}jobs/{other}/wc")[0] == 404


def test_a_namespaced_release_runs_the_jobs_of_its_namespaces_only(cluster, storage, operator):
    release_ns = cluster.new_namespace("kubemr-ns")
    team_a, team_b = cluster.new_namespace("team-a"), cluster.new_namespace("team-b")
    for namespace in (release_ns, team_a, team_b):
        cluster.kubectl("create", "secret", "generic", SECRET, "-n", namespace,
                        f"--from-literal=accessKey={storage['accessKey']}",
                        f"--from-literal=secretKey={storage['secretKey']}")
    bucket_a, bucket_b = new_bucket(), new_bucket()
    want_a, want_b = corpus(bucket_a, files=2, lines=300), corpus(bucket_b, files=1, lines=100)
    # The cluster-wide operator runs every namespace's jobs: it stops for the test.
    cluster.kubectl("scale", "deployment/kubemr-operator", "-n", SYSTEM, "--replicas=0")
    try:
        wait_until(lambda: not cluster.get_json("pods", "-n", SYSTEM, "-l",
                                                "app.kubernetes.io/component=operator")["items"],
                   what="no cluster-wide operator")
        # Storage is the MinIO of kubemr-system, not of the release namespace: the task pods'
        # NetworkPolicy lets them reach it through taskNetworkPolicyEgress.
        egress = [{"to": [{"namespaceSelector": {"matchLabels": {
                              "kubernetes.io/metadata.name": SYSTEM}},
                           "podSelector": {"matchLabels": {
                               "app.kubernetes.io/component": "minio"}}}],
                   "ports": [{"protocol": "TCP", "port": 9000}]}]
        subprocess.run([helm_bin(), "install", RELEASE, str(REPO / "charts" / "kubemr"),
                        "--kubeconfig", cluster.kubeconfig, "--namespace", release_ns,
                        "--skip-crds", "--set", "replicas=1",
                        "--set", f"watchNamespaces={{{team_a}}}",
                        "--set", f"storageEndpoint=http://minio.{SYSTEM}:9000",
                        "--set", "reconcileSeconds=1", "--set", "heartbeatSeconds=3",
                        "--set", "taskNetworkPolicy=true",
                        "--set-json", f"taskNetworkPolicyEgress={json.dumps(egress)}",
                        "--wait", "--timeout", "300s"], check=True, capture_output=True,
                       text=True)
        account = f"system:serviceaccount:{release_ns}:{RELEASE}-operator"
        assert can_i(cluster, account, "create", "pods", "-n", team_a)
        assert can_i(cluster, account, "patch", "mapreducejobs.kubemr.io", "-n", team_a,
                     "--subresource", "status")
        assert not can_i(cluster, account, "create", "pods", "-n", team_b)
        assert not can_i(cluster, account, "list", "mapreducejobs.kubemr.io", "-n", team_b)
        assert not can_i(cluster, account, "list", "mapreducejobs.kubemr.io", "--all-namespaces")
        assert can_i(cluster, account, "list", "events", "-n", team_a)  # the dashboard's
        assert can_i(cluster, account, "get", "pods", "-n", team_a, "--subresource", "log")
        assert not can_i(cluster, account, "list", "events", "-n", team_b)
        assert can_i(cluster, account, "list", "nodes")
        assert can_i(cluster, account, "update", "leases/kubemr-operator", "-n", release_ns)
        assert not can_i(cluster, account, "update", "leases/kubemr-operator", "-n", SYSTEM)
        policy = cluster.get_json("networkpolicy", f"{RELEASE}-tasks", "-n", team_a)
        assert policy["spec"]["policyTypes"] == ["Egress"]
        assert not cluster.get_json("networkpolicies", "-n", team_b)["items"]

        cluster.apply(job_manifest("wc", team_a, bucket_a))
        cluster.apply(job_manifest("wc", team_b, bucket_b))
        job = wait_for(cluster, team_a, "wc", "Complete")
        assert output_counts(bucket_a) == want_a
        assert job["status"]["attempts"] == job["status"]["maps"]["total"] + 3
        # All that while, the job of team-b, which the operator does not watch, got nothing.
        assert not cluster.get_json("mapreducejob", "wc", "-n", team_b).get("status")
        assert not cluster.get_json("pods", "-n", team_b)["items"]
        check_network_policy(cluster, team_a, operator_image(cluster, release_ns,
                                                             f"{RELEASE}-operator"))
        check_dashboard(cluster, release_ns, team_a, team_b)
    finally:
        subprocess.run([helm_bin(), "uninstall", RELEASE, "--kubeconfig", cluster.kubeconfig,
                        "--namespace", release_ns, "--wait", "--timeout", "120s"],
                       capture_output=True, text=True)
        cluster.kubectl("scale", "deployment/kubemr-operator", "-n", SYSTEM, "--replicas=2")
        cluster.kubectl("rollout", "status", "deployment/kubemr-operator", "-n", SYSTEM,
                        "--timeout=180s")
    # Back, the cluster-wide operator runs team-b's job.
    wait_for(cluster, team_b, "wc", "Complete")
    assert output_counts(bucket_b) == want_b
