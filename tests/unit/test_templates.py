"""Pod templates: what a job adds to its task pods, merged with what kubemr sets and never over it.

The refused fields are the table of tests/manifest_cases.py, which the local validator
(test_schema_bounds.py) and the API server (e2e/test_crd_validation.py) refuse too; here the
operator's build step refuses them, for a job that reached it unchecked.
"""

from __future__ import annotations

import copy
import json
import os

import pytest
from kubemr_operator import reconcile as reconcile_module
from kubemr_operator.config import Settings
from kubemr_operator.pods import build_task_pod
from kubernetes.client.rest import ApiException

from kubemr.errors import ManifestError
from kubemr.runtime.local import run_local
from kubemr.spec.manifest import parse_manifest
from kubemr.spec.template import merge_affinity, merge_templates, plain_env, task_template
from tests.conftest import make_job, read_output
from tests.manifest_cases import BAD, FULL_TEMPLATE, changed, manifest
from tests.unit.standin import StandInCluster, job_object, run_to_the_end

HOSTNAME = "kubernetes.io/hostname"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"


def job(**spec) -> dict:
    return {"apiVersion": "kubemr.io/v1alpha1", "kind": "MapReduceJob",
            "metadata": {"name": "wc", "namespace": "team", "uid": "0123456789"},
            "spec": {"locality": "preferred", **spec}}


def pod(job_doc: dict, kind: str = "map", data_nodes: tuple[str, ...] = (),
        avoid_node: str | None = None) -> dict:
    task = {"type": kind, "index": 3, "attempt": 2, "work": "s3://w/x"}
    return build_task_pod(job=job_doc, task=task, settings=Settings(), data_nodes=data_nodes,
                          avoid_node=avoid_node)


def env_of(pod_doc: dict) -> list[str]:
    return [e["name"] for e in pod_doc["spec"]["containers"][0]["env"]]


def test_a_template_adds_to_what_kubemr_sets():
    plain = pod(job())
    built = pod(job(template=FULL_TEMPLATE))
    spec, container = built["spec"], built["spec"]["containers"][0]
    # kubemr's own settings stay as they were
    assert container["command"] == plain["spec"]["containers"][0]["command"]
    assert container["securityContext"] == plain["spec"]["containers"][0]["securityContext"]
    assert spec["automountServiceAccountToken"] is False
    assert env_of(built) == env_of(plain) + ["GREETING", "TOKEN", "MY_KUBEMR_SETTING"]
    assert container["envFrom"] == FULL_TEMPLATE["envFrom"]
    assert [v["name"] for v in spec["volumes"]] == ["scratch", "tmp", "words"]
    assert [m["mountPath"] for m in container["volumeMounts"]] == [
        "/scratch", "/tmp", "/etc/words", "/tmpdata"]
    labels = built["metadata"]["labels"]
    assert labels == {**plain["metadata"]["labels"], **FULL_TEMPLATE["labels"]}
    assert built["metadata"]["annotations"] == FULL_TEMPLATE["annotations"]
    assert spec["nodeSelector"] == {"disktype": "ssd"}
    assert spec["tolerations"] == plain["spec"]["tolerations"] + FULL_TEMPLATE["tolerations"]
    assert spec["serviceAccountName"] == "mapreduce"
    assert spec["priorityClassName"] == "batch-low"
    assert spec["imagePullSecrets"] == [{"name": "registry"}]
    assert container["resources"] == FULL_TEMPLATE["resources"]
    # the user and groups change; non-root and the seccomp profile stay
    assert spec["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 2000, "runAsGroup": 2000, "fsGroup": 2000,
        "supplementalGroups": [3000], "seccompProfile": {"type": "RuntimeDefault"}}


def test_a_template_variable_replaces_only_a_variable_kubemr_does_not_own():
    built = pod(job(template={"env": [{"name": "PYTHONDONTWRITEBYTECODE", "value": ""}]}))
    env = built["spec"]["containers"][0]["env"]
    assert [e for e in env if e["name"] == "PYTHONDONTWRITEBYTECODE"] == [
        {"name": "PYTHONDONTWRITEBYTECODE", "value": ""}]
    assert env[0]["name"] == "KUBEMR_TASK"


