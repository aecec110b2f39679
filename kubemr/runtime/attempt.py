"""One task attempt, map or reduce, as a pod or a local worker process runs it.

The attempt is described by a task document (kubemr.runtime.document).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time

from kubemr.engine import commit
from kubemr.engine.counters import BUILTIN_GROUP, USER_GROUP, take_user_counters
from kubemr.engine.maptask import MapTask
from kubemr.engine.plan import load_split
from kubemr.engine.reducetask import ReduceTask
from kubemr.engine.usercode import load_functions, load_pickled
from kubemr.errors import MapOutputLost, StorageError, UntrustedCommit
from kubemr.storage import store_for
from kubemr.storage.nodes import on_node, within


def run_task(task: dict) -> dict:
    """Run the attempt and commit it; return its commit record."""
    spec = task["job"]["spec"]
    pickle_uri = (spec.get("code") or {}).get("pickle")
    functions = load_functions(spec, load_pickled(pickle_uri) if pickle_uri else None)
    scratch = tempfile.mkdtemp(prefix=f"kubemr-{task['type']}-",
                               dir=os.environ.get("KUBEMR_SCRATCH"))
    started = time.time()
    try:
        if task["type"] == "map":
            record = _run_map(task, spec, functions, scratch)
        else:
            record = _run_reduce(task, spec, functions, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for key in ("dataNode", "dataNodes"):
        if task.get(key):
            record[key] = task[key]
    record.update(attempt=task["attempt"], node=_node(task),
                  started=round(started, 3), seconds=round(time.time() - started, 3))
    commit.write_commit(task["work"], task["type"], task["index"], record)
    return record


def _run_map(task: dict, spec: dict, functions, scratch: str) -> dict:
    split = load_split(task["split"])
    map_task = MapTask(split, spec, functions, scratch)
    local = os.path.join(scratch, "map.out")
    index = map_task.run(local)
    data = commit.attempt_data_uri(task["work"], "map", task["index"], task["attempt"])
    # With one MinIO server per node, map output stays on this node's server.
    data = on_node(data, _node(task), _node_servers())
    store_for(data).upload_file(data, local)
    map_task.counters["map_output_bytes"] += os.path.getsize(local)
    return {"data": data, "index": index, "counters": _grouped(map_task.counters)}


def _run_reduce(task: dict, spec: dict, functions, scratch: str) -> dict:
    r = task["index"]
    segments, sources = [], []
    for m in range(task["maps"]):
        record = commit.read_commit(task["work"], "map", m)
        if record is None:
            raise StorageError(f"map task {m} has no committed output under {task['work']}")
        if not within(record.get("data", ""), task["work"], _node_servers()):
            raise UntrustedCommit(f"the COMMIT of map task {m} names {record.get('data')!r}, "
                                  f"outside the job's work prefix {task['work']}/: not read")
        start, end, _ = record["index"][r]
        segments.append((record["data"], start, end))
        sources.append((m, record["attempt"]))
    reduce_task = ReduceTask(spec, functions, scratch)
    try:
        paths = reduce_task.fetch(segments)
    except StorageError as e:
        lost = [source for source, (uri, start, end) in zip(sources, segments, strict=True)
                if end > start and not store_for(uri).exists(uri)]
        if lost:
            raise MapOutputLost(f"committed map outputs are gone: map tasks "
                                f"{[m for m, _ in lost]} ({e})", lost) from e
        raise
    local = os.path.join(scratch, commit.part_name(r))
    reduce_task.run(paths, local)
    data = commit.attempt_data_uri(task["work"], "reduce", r, task["attempt"])
    store_for(data).upload_file(data, local)
    return {"data": data, "counters": _grouped(reduce_task.counters)}


def _node_servers() -> list[dict]:
    return json.loads(os.environ.get("KUBEMR_NODE_SERVERS") or "[]")


def _node(task: dict) -> str:
    return os.environ.get("KUBEMR_NODE_NAME") or task.get("node") or socket.gethostname()


def _grouped(builtin: dict) -> dict:
    counters = {BUILTIN_GROUP: dict(builtin)}
    user = take_user_counters()
    if user:
        counters[USER_GROUP] = user
    return counters
