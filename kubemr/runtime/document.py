"""The task document: everything one attempt needs, built in one place for both runners.

    {"job": {"name", "namespace", "spec"}, "work": URI, "type": "map" | "combine" | "reduce",
     "index": int, "attempt": int, "split": {...} (map), "dataNode": str | None (map),
     "dataNodes": [str] (map: every node holding a dataset block's replica),
     "maps": int (combine, reduce: the tree of reduces, kubemr.scheduling.tree, follows from
     it and the spec), "log": URI (optional: where the attempt stores its log's tail)}
"""

from __future__ import annotations

from typing import TypedDict


class JobRef(TypedDict, total=False):
    name: str
    namespace: str
    spec: dict  # the spec itself, or
    specUri: str  # where it is kept (a pod's environment holds at most 128 KiB)


class TaskDocument(TypedDict, total=False):
    job: JobRef
    work: str
    type: str
    index: int
    attempt: int
    split: dict
    dataNode: str | None
    dataNodes: list[str]
    maps: int
    log: str


def task_document(*, name: str, namespace: str, work: str, kind: str, index: int,
                  attempt: int, spec: dict | None = None, spec_uri: str | None = None,
                  split: dict | None = None, data_node: str | None = None,
                  data_nodes: list[str] | None = None, maps: int | None = None,
                  log: str | None = None) -> TaskDocument:
    job: JobRef = {"name": name, "namespace": namespace}
    if spec_uri:
        job["specUri"] = spec_uri
    else:
        job["spec"] = spec
    document: TaskDocument = {"job": job, "work": work, "type": kind, "index": index,
                              "attempt": attempt}
    if kind == "map":
        document["split"] = split
        document["dataNode"] = data_node
        if data_nodes and len(data_nodes) > 1:
            document["dataNodes"] = data_nodes
    else:
        document["maps"] = maps
    if log:
        document["log"] = log
    return document


def with_spec(document: TaskDocument) -> TaskDocument:
    """The document with its job's spec in it, read from the store if it names where."""
    job = document["job"]
    if "spec" in job:
        return document
    import json

    from kubemr.storage import store_for

    spec = json.loads(store_for(job["specUri"]).read_bytes(job["specUri"]))
    return {**document, "job": {**job, "spec": spec}}