def test_kubemr_keeps_its_required_locality_and_the_users_terms_are_added_to_it():
    user = {"nodeAffinity": {
        REQUIRED: {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]},
        PREFERRED: [{"weight": 10, "preference": {"matchExpressions": [
            {"key": "ssd", "operator": "Exists"}]}}]},
        "podAntiAffinity": {PREFERRED: [{"weight": 5, "podAffinityTerm": {
            "topologyKey": HOSTNAME, "labelSelector": {"matchLabels": {"team": "x"}}}}]}}
    built = pod(job(locality="required", template={"affinity": user}), data_nodes=["n1"],
                avoid_node="n2")
    affinity = built["spec"]["affinity"]
    terms = affinity["nodeAffinity"][REQUIRED]["nodeSelectorTerms"]
    locality = {"key": HOSTNAME, "operator": "In", "values": ["n1"]}
    # a node must be the data's node AND match one of the user's terms
    assert terms == [
        {"matchExpressions": [locality, {"key": "zone", "operator": "In", "values": ["a"]}]},
        {"matchExpressions": [locality],
         "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]
    preferred = affinity["nodeAffinity"][PREFERRED]
    assert [p["weight"] for p in preferred] == [100, 10]  # kubemr's avoid-node term, the user's
    assert preferred[0]["preference"]["matchExpressions"][0]["operator"] == "NotIn"
    assert affinity["podAntiAffinity"] == user["podAntiAffinity"]
    assert user["nodeAffinity"][REQUIRED]["nodeSelectorTerms"][0]["matchExpressions"] == [
        {"key": "zone", "operator": "In", "values": ["a"]}], "the job's own spec was changed"


def test_kubemr_keeps_its_preferred_locality_beside_a_users_required_term():
    user = {"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}
    built = pod(job(template={"affinity": user}), data_nodes=["n1"])
    node = built["spec"]["affinity"]["nodeAffinity"]
    assert node[REQUIRED] == user["nodeAffinity"][REQUIRED]
    assert node[PREFERRED][0]["preference"]["matchExpressions"][0]["values"] == ["n1"]
    reduce_pod = pod(job(template={"affinity": user}), kind="reduce", data_nodes=["n1"])
    assert reduce_pod["spec"]["affinity"] == user


def test_a_task_types_template_goes_over_spec_template():
    doc = job(
        resources={"limits": {"memory": "1Gi"}, "requests": {"cpu": "250m"}},
        template={"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                  "labels": {"team": "search", "tier": "batch"},
                  "nodeSelector": {"disk": "hdd"},
                  "tolerations": [{"key": "batch", "operator": "Exists"}],
                  "volumes": [{"name": "data", "emptyDir": {}}],
                  "priorityClassName": "low"},
        map={"template": {"env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                          "labels": {"tier": "map"},
                          "nodeSelector": {"disk": "ssd"},
                          "tolerations": [{"key": "batch", "operator": "Exists"},
                                          {"key": "gpu", "operator": "Exists"}],
                          "volumes": [{"name": "data", "configMap": {"name": "c"}}],
                          "resources": {"limits": {"memory": "2Gi"},
                                        "requests": {"cpu": "1"}},
                          "priorityClassName": "high"}},
        reduce={"template": {"resources": {"requests": {"memory": "512Mi"}}}})
    mapper, reducer = pod(doc, "map"), pod(doc, "reduce")
    own = len(env_of(pod(job())))
    map_env = mapper["spec"]["containers"][0]["env"][own:]
    assert map_env == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"},
                       {"name": "C", "value": "4"}]
    assert reducer["spec"]["containers"][0]["env"][own:] == doc["spec"]["template"]["env"]
    assert mapper["metadata"]["labels"]["tier"] == "map"
    assert reducer["metadata"]["labels"]["tier"] == "batch"
    assert mapper["spec"]["nodeSelector"] == {"disk": "ssd"}
    assert [t["key"] for t in mapper["spec"]["tolerations"][2:]] == ["batch", "gpu"]
    assert mapper["spec"]["volumes"][2:] == [{"name": "data", "configMap": {"name": "c"}}]
    assert (mapper["spec"]["priorityClassName"], reducer["spec"]["priorityClassName"]) == (
        "high", "low")
    # resources: spec.resources, then the task type's, by resource name
    assert mapper["spec"]["containers"][0]["resources"] == {
        "limits": {"memory": "2Gi"}, "requests": {"cpu": "1"}}
    assert reducer["spec"]["containers"][0]["resources"] == {
        "limits": {"memory": "1Gi"}, "requests": {"cpu": "250m", "memory": "512Mi"}}


def test_merging_templates_keeps_both_sides_affinities():
    zone = {"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}
    disk = {"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]},
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["nvme"]}]}]}},
            "podAffinity": {REQUIRED: [{"topologyKey": "zone"}]}}
    merged = merge_affinity(zone, disk)
    terms = merged["nodeAffinity"][REQUIRED]["nodeSelectorTerms"]
    assert [[e["values"][0] for e in t["matchExpressions"]] for t in terms] == [
        ["a", "ssd"], ["a", "nvme"]]
    assert merged["podAffinity"] == disk["podAffinity"]
    assert merge_affinity(None, zone) == zone and merge_affinity(zone, {}) == zone
    assert merge_affinity(None, None) is None
    both = merge_templates({"affinity": zone}, {"affinity": disk})
    assert both["affinity"] == merged


