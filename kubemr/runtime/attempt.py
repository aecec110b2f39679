"""One task attempt, map, combine or reduce, as a pod or a local worker process runs it.

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
from kubemr.scheduling.tree import ReduceTree, Source
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
    timings = {"startup": _startup(started)}
    cpu_before = 0.0 if _attempts_run == 1 else sum(os.times()[:2])
    try:
        if task["type"] == "map":
            record = _run_map(task, spec, functions, scratch, timings)
        elif task["type"] == "combine":
            record = _run_combine(task, spec, functions, scratch, timings)
        else:
            record = _run_reduce(task, spec, functions, scratch, timings)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for key in ("dataNode", "dataNodes"):
        if task.get(key):
            record[key] = task[key]
    user, system = os.times()[:2]
    # the process's, its interpreter start included; in a reused worker, this attempt's own
    timings["cpu"] = round(user + system - cpu_before, 3)
    record.update(attempt=task["attempt"], node=_node(task), started=round(started, 3),
                  seconds=round(time.time() - started, 3), timings=timings)
    commit.write_commit(task["work"], task["type"], task["index"], record)
    return record


def process_started() -> float:
    """When this process started (wall clock, to 10 ms): the attempt's record tells how long
    the interpreter and the imports took before the task began."""
    with open("/proc/self/stat") as f:
        ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    since_boot = ticks / os.sysconf("SC_CLK_TCK")
    return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - since_boot)


_attempts_run = 0  # by this process: a local worker runs one attempt after another


def _startup(started: float) -> float:
    """The interpreter's start and imports: for the first attempt a process runs, else 0."""
    global _attempts_run
    _attempts_run += 1
    return round(started - process_started(), 3) if _attempts_run == 1 else 0.0


def _timed(timings: dict, name: str, started: float) -> float:
    now = time.perf_counter()
    timings[name] = round(now - started, 3)
    return now


def _run_map(task: dict, spec: dict, functions, scratch: str, timings: dict) -> dict:
    started = time.perf_counter()
    split = load_split(task["split"])
    map_task = MapTask(split, spec, functions, scratch)
    local = os.path.join(scratch, "map.out")
    index = map_task.run(local)
    started = _timed(timings, "map", started)
    timings["read"] = round(map_task.read_seconds, 3)  # of "map"
    data = commit.attempt_data_uri(task["work"], "map", task["index"], task["attempt"])
    # With one MinIO server per node, map output stays on this node's server.
    data = on_node(data, _node(task), _node_servers())
    store_for(data).upload_file(data, local)
    _timed(timings, "upload", started)
    map_task.counters["map_output_bytes"] += os.path.getsize(local)
    return {"data": data, "index": index, "counters": _grouped(map_task.counters)}


def _fetch(task: dict, spec: dict, functions, scratch: str, partition: int,
           sources: list[Source]) -> tuple[ReduceTask, list[str]]:
    """Copy one partition's segment of each source's committed output to local disk. A
    committed output that is gone fails the attempt as MapOutputLost, naming the outputs, so
    that the tasks that made them run again."""
    segments, read = [], []
    for source in sources:
        record = commit.read_commit(task["work"], source.kind, source.index)
        if record is None:
            raise StorageError(f"{source.kind} task {source.index} has no committed output "
                               f"under {task['work']}")
        if not within(record.get("data", ""), task["work"], _node_servers()):
            raise UntrustedCommit(f"the COMMIT of {source.kind} task {source.index} names "
                                  f"{record.get('data')!r}, outside the job's work prefix "
                                  f"{task['work']}/: not read")
        # a map output holds every partition; a combine task's, only its own
        start, end, _ = record["index"][partition if source.kind == "map" else 0]
        segments.append((record["data"], start, end))
        read.append((source, record["attempt"]))
    reduce_task = ReduceTask(spec, functions, scratch)
    try:
        return reduce_task, reduce_task.fetch(segments)
    except StorageError as e:
        lost = [(source, number) for (source, number), (uri, start, end)
                in zip(read, segments, strict=True)
                if end > start and not store_for(uri).exists(uri)]
        if lost:
            names = ", ".join(f"{source.kind} task {source.index}" for source, _ in lost)
            raise MapOutputLost(f"committed outputs are gone: {names} ({e})",
                                [[s.kind, s.index, number] for s, number in lost]) from e
        raise


def _run_combine(task: dict, spec: dict, functions, scratch: str, timings: dict) -> dict:
    started = time.perf_counter()
    tree = ReduceTree.of(spec, task["maps"])
    where = tree.combine(task["index"])
    reduce_task, paths = _fetch(task, spec, functions, scratch, where.partition,
                                tree.combine_sources(task["index"]))
    started = _timed(timings, "fetch", started)
    local = os.path.join(scratch, "combine.out")
    index = reduce_task.combine(paths, local)
    started = _timed(timings, "reduce", started)
    data = commit.attempt_data_uri(task["work"], "combine", task["index"], task["attempt"])
    store_for(data).upload_file(data, local)
    _timed(timings, "upload", started)
    return {"data": data, "index": index, "level": where.level,
            "partition": where.partition, "counters": _grouped(reduce_task.counters)}


def _run_reduce(task: dict, spec: dict, functions, scratch: str, timings: dict) -> dict:
    started = time.perf_counter()
    r = task["index"]
    tree = ReduceTree.of(spec, task["maps"])
    reduce_task, paths = _fetch(task, spec, functions, scratch, r, tree.reduce_sources(r))
    started = _timed(timings, "fetch", started)
    local = os.path.join(scratch, commit.part_name(r))
    reduce_task.run(paths, local)
    started = _timed(timings, "reduce", started)
    data = commit.attempt_data_uri(task["work"], "reduce", r, task["attempt"])
    store_for(data).upload_file(data, local)
    _timed(timings, "upload", started)
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
