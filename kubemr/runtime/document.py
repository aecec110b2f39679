"""The task document: everything one attempt needs, built in one place for both runners.

    {"job": {"name", "namespace", "spec"}, "work": URI, "type": "map" | "reduce",
     "index": int, "attempt": int, "split": {...} (map), "dataNode": str | None (map),
     "maps": int (reduce)}
"""

from __future__ import annotations

from typing import TypedDict


class JobRef(TypedDict):
    name: str
    namespace: str
    spec: dict


class TaskDocument(TypedDict, total=False):
    job: JobRef
    work: str
    type: str
    index: int
    attempt: int
    split: dict
    dataNode: str | None
    maps: int


def task_document(*, name: str, namespace: str, spec: dict, work: str, kind: str, index: int,
                  attempt: int, split: dict | None = None, data_node: str | None = None,
                  maps: int | None = None) -> TaskDocument:
    document: TaskDocument = {"job": {"name": name, "namespace": namespace, "spec": spec},
                              "work": work, "type": kind, "index": index, "attempt": attempt}
    if kind == "map":
        document["split"] = split
        document["dataNode"] = data_node
    else:
        document["maps"] = maps
    return document
