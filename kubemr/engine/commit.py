"""Where tasks keep their data, how an attempt commits, and how the job commits its output.

    {work}/map-00003/attempt-2.out   all R sorted runs of map task 3, attempt 2
    {work}/map-00003/COMMIT          JSON naming the committed attempt, its data and run index
    {work}/reduce-00001/attempt-1    the output part written by reduce task 1, attempt 1
    {work}/reduce-00001/COMMIT       JSON naming the committed attempt and its part
    {work}/map-00003/attempt-2.started   written before the attempt is launched
    {work}/map-00003/attempt-2.alive     rewritten while the attempt makes progress
    {work}/map-00003/attempt-2.failed    the scheduler's record of why the attempt failed

A COMMIT is one small object written last, so an attempt is committed or it is not; an attempt
that dies before it leaves only attempt-private data. Two attempts of one task that both commit
leave one COMMIT naming complete data. Nothing appears under the output prefix until every
reduce task has committed: then the job commit copies the parts in and writes _SUCCESS.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from kubemr.engine import counters as counter_math
from kubemr.errors import StorageError, UntrustedCommit
from kubemr.storage import join, normalize_uri, store_for

SUCCESS = "_SUCCESS"


def task_dir(work: str, task_type: str, index: int) -> str:
    return join(work, f"{task_type}-{index:05d}")


def attempt_data_uri(work: str, task_type: str, index: int, attempt: int) -> str:
    suffix = ".out" if task_type == "map" else ""
    return join(task_dir(work, task_type, index), f"attempt-{attempt}{suffix}")


def started_uri(work: str, task_type: str, index: int, attempt: int) -> str:
    """Written by the operator before it starts an attempt, so attempts outlive their pods."""
    return join(task_dir(work, task_type, index), f"attempt-{attempt}.started")


def alive_uri(work: str, task_type: str, index: int, attempt: int) -> str:
    """Rewritten by a running attempt every few seconds: its last-modified time is progress."""
    return join(task_dir(work, task_type, index), f"attempt-{attempt}.alive")


def failed_uri(work: str, task_type: str, index: int, attempt: int) -> str:
    """Written by the operator once it has seen an attempt fail: JSON with the failure class,
    message, node and time, so the attempt counts the same after its pod is gone."""
    return join(task_dir(work, task_type, index), f"attempt-{attempt}.failed")


MARKERS = ("started", "alive", "failed")


def parse_entry(work: str, uri: str) -> tuple[str, int, str, int | None] | None:
    """(task type, index, what, attempt) of a name the functions above build under `work`;
    `what` is COMMIT, data, or a marker (started, alive, failed). None for anything else."""
    relative = uri[len(work) + 1:] if uri.startswith(work + "/") else ""
    parts = relative.split("/")
    if len(parts) != 2 or "-" not in parts[0]:
        return None
    task_type, _, index = parts[0].partition("-")
    if task_type not in ("map", "reduce") or not index.isdigit():
        return None
    name = parts[1]
    if name == "COMMIT":
        return task_type, int(index), "COMMIT", None
    if not name.startswith("attempt-"):
        return None
    number, _, what = name[len("attempt-"):].partition(".")
    if not number.isdigit():
        return None
    if what in MARKERS:
        return task_type, int(index), what, int(number)
    if what in ("", "out"):
        return task_type, int(index), "data", int(number)
    return None


def commit_uri(work: str, task_type: str, index: int) -> str:
    return join(task_dir(work, task_type, index), "COMMIT")


def write_commit(work: str, task_type: str, index: int, record: dict) -> None:
    store_for(work).write_bytes(commit_uri(work, task_type, index),
                                json.dumps(record, sort_keys=True).encode())


def read_commit(work: str, task_type: str, index: int) -> dict | None:
    uri = commit_uri(work, task_type, index)
    store = store_for(uri)
    try:
        return json.loads(store.read_bytes(uri))
    except StorageError:
        if store.exists(uri):
            raise
        return None


def part_name(index: int) -> str:
    return f"part-{index:05d}"


def output_prefix(spec: dict) -> str:
    uri = normalize_uri(spec["output"]["uri"])
    return uri if uri.endswith("/") else uri + "/"


def check_output(spec: dict) -> None:
    """Refuse an output prefix that holds a committed job or foreign objects, unless overwriting."""
    if spec["output"].get("overwrite"):
        return
    prefix = output_prefix(spec)
    store = store_for(prefix)
    objects = store.list(prefix)
    names = [o.uri[len(prefix):] for o in objects]
    if SUCCESS in names:
        raise StorageError(
            f"output {prefix} already holds a committed job ({SUCCESS} exists): choose another "
            "output.uri or set output.overwrite: true"
        )
    foreign = [n for n in names if not n.startswith("part-")]
    if foreign:
        raise StorageError(
            f"output {prefix} is not empty (it holds {foreign[0]!r}): choose an empty prefix "
            "or set output.overwrite: true"
        )


def committed_summary(spec: dict) -> dict | None:
    """The _SUCCESS summary at the job's output prefix, if there is one."""
    uri = join(output_prefix(spec), SUCCESS)
    store = store_for(uri)
    try:
        return json.loads(store.read_bytes(uri))
    except (StorageError, ValueError):
        return None


def commit_job(job_name: str, spec: dict, work: str, job_counters: dict,
               trusted: Callable[[str], bool] = lambda uri: True, job_uid: str = "") -> str:
    """Copy every committed part under the output prefix, then write _SUCCESS. Idempotent.

    Every part a reduce COMMIT names must pass `trusted` before anything is copied or deleted.
    """
    prefix = output_prefix(spec)
    store = store_for(prefix)
    if store.exists(join(prefix, SUCCESS)):
        if not spec["output"].get("overwrite"):
            return prefix
        store.delete(join(prefix, SUCCESS))
    parts = []
    for r in range(spec["reducers"]):
        record = read_commit(work, "reduce", r)
        if record is None:
            raise StorageError(f"reduce task {r} has no commit under {work}")
        if not isinstance(record.get("data"), str) or not trusted(record["data"]):
            raise UntrustedCommit(
                f"the COMMIT of reduce task {r} names {record.get('data')!r}, outside the "
                f"job's work prefix {work}/: nothing was copied or deleted")
        parts.append(record["data"])
    wanted = {part_name(r) for r in range(spec["reducers"])}
    for obj in store.list(prefix):
        if obj.uri[len(prefix):] not in wanted:
            store.delete(obj.uri)
    for r, data in enumerate(parts):
        if store_for(data) is store:
            store.copy(data, join(prefix, part_name(r)))
        else:
            store.write_bytes(join(prefix, part_name(r)), store_for(data).read_bytes(data))
    summary = {"job": job_name, "uid": job_uid, "counters": job_counters,
               "committedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    store.write_bytes(join(prefix, SUCCESS), json.dumps(summary, indent=1).encode())
    return prefix


def sum_counters(work: str, num_maps: int, num_reducers: int) -> dict:
    total: dict = {}
    for task_type, n in (("map", num_maps), ("reduce", num_reducers)):
        for i in range(n):
            record = read_commit(work, task_type, i)
            if record:
                counter_math.add(total, record.get("counters", {}))
    return total
