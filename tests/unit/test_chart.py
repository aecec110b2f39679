"""The helm chart without a cluster: lint, the values schema, NOTES and the `helm test` hook.

helm is the one hack/cluster.sh builds (~/.cache/kubemr/cluster/bin/helm, or the cached
~/.cache/kubemr/bin/helm-<HELM_VERSION>), else the one on PATH. Without helm these tests skip,
unless KUBEMR_E2E_REQUIRED=1 (CI, where the cluster and its helm are up), where they fail.
The `helm test` program itself (files/helm_test.py) is also run here with the local runner.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from unittest import mock

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kubemr"
CACHE = Path(os.environ.get("KUBEMR_CACHE", Path.home() / ".cache" / "kubemr"))


def _helm() -> str:
    versions = (REPO / "hack" / "lib" / "versions.sh").read_text()
    version = re.search(r'HELM_VERSION="\$\{HELM_VERSION:-([^}]+)\}"', versions).group(1)
    for candidate in (CACHE / "cluster" / "bin" / "helm", CACHE / "bin" / f"helm-{version}"):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("helm")
    if found:
        return found
    message = "no helm: hack/cluster.sh build (or up) builds one, or install helm"
    if os.environ.get("KUBEMR_E2E_REQUIRED") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def helm():
    binary = _helm()

    def run(*args: str, chart: Path = CHART) -> subprocess.CompletedProcess:
        return subprocess.run([binary, *args, str(chart)], capture_output=True, text=True,
                              timeout=120)

    return run


PER_NODE = ["--set", "minioPerNode=true", "--set", "minioNodes={kubemr-worker,kubemr-worker2}"]
NAMESPACED = ["--set", "watchNamespaces={team-a,team-b}"]
EXTERNAL_S3_EGRESS = json.dumps([{"to": [{"ipBlock": {"cidr": "203.0.113.10/32"}}],
                                  "ports": [{"port": 443}]}])
NETWORK_POLICY = [*NAMESPACED, "--set", "taskNetworkPolicy=true",
                  "--set-json", f"taskNetworkPolicyEgress={EXTERNAL_S3_EGRESS}"]


@pytest.mark.parametrize("values", [
    [],
    PER_NODE,
    ["--set", "minio=true", "--set", "minioNodePort=30900"],
    ["--set", "storageEndpoint=https://s3.example.com", "--set", "storageSecret=my-keys",
     "--set", "workUri=s3://scratch/kubemr", "--set", "imagePullPolicy=Always"],
    ["--set", "serviceMonitor=true", "--set", "serviceMonitorLabels.release=prometheus"],
    ["--set", "metricsPort=0"],
    ["--set", "dashboardPort=0", "--set", "metricsPort=0"],
    NAMESPACED,
    [*NETWORK_POLICY, *PER_NODE],
], ids=["defaults", "minio-per-node", "shared-minio", "external-s3", "service-monitor",
        "no-metrics", "no-dashboard-no-metrics", "namespaced", "namespaced-network-policy"])
def test_helm_lint_is_clean_in_each_install_mode(helm, values):
    result = helm("lint", "--strict", *values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


@pytest.mark.parametrize("values, complaint", [
    (["--set-string", "reconcileSeconds=2"], "/reconcileSeconds': got string, want number"),
    (["--set", "heartbeatSeconds=0"], "/heartbeatSeconds"),
    (["--set", "replicas=1.5"], "/replicas"),
    (["--set", "imagePullPolicy=Sometimes"], "/imagePullPolicy': value must be one of"),
    (["--set", "minioPerNode=yes"], "/minioPerNode': got string, want boolean"),
    (["--set", "minioPerNode=true"], "/minioNodes': minItems"),
    (["--set", "minioNodePort=high"], "/minioNodePort': got string, want integer"),
    (["--set", "storageEndpoint=minio:9000"], "/storageEndpoint"),
    (["--set", "workUri=/tmp/work"], "/workUri"),
    (["--set", "resources.requests.cpu=lots"], "/resources/requests/cpu"),
    (["--set", "operatorReplicas=2"], "additional properties 'operatorReplicas' not allowed"),
    (["--set", "metricsPort=70000"], "/metricsPort': maximum"),
    (["--set", "serviceMonitor=true", "--set", "metricsPort=0"], "/metricsPort': minimum"),
    (["--set", "serviceMonitorLabels.team=7"], "/serviceMonitorLabels/team': got number"),
    (["--set", "dashboardPort=-1"], "/dashboardPort': minimum"),
    (["--set", "watchNamespaces={Team_A}"], "/watchNamespaces/0': 'Team_A' does not match"),
    (["--set", "watchNamespaces={team-a,team-a}"], "/watchNamespaces': items at 0 and 1 are equal"),
    (["--set", "watchNamespaces=team-a"], "/watchNamespaces': got string, want array"),
    (["--set", "taskNetworkPolicy=true"], "/watchNamespaces': minItems"),
    ([*NAMESPACED, "--set-json", "taskNetworkPolicyEgress=[{}]"],
     "/taskNetworkPolicyEgress/0': minProperties"),
    ([*NAMESPACED, "--set-json", 'taskNetworkPolicyEgress=[{"ports": [{"protocol": "ICMP"}]}]'],
     "/taskNetworkPolicyEgress/0/ports/0/protocol': value must be one of"),
    ([*NAMESPACED, "--set-json", 'taskNetworkPolicyEgress=[{"to": [{"ipBlock": {"cidr": "s3"}}]}]'],
     "/taskNetworkPolicyEgress/0/to/0/ipBlock/cidr"),
], ids=["string-for-number", "zero-seconds", "fractional-replicas", "pull-policy",
        "string-for-bool", "per-node-without-nodes", "node-port-not-a-number",
        "endpoint-without-scheme", "work-uri-not-s3", "bad-quantity", "unknown-value",
        "port-too-high", "service-monitor-without-metrics", "label-not-a-string",
        "dashboard-port-negative",
        "namespace-name", "namespace-twice", "namespaces-not-a-list",
        "network-policy-without-namespaces", "egress-rule-allowing-everything",
        "egress-protocol", "egress-cidr"])
def test_a_wrong_value_is_refused_by_the_schema(helm, values, complaint):
    for command in (["lint"], ["template", "kubemr"]):
        result = helm(*command, *values)
        assert result.returncode != 0, f"helm {command[0]} {values} was accepted"
        assert complaint in result.stdout + result.stderr, result.stdout + result.stderr


def test_every_value_is_typed_in_the_schema():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(values)
    for name, prop in schema["properties"].items():
        assert "type" in prop, f"{name} has no type"
        assert prop.get("description"), f"{name} has no description"


def _rendered(helm, *values: str) -> list[dict]:
    result = helm("template", "kubemr", "--namespace", "kubemr-system", *values)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_the_metrics_port_is_served_by_a_service_and_scraped_by_an_optional_servicemonitor(
        helm):
    def objects(*values: str) -> dict:
        return {(d["kind"], d["metadata"]["name"]): d for d in _rendered(helm, *values)}

    docs = objects()
    (container,) = docs["Deployment", "kubemr-operator"]["spec"]["template"]["spec"][
        "containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KUBEMR_METRICS_PORT"] == "8080"
    assert container["ports"][0] == {"name": "metrics", "containerPort": 8080, "protocol": "TCP"}
    service = docs["Service", "kubemr-metrics"]
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8080,
                                         "targetPort": "metrics", "protocol": "TCP"}]
    pod_labels = docs["Deployment", "kubemr-operator"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert not [k for k in docs if k[0] == "ServiceMonitor"]

    docs = objects("--set", "serviceMonitor=true", "--set", "metricsPort=9102",
                   "--set", "serviceMonitorLabels.release=prometheus")
    monitor = docs["ServiceMonitor", "kubemr-operator"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics"}]
    service = docs["Service", "kubemr-metrics"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        service["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["port"] == 9102

    docs = objects("--set", "metricsPort=0")
    (container,) = docs["Deployment", "kubemr-operator"]["spec"]["template"]["spec"][
        "containers"]
    assert [p["name"] for p in container["ports"]] == ["dashboard"]
    assert ("Service", "kubemr-metrics") not in docs
    assert {e["name"]: e.get("value") for e in container["env"]}["KUBEMR_METRICS_PORT"] == "0"


def test_the_dashboard_port_is_served_by_a_cluster_ip_service_of_its_own(helm):
    def objects(*values: str) -> dict:
        return {(d["kind"], d["metadata"]["name"]): d for d in _rendered(helm, *values)}

    docs = objects()
    deployment = docs["Deployment", "kubemr-operator"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {e["name"]: e.get("value") for e in container["env"]}["KUBEMR_DASHBOARD_PORT"] == \
        "8081"
    assert {"name": "dashboard", "containerPort": 8081, "protocol": "TCP"} in container["ports"]
    service = docs["Service", "kubemr-dashboard"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "dashboard", "port": 8081,
                                         "targetPort": "dashboard", "protocol": "TCP"}]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    # Not a metrics endpoint: a ServiceMonitor does not select it.
    monitor = objects("--set", "serviceMonitor=true")["ServiceMonitor", "kubemr-operator"]
    assert not monitor["spec"]["selector"]["matchLabels"].items() <= \
        service["metadata"]["labels"].items()

    # One port each (helm lint only notes a template's fail: helm template and install refuse).
    clash = helm("template", "kubemr", "--set", "dashboardPort=8080")
    assert clash.returncode != 0
    assert "dashboardPort and metricsPort must differ" in clash.stderr

    docs = objects("--set", "dashboardPort=0")
    (container,) = docs["Deployment", "kubemr-operator"]["spec"]["template"]["spec"][
        "containers"]
    assert [p["name"] for p in container["ports"]] == ["metrics"]
    assert ("Service", "kubemr-dashboard") not in docs
    docs = objects("--set", "dashboardPort=0", "--set", "metricsPort=0")
    (container,) = docs["Deployment", "kubemr-operator"]["spec"]["template"]["spec"][
        "containers"]
    assert "ports" not in container


def test_template_renders_the_helm_test_hook(helm):
    docs = _rendered(helm)
    hooks = [d for d in docs if (d["metadata"].get("annotations") or {}).get("helm.sh/hook")]
    # `helm test --logs` reads a pod's log for every test hook: the pod is the only hook.
    assert [(d["kind"], d["metadata"]["name"]) for d in hooks] == [("Pod", "kubemr-test")]
    (pod,) = hooks
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    test_objects = {(d["kind"], d["metadata"]["name"]): d for d in docs
                    if d["metadata"]["labels"].get("app.kubernetes.io/component") == "test"}
    assert set(test_objects) == {("ServiceAccount", "kubemr-test"), ("Role", "kubemr-test"),
                                 ("RoleBinding", "kubemr-test"), ("ConfigMap", "kubemr-test"),
                                 ("Pod", "kubemr-test")}
    assert pod["spec"]["serviceAccountName"] == "kubemr-test"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "kubemr/kubemr:dev"
    assert container["command"] == ["python3", "/etc/kubemr-test/helm_test.py"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KUBEMR_S3_ENDPOINT"] == "http://minio.kubemr-system:9000"
    assert env["KUBEMR_WORK_URI"] == "s3://kubemr-work"
    program = test_objects["ConfigMap", "kubemr-test"]["data"]["helm_test.py"]
    assert program == (CHART / "files" / "helm_test.py").read_text()
    rules = test_objects["Role", "kubemr-test"]["rules"]
    assert {"create", "get", "delete"} <= set(rules[0]["verbs"])
    assert rules[0]["resources"] == ["mapreducejobs"]


def test_notes_say_how_to_check_the_install_and_run_a_first_job(helm, tmp_path):
    # `helm template` renders NOTES.txt but does not print it, and `helm install --dry-run` wants
    # a cluster: a copy of the chart renders the same file with `tpl` into a ConfigMap.
    chart = tmp_path / "kubemr"
    shutil.copytree(CHART, chart)
    shutil.copy(CHART / "templates" / "NOTES.txt", chart / "files" / "NOTES.txt")
    (chart / "templates" / "zz-notes.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n'
        'data:\n  notes: {{ tpl (.Files.Get "files/NOTES.txt") . | quote }}\n')

    def notes(*values: str) -> str:
        result = helm("template", "kubemr", "--namespace", "kubemr-system",
                      "--show-only", "templates/zz-notes.yaml", *values, chart=chart)
        assert result.returncode == 0, result.stderr
        return yaml.safe_load(result.stdout)["data"]["notes"]

    text = notes()
    assert "helm test kubemr -n kubemr-system --logs" in text
    assert "deploy/kubemr-operator" in text
    assert "kind: MapReduceJob" in text and "kubectl apply -f -" in text
    assert "kubectl wait --for=condition=Complete mapreducejob/wordcount" in text
    assert "kubectl mr describe wordcount" in text
    assert "Secret minio-credentials" in text
    assert "http://minio.kubemr-system:9000" in text
    assert "kubemr-worker2" not in text
    assert "kubemr-worker, kubemr-worker2 (bucket node-<node>)" in notes(*PER_NODE)
    assert "Deployment minio" not in text and "Deployment minio" in notes("--set", "minio=true")
    assert "services/kubemr-metrics:metrics/proxy/metrics" in text
    assert "kubemr-metrics" not in notes("--set", "metricsPort=0")
    assert "kubectl mr ui -n kubemr-system\n" in text and "5. Metrics" in text
    assert "kubemr-dashboard" not in notes("--set", "dashboardPort=0")
    # The manifest in the notes is a valid job.
    from kubemr.spec.manifest import parse_manifest

    def first_job(text: str) -> dict:
        block = text.split("<<'YAML'\n", 1)[1].split("     YAML\n", 1)[0]
        return yaml.safe_load("\n".join(line[5:] for line in block.splitlines()))

    assert parse_manifest(first_job(text)).name == "wordcount"
    # Cluster-wide, or for a list of namespaces: the first job goes to the first of them, and
    # helm test needs the release namespace among them.
    assert "MapReduceJobs of every namespace" in text
    namespaced = notes(*NAMESPACED, "--set", "taskNetworkPolicy=true")
    assert "MapReduceJobs of team-a, team-b only" in namespaced
    assert "NetworkPolicy kubemr-tasks" in namespaced and "NetworkPolicy" not in text
    assert first_job(namespaced)["metadata"]["namespace"] == "team-a"
    assert "kubectl wait --for=condition=Complete mapreducejob/wordcount -n team-a" in namespaced
    assert "kubectl -n team-a create secret generic minio-credentials" in namespaced
    assert "kubemr-system to watchNamespaces to use it" in namespaced
    assert "to watchNamespaces to use it" not in text
    assert "to watchNamespaces to use it" not in notes(
        "--set", "watchNamespaces={team-a,kubemr-system}")


def _helm_test_program():
    spec = importlib.util.spec_from_file_location("helm_test", CHART / "files" / "helm_test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_helm_test_job_counts_its_words_with_the_local_runner(tmp_path):
    from kubemr.client.sdk import read_output
    from kubemr.runtime.local import run_local
    from kubemr.spec.manifest import parse_manifest

    program = _helm_test_program()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "words.txt").write_text(program.TEXT)
    manifest = program.job_manifest("kubemr-test-abc123", "kubemr-system", tmp_path.as_uri())
    run_local(parse_manifest(manifest), workers=2)
    got = dict(read_output(manifest["spec"]["output"]["uri"], "jsonl"))
    assert got == dict(Counter(program.TEXT.split()))


# ---------------------------------------------------------------- install modes
# What the operator asks of the API server (kubemr_operator/kube.py and leader.py, and kopf's
# watches), as (API group, resource, verb): in the namespaces whose jobs it runs, ...
IN_JOB_NAMESPACES = [
    *[("kubemr.io", "mapreducejobs", verb) for verb in ("get", "list", "watch", "delete")],
    ("kubemr.io", "mapreducejobs/status", "patch"),
    *[("", "pods", verb) for verb in ("list", "watch", "create", "delete")],
    ("", "secrets", "get"),  # the job's storage Secret: its data is read with the job's keys
    ("", "events", "create"),
    ("", "events", "list"),  # the dashboard: a job's events
    ("", "pods/log", "get"),  # the dashboard: a running attempt's log
]
# ... cluster-wide, in both modes (nodes: NodeLost; namespaces and CRDs: kopf) ...
CLUSTER_READS = [("", "nodes", "list"), ("", "namespaces", "list"), ("", "namespaces", "watch"),
                 ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
                 ("apiextensions.k8s.io", "customresourcedefinitions", "watch")]
# ... and its Lease in the release namespace: (verb, name).
LEASE = [("create", None), ("get", "kubemr-operator"), ("update", "kubemr-operator")]


def _allows(rules: list[dict], group: str, resource: str, verb: str, name: str | None = None):
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"]
               and (not r.get("resourceNames") or name in r["resourceNames"]) for r in rules)


def _objects(docs: list[dict], kind: str) -> dict:
    """The operator's objects of `kind` (not helm test's), by (namespace, name)."""
    return {(d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs
            if d["kind"] == kind and d["metadata"]["labels"].get("app.kubernetes.io/component")
            != "test"}


def _operator_env(docs: list[dict]) -> dict:
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


def _check_lease_role(docs: list[dict]) -> None:
    roles = _objects(docs, "Role")
    rules = roles["kubemr-system", "kubemr-operator-leader-election"]["rules"]
    for verb, name in LEASE:
        assert _allows(rules, "coordination.k8s.io", "leases", verb, name), (verb, name)
    assert not _allows(rules, "coordination.k8s.io", "leases", "update", "someone-elses")
    binding = _objects(docs, "RoleBinding")["kubemr-system", "kubemr-operator-leader-election"]
    assert binding["roleRef"]["name"] == "kubemr-operator-leader-election"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kubemr-operator",
                                    "namespace": "kubemr-system"}]


def test_cluster_wide_mode_runs_every_namespace_with_a_cluster_role(helm):
    docs = _rendered(helm)
    (cluster_role,) = _objects(docs, "ClusterRole").values()
    for call in IN_JOB_NAMESPACES + CLUSTER_READS:
        assert _allows(cluster_role["rules"], *call), call
    assert not any("leases" in r["resources"] for r in cluster_role["rules"])
    _check_lease_role(docs)
    assert set(_objects(docs, "Role")) == {("kubemr-system", "kubemr-operator-leader-election")}
    assert not _objects(docs, "NetworkPolicy")
    assert "KUBEMR_NAMESPACES" not in _operator_env(docs)


def test_namespaced_mode_has_a_role_in_each_namespace_and_reads_only_cluster_wide(helm):
    from kubemr_operator.config import Settings

    docs = _rendered(helm, *NAMESPACED)
    (cluster_role,) = _objects(docs, "ClusterRole").values()
    for call in CLUSTER_READS:
        assert _allows(cluster_role["rules"], *call), call
    for rule in cluster_role["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
        assert not {"pods", "mapreducejobs", "secrets", "leases"} & set(rule["resources"]), rule
    (binding,) = _objects(docs, "ClusterRoleBinding").values()
    assert binding["roleRef"]["name"] == cluster_role["metadata"]["name"]
    _check_lease_role(docs)
    roles, bindings = _objects(docs, "Role"), _objects(docs, "RoleBinding")
    assert set(roles) == {("kubemr-system", "kubemr-operator-leader-election"),
                          ("team-a", "kubemr-operator"), ("team-b", "kubemr-operator")}
    for namespace in ("team-a", "team-b"):
        for call in IN_JOB_NAMESPACES:
            assert _allows(roles[namespace, "kubemr-operator"]["rules"], *call), call
        binding = bindings[namespace, "kubemr-operator"]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": "kubemr-operator"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kubemr-operator",
                                        "namespace": "kubemr-system"}]
    env = _operator_env(docs)["KUBEMR_NAMESPACES"]
    with mock.patch.dict(os.environ, {"KUBEMR_NAMESPACES": env}):
        assert Settings.from_env().namespaces == ("team-a", "team-b")
    assert not _objects(docs, "NetworkPolicy")


def test_the_task_network_policy_lets_task_pods_reach_only_storage_and_dns(helm):
    from kubemr.spec.names import MANAGED_BY

    docs = _rendered(helm, *NETWORK_POLICY, *PER_NODE, "--set", "minio=true")
    policies = _objects(docs, "NetworkPolicy")
    assert set(policies) == {("team-a", "kubemr-tasks"), ("team-b", "kubemr-tasks")}
    spec = policies["team-a", "kubemr-tasks"]["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/managed-by": MANAGED_BY}}
    assert spec["policyTypes"] == ["Egress"]
    storage, dns, extra = spec["egress"]
    (peer,) = storage["to"]
    assert peer["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "kubemr-system"}}
    assert storage["ports"] == [{"protocol": "TCP", "port": 9000}]
    # The selector takes in every MinIO server the chart runs: the shared one and each node's.
    minio_pods = [d["spec"]["template"]["metadata"]["labels"] for d in docs
                  if d["kind"] == "Deployment" and d["metadata"]["name"].startswith("minio")]
    assert len(minio_pods) == 3
    for labels in minio_pods:
        assert peer["podSelector"]["matchLabels"].items() <= labels.items()
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert [extra] == json.loads(EXTERNAL_S3_EGRESS)
    # Task pods carry the label the policy selects (a job's pod template may not set it).
    from kubemr_operator.config import Settings
    from kubemr_operator.pods import build_task_pod

    job = {"metadata": {"name": "wc", "namespace": "team-a", "uid": "0123456789"},
           "spec": {"input": {"uri": "s3://b/"}, "output": {"uri": "s3://b/out/"}}}
    pod = build_task_pod(job=job, task={"type": "map", "index": 0, "attempt": 1},
                         settings=Settings())
    assert spec["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()


def test_the_guides_network_policy_for_cluster_wide_mode_is_what_the_chart_renders(helm):
    text = (REPO / "docs" / "multi-tenancy.md").read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S)
                if "kind: NetworkPolicy" in b]
    manifest = yaml.safe_load(block)
    namespace = manifest["metadata"]["namespace"]
    docs = _rendered(helm, "--set", f"watchNamespaces={{{namespace}}}",
                     "--set", "taskNetworkPolicy=true")
    (rendered,) = _objects(docs, "NetworkPolicy").values()
    assert manifest["metadata"]["name"] == rendered["metadata"]["name"]
    assert manifest["spec"] == rendered["spec"]
