"""Manifests at and past every bound and rule of the MapReduceJob schema.

One table for both places a manifest is checked: tests/unit/test_schema_bounds.py runs it through
the local validator, tests/e2e/test_crd_validation.py through the API server, so the two refuse
the same manifests and name the same field.
"""

from __future__ import annotations

import copy

GIB = 1 << 30
BUCKET_RULE = "the bucket of an s3:// URI is 3 to 63 lowercase letters"
FROZEN = "cannot change once the job exists"


def manifest(name: str = "bounds", namespace: str | None = None) -> dict:
    meta = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {
        "apiVersion": "kubemr.io/v1alpha1", "kind": "MapReduceJob", "metadata": meta,
        "spec": {
            "input": {"uri": "s3://kubemr-test/in/"},
            "output": {"uri": "s3://kubemr-test/out/"},
            "mapper": "mapper", "reducer": "reducer",
            "code": {"inline": "def mapper(k, v):\n    yield v, 1\n"
                               "def reducer(k, vs):\n    yield k, sum(vs)\n"},
        },
    }


def changed(doc: dict, path: str, value) -> dict:
    """A copy of `doc` with the field at dotted `path` set to `value` (or removed: DELETE)."""
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    if value is DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return doc


DELETE = object()

WORKER = "task pods run kubemr's worker"
OWN_ENV = "KUBEMR_* variables are kubemr's own"
OWN_VOLUMES = "scratch and tmp are kubemr's own volumes"
OWN_MOUNTS = "/scratch and /tmp are kubemr's own mounts"
OWN_LABELS = "kubemr's own labels"
NON_ROOT = "task pods run as a non-root user"
NO_PRIVILEGES = "task pods never gain privileges"

# A template with every field kubemr accepts (spec.template, spec.map.template and
# spec.reduce.template have the same fields).
FULL_TEMPLATE = {
    "labels": {"team": "search", "app.kubernetes.io/part-of": "indexing"},
    "annotations": {"example.com/owner": "search-team"},
    "env": [{"name": "GREETING", "value": "hello"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "t", "key": "token"}}},
            {"name": "MY_KUBEMR_SETTING", "value": "1"}],
    "envFrom": [{"configMapRef": {"name": "settings"}}, {"prefix": "DB_",
                                                         "secretRef": {"name": "db"}}],
    "volumes": [{"name": "words", "configMap": {"name": "stopwords"}}],
    "volumeMounts": [{"name": "words", "mountPath": "/etc/words", "readOnly": True},
                     {"name": "words", "mountPath": "/tmpdata"}],
    "nodeSelector": {"disktype": "ssd"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "batch",
                     "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a", "b"]}]}]}}},
    "serviceAccountName": "mapreduce",
    "priorityClassName": "batch-low",
    "imagePullSecrets": [{"name": "registry"}],
    "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
    "securityContext": {"runAsUser": 2000, "runAsGroup": 2000, "fsGroup": 2000,
                        "supplementalGroups": [3000], "runAsNonRoot": True,
                        "allowPrivilegeEscalation": False, "privileged": False},
}