def test_task_template_without_templates_is_spec_resources():
    assert task_template({"resources": {"limits": {"memory": "1Gi"}}}, "map") == {
        "resources": {"limits": {"memory": "1Gi"}}}
    assert task_template({}, "reduce") == {}


def test_the_local_runner_sets_the_variables_with_a_plain_value():
    template = {"env": [{"name": "A", "value": "1"}, {"name": "EMPTY"},
                        {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}
    assert plain_env(template) == {"A": "1", "EMPTY": ""}


TEMPLATE_CASES = [case for case in BAD if case[1].split(".")[1] in ("template", "map", "reduce")
                  and case[4] is not None]


@pytest.mark.parametrize("path, value, field, phrase", [case[1:] for case in TEMPLATE_CASES],
                         ids=[case[0] for case in TEMPLATE_CASES])
def test_the_build_step_refuses_what_the_crd_refuses(path, value, field, phrase):
    doc = job()
    doc["spec"] = changed({"spec": doc["spec"]}, path, value)["spec"]
    with pytest.raises(ManifestError) as e:
        pod(doc)
    assert str(e.value).startswith(field + ": ") and phrase in str(e.value), str(e.value)


@pytest.mark.parametrize("template", [
    {"hostNetwork": True},
    {"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}},
    {"containers": [{"name": "sidecar"}]},
])
def test_a_field_the_template_does_not_have_is_refused(template):
    with pytest.raises(ManifestError, match=r"^spec\.template(\.securityContext)?: unknown field"):
        parse_manifest(changed(manifest(), "spec.template", template))
    with pytest.raises(ManifestError, match="unknown field"):
        pod(job(template=template))


WORDS = """
import os
import kubemr

def mapper(offset, line):
    kubemr.increment_counter("seed-" + os.environ.get("PYTHONHASHSEED", "random"))
    for word in line.split():
        yield f"{word}-{os.environ.get('SUFFIX', 'none')}", 1

def reducer(word, counts):
    yield f"{word}-{os.environ.get('SUFFIX', 'none')}", sum(counts)
"""


@pytest.fixture
def words(tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    for i in range(3):
        (data / f"f{i}.txt").write_text("".join(f"alpha beta gamma w{i} k{j}\n"
                                                for j in range(20)))
    return str(data) + "/"


def test_the_local_runner_gives_user_code_the_templates_variables(tmp_path, words):
    spec = {"template": {"env": [{"name": "SUFFIX", "value": "all"}]},
            "reduce": {"template": {"env": [{"name": "SUFFIX", "value": "r"}]}}}
    run_local(make_job(tmp_path, WORDS, words, reducer="reducer", reducers=2, **spec))
    lines = sorted(read_output(tmp_path / "out"))
    assert lines[0] == "alpha-all-r\t60"
    assert all(line.split("\t")[0].endswith("-all-r") for line in lines)


def test_a_hash_seed_in_the_template_leaves_every_part_as_it_was(tmp_path, words):
    """The default partitioner hashes a key's canonical bytes, not Python's hash()."""
    parts = []
    for seed in (None, "0", "12345"):
        out = tmp_path / f"out-{seed}"
        spec = {"template": {"env": [{"name": "PYTHONHASHSEED", "value": seed}]}} if seed else {}
        job_spec = make_job(tmp_path, WORDS, words, reducer="reducer", reducers=3,
                            output={"uri": str(out) + "/"}, **spec)
        counters = run_local(job_spec).counters["user"]
        assert counters == {f"seed-{seed or 'random'}": 60}  # the seed reached the mapper
        parts.append({name: (out / name).read_text() for name in sorted(os.listdir(out))
                      if name.startswith("part-")})
    assert len(parts[0]) == 3 and all(parts[0].values())
    assert parts[0] == parts[1] == parts[2]


@pytest.fixture
def operator_setup(tmp_path, words):
    settings = Settings(work_uri=f"file://{tmp_path}/work", heartbeat_seconds=1.0,
                        local_paths=True)
    scratch = tmp_path / "pods"
    scratch.mkdir()
    reconcile_module._caches.clear()
    return settings, scratch


def test_the_operator_gives_user_code_the_templates_variables(tmp_path, words, operator_setup):
    settings, scratch = operator_setup
    spec = make_job(tmp_path, WORDS, words, reducer="reducer", reducers=2, speculation=False,
                    backoffSeconds=0,
                    map={"template": {"env": [{"name": "SUFFIX", "value": "m"}]}}).spec
    doc = job_object(spec)
    status = run_to_the_end(doc, StandInCluster(doc, scratch, settings), settings)
    assert status["phase"] == "Succeeded", status
    assert sorted(read_output(tmp_path / "out"))[0] == "alpha-m-none\t60"


def test_a_template_the_crd_would_refuse_fails_the_job_as_invalid_input(tmp_path, words,
                                                                        operator_setup):
    """A job that reached the operator unchecked (a CRD from before templates, or without its
    rules) ends Failed, naming the field, before any pod starts."""
    settings, scratch = operator_setup
    spec = make_job(tmp_path, WORDS, words).spec
    spec = copy.deepcopy(spec)
    spec["reduce"] = {"template": {"volumeMounts": [{"name": "cache", "mountPath": "/tmp"}]}}
    doc = job_object(spec)
    cluster = StandInCluster(doc, scratch, settings)
    status = run_to_the_end(doc, cluster, settings)
    assert (status["phase"], status["failureClass"]) == ("Failed", "InvalidInput")
    assert status["message"] == ("spec.reduce.template.volumeMounts[0].mountPath: /scratch and "
                                 "/tmp are kubemr's own mounts")
    assert cluster.pods == {}


class RefusingCluster(StandInCluster):
    """The API server refusing every task pod's dry run with `status`."""

    def __init__(self, *args, status: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.status = status

    def create_pod(self, pod, dry_run=False):
        if dry_run:
            self.dry_runs.append(pod)
            error = ApiException(status=self.status, reason="Refused")
            error.body = json.dumps({"message": 'Pod "x" is invalid: spec.volumes[2].name: '
                                                'Invalid value: "Data_1"'})
            raise error
        super().create_pod(pod)


def templated_job(tmp_path, words) -> dict:
    spec = make_job(tmp_path, WORDS, words, reducer="reducer", speculation=False,
                    backoffSeconds=0,
                    template={"volumes": [{"name": "Data_1", "emptyDir": {}}]}).spec
    return job_object(spec)


def test_a_pod_the_api_server_refuses_fails_the_job_at_once(tmp_path, words, operator_setup):
    settings, scratch = operator_setup
    doc = templated_job(tmp_path, words)
    cluster = RefusingCluster(doc, scratch, settings, status=422)
    status = run_to_the_end(doc, cluster, settings)
    assert (status["phase"], status["failureClass"]) == ("Failed", "InvalidInput")
    assert status["message"].startswith(
        "the API server refuses the map task pods the job's template makes: Pod \"x\" is "
        "invalid: spec.volumes[2].name")
    assert cluster.pods == {} and len(cluster.dry_runs) == 1


def test_a_dry_run_refused_for_another_reason_lets_the_job_run(tmp_path, words, operator_setup):
    """Quota, an admission webhook: what a launch would meet, and retry, too."""
    settings, scratch = operator_setup
    doc = templated_job(tmp_path, words)
    cluster = RefusingCluster(doc, scratch, settings, status=403)
    assert run_to_the_end(doc, cluster, settings)["phase"] == "Succeeded"
    assert [p["metadata"]["labels"]["kubemr.io/task-type"] for p in cluster.dry_runs] == [
        "map", "reduce"]


def test_a_job_without_a_template_has_no_dry_run(tmp_path, words, operator_setup):
    settings, scratch = operator_setup
    doc = job_object(make_job(tmp_path, WORDS, words, speculation=False).spec)
    cluster = StandInCluster(doc, scratch, settings)
    assert run_to_the_end(doc, cluster, settings)["phase"] == "Succeeded"
    assert cluster.dry_runs == []