# (id, field path, value, the field the error names, a phrase the error holds or None)
BAD = [
    ("name-64-chars", "metadata.name", "n" * 64, "metadata.name", None),
    ("splitSize-1023", "spec.input.splitSize", 1023, "spec.input.splitSize", None),
    ("reducers-10001", "spec.reducers", 10001, "spec.reducers", None),
    ("reducers-0", "spec.reducers", 0, "spec.reducers", None),
    ("reduceTree-fanIn-1", "spec.reduceTree", {"fanIn": 1, "associative": True},
     "spec.reduceTree.fanIn", None),
    ("reduceTree-fanIn-1001", "spec.reduceTree", {"fanIn": 1001, "associative": True},
     "spec.reduceTree.fanIn", None),
    ("reduceTree-no-combiner", "spec.reduceTree", {"fanIn": 4}, "spec.reduceTree",
     "name a combiner, or set reduceTree.associative: true"),
    ("parallelism-1001", "spec.parallelism", 1001, "spec.parallelism", None),
    ("parallelism-0", "spec.parallelism", 0, "spec.parallelism", None),
    ("maxAttempts-101", "spec.maxAttempts", 101, "spec.maxAttempts", None),
    ("mapBufferSize-over-16GiB", "spec.mapBufferSize", 16 * GIB + 1, "spec.mapBufferSize", None),
    ("mapBufferSize-under-1MiB", "spec.mapBufferSize", (1 << 20) - 1, "spec.mapBufferSize",
     None),
    ("backoffSeconds-301", "spec.backoffSeconds", 301, "spec.backoffSeconds", None),
    ("taskTimeoutSeconds-9", "spec.taskTimeoutSeconds", 9, "spec.taskTimeoutSeconds", None),
    ("taskTimeoutSeconds-86401", "spec.taskTimeoutSeconds", 86401, "spec.taskTimeoutSeconds",
     None),
    ("activeDeadlineSeconds-0", "spec.activeDeadlineSeconds", 0, "spec.activeDeadlineSeconds",
     None),
    ("ttl-negative", "spec.ttlSecondsAfterFinished", -1, "spec.ttlSecondsAfterFinished", None),
    ("retainPods-unknown", "spec.retainPods", "Sometimes", "spec.retainPods", None),
    ("input-empty", "spec.input", {}, "spec.input", "give exactly one of uri and uris"),
    ("input-uri-and-uris", "spec.input", {"uri": "s3://abc/a/", "uris": ["s3://abc/b/"]},
     "spec.input", "give exactly one of uri and uris"),
    ("input-uris-empty", "spec.input", {"uris": []}, "spec.input.uris", None),
    ("input-uris-101", "spec.input", {"uris": ["s3://abc/x"] * 101}, "spec.input.uris", None),
    ("input-uri-empty-string", "spec.input", {"uri": ""}, "spec.input.uri", None),
    ("input-uri-4097", "spec.input", {"uri": "s3://abc/" + "k" * 4088}, "spec.input.uri", None),
    ("input-bucket-short", "spec.input.uri", "s3://ab/in/", "spec.input.uri", BUCKET_RULE),
    ("input-bucket-upper", "spec.input.uri", "s3://Books/in/", "spec.input.uri", BUCKET_RULE),
    ("input-bucket-underscore", "spec.input.uri", "s3://my_books/", "spec.input.uri",
     BUCKET_RULE),
    ("input-bucket-64", "spec.input.uri", "s3://" + "b" * 64 + "/", "spec.input.uri",
     BUCKET_RULE),
    ("input-bucket-dots", "spec.input.uri", "s3://my..books/", "spec.input.uri", BUCKET_RULE),
    ("input-bucket-ip", "spec.input.uri", "s3://10.0.0.1/in/", "spec.input.uri", BUCKET_RULE),
    ("input-bucket-hyphen-end", "spec.input.uri", "s3://books-/in/", "spec.input.uri",
     BUCKET_RULE),
    ("input-bucket-missing", "spec.input.uri", "s3:///in/", "spec.input.uri", BUCKET_RULE),
    ("input-uris-bad-bucket", "spec.input", {"uris": ["s3://abc/in/", "s3://AB/in/"]},
     "spec.input.uris[1]", BUCKET_RULE),
    ("output-bad-bucket", "spec.output.uri", "s3://x/out/", "spec.output.uri", BUCKET_RULE),
    ("output-uri-empty-string", "spec.output.uri", "", "spec.output.uri", None),
    ("pickle-bad-bucket", "spec.code", {"pickle": "s3://Code/f.pkl"}, "spec.code.pickle",
     BUCKET_RULE),
    ("inline-over-1MiB", "spec.code", {"inline": "#" * ((1 << 20) + 1)}, "spec.code.inline",
     None),
    ("intermediate-plain-path", "spec.intermediate", {"uri": "tmp/work/"},
     "spec.intermediate.uri", "must be an s3:// or file:// URI"),
    ("intermediate-other-scheme", "spec.intermediate", {"uri": "gs://work/"},
     "spec.intermediate.uri", "must be an s3:// or file:// URI"),
    ("intermediate-bad-bucket", "spec.intermediate", {"uri": "s3://w/"},
     "spec.intermediate.uri", BUCKET_RULE),
    # pod templates: what kubemr keeps its own
    ("template-command", "spec.template", {"command": ["sh", "-c", "true"]},
     "spec.template.command", WORKER),
    ("template-args", "spec.template", {"args": ["--help"]}, "spec.template.args", WORKER),
    ("map-template-command", "spec.map", {"template": {"command": ["sh"]}},
     "spec.map.template.command", WORKER),
    ("template-env-kubemr", "spec.template", {"env": [{"name": "KUBEMR_TASK", "value": "{}"}]},
     "spec.template.env[0].name", OWN_ENV),
    ("reduce-template-env-kubemr", "spec.reduce", {"template": {"env": [
        {"name": "A", "value": "1"}, {"name": "KUBEMR_S3_ENDPOINT", "value": "http://x"}]}},
     "spec.reduce.template.env[1].name", OWN_ENV),
    ("template-env-value-not-string", "spec.template", {"env": [{"name": "A", "value": 1}]},
     "spec.template.env[0].value", None),
    ("template-envFrom-prefix-kubemr", "spec.template",
     {"envFrom": [{"prefix": "KUBEMR_", "configMapRef": {"name": "c"}}]},
     "spec.template.envFrom[0].prefix", OWN_ENV),
    ("template-volume-scratch", "spec.template", {"volumes": [{"name": "scratch",
                                                               "emptyDir": {}}]},
     "spec.template.volumes[0].name", OWN_VOLUMES),
    ("map-template-volume-tmp", "spec.map", {"template": {"volumes": [
        {"name": "tmp", "configMap": {"name": "c"}}]}},
     "spec.map.template.volumes[0].name", OWN_VOLUMES),
    ("template-mount-named-tmp", "spec.template",
     {"volumeMounts": [{"name": "tmp", "mountPath": "/data"}]},
     "spec.template.volumeMounts[0].name", OWN_VOLUMES),
    ("template-mount-at-scratch", "spec.template",
     {"volumeMounts": [{"name": "data", "mountPath": "/scratch"}]},
     "spec.template.volumeMounts[0].mountPath", OWN_MOUNTS),
    ("template-mount-under-tmp", "spec.template",
     {"volumeMounts": [{"name": "data", "mountPath": "/tmp/cache"}]},
     "spec.template.volumeMounts[0].mountPath", OWN_MOUNTS),
    ("template-mount-at-tmp-spelled-oddly", "spec.template",
     {"volumeMounts": [{"name": "data", "mountPath": "//./tmp/"}]},
     "spec.template.volumeMounts[0].mountPath", OWN_MOUNTS),
    ("template-label-kubemr", "spec.template", {"labels": {"kubemr.io/job": "other"}},
     "spec.template.labels", OWN_LABELS),
    ("template-label-managed-by", "spec.template",
     {"labels": {"app.kubernetes.io/managed-by": "me"}}, "spec.template.labels", OWN_LABELS),
    ("reduce-template-label-component", "spec.reduce",
     {"template": {"labels": {"app.kubernetes.io/component": "x"}}},
     "spec.reduce.template.labels", OWN_LABELS),
    ("template-annotation-kubemr", "spec.template", {"annotations": {"kubemr.io/x": "y"}},
     "spec.template.annotations", "kubemr.io/* annotations are kubemr's own"),
    ("template-run-as-root", "spec.template", {"securityContext": {"runAsUser": 0}},
     "spec.template.securityContext.runAsUser", "user 0 is root"),
    ("template-run-as-non-root-false", "spec.template",
     {"securityContext": {"runAsNonRoot": False}},
     "spec.template.securityContext.runAsNonRoot", NON_ROOT),
    ("template-privilege-escalation", "spec.template",
     {"securityContext": {"allowPrivilegeEscalation": True}},
     "spec.template.securityContext.allowPrivilegeEscalation", NO_PRIVILEGES),
    ("map-template-privileged", "spec.map", {"template": {"securityContext": {
        "privileged": True}}}, "spec.map.template.securityContext.privileged", NO_PRIVILEGES),
    ("template-toleration-operator", "spec.template", {"tolerations": [{"operator": "Maybe"}]},
     "spec.template.tolerations[0].operator", None),
]

# (id, field path, value): each at its bound, accepted
BOUNDARY = [
    ("name-63-chars", "metadata.name", "n" * 63),
    ("splitSize-1024", "spec.input.splitSize", 1024),
    ("reducers-10000", "spec.reducers", 10000),
    ("reduceTree-fanIn-2", "spec.reduceTree", {"fanIn": 2, "associative": True}),
    ("reduceTree-fanIn-1000", "spec.reduceTree", {"fanIn": 1000, "associative": True}),
    ("parallelism-1000", "spec.parallelism", 1000),
    ("parallelism-1", "spec.parallelism", 1),
    ("maxAttempts-100", "spec.maxAttempts", 100),
    ("mapBufferSize-16GiB", "spec.mapBufferSize", 16 * GIB),
    ("mapBufferSize-1MiB", "spec.mapBufferSize", 1 << 20),
    ("backoffSeconds-300", "spec.backoffSeconds", 300),
    ("backoffSeconds-0", "spec.backoffSeconds", 0),
    ("taskTimeoutSeconds-10", "spec.taskTimeoutSeconds", 10),
    ("taskTimeoutSeconds-86400", "spec.taskTimeoutSeconds", 86400),
    ("activeDeadlineSeconds-1", "spec.activeDeadlineSeconds", 1),
    ("ttl-0", "spec.ttlSecondsAfterFinished", 0),
    ("retainPods-OnFailure", "spec.retainPods", "OnFailure"),
    ("input-uris-100", "spec.input", {"uris": ["s3://abc/x"] * 100}),
    ("input-uri-4096", "spec.input", {"uri": "s3://abc/" + "k" * 4087}),
    ("input-plain-path", "spec.input.uri", "data/books/"),
    ("input-file-glob", "spec.input.uri", "file:///data/*.txt"),
    ("input-bucket-3", "spec.input.uri", "s3://abc"),
    ("input-bucket-63", "spec.input.uri", "s3://" + "b" * 63 + "/in/"),
    ("input-bucket-dotted", "spec.input.uri", "s3://my.books-2024/in/"),
    ("input-bucket-digits", "spec.input.uri", "s3://123/in/"),
    ("output-plain-path", "spec.output.uri", "out/"),
    ("inline-1MiB", "spec.code", {"inline": "#" * (1 << 20)}),
    ("intermediate-s3", "spec.intermediate", {"uri": "s3://kubemr-work/tmp/"}),
    ("intermediate-file", "spec.intermediate", {"uri": "file:///tmp/kubemr-work/"}),
    ("template-every-field", "spec.template", FULL_TEMPLATE),
    ("map-template-every-field", "spec.map", {"template": FULL_TEMPLATE}),
    ("reduce-template-every-field", "spec.reduce", {"template": FULL_TEMPLATE}),
]
