"""Where tasks keep their data, how an attempt commits, and how the job commits its output.

    {work}/map-00003/attempt-2.out   all R sorted runs of map task 3, attempt 2
    {work}/map-00003/COMMIT          JSON naming the committed attempt, its data and run index
    {work}/combine-00007/attempt-1   one sorted run: a partition of a few lower outputs,
                                     combined (a tree of reduces, spec.reduceTree)
    {work}/reduce-00001/attempt-1    the output part written by reduce task 1, attempt 1
    {work}/reduce-00001/COMMIT       JSON naming the committed attempt and its part
    {work}/map-00003/attempt-2.started   written before the attempt is launched
    {work}/map-00003/attempt-2.alive     rewritten while the attempt makes progress
    {work}/map-00003/attempt-2.failed    the scheduler's record of why the attempt failed

A COMMIT is one small object written last, so an attempt is committed or it is not; an attempt
that dies before it leaves only attempt-private data. Two attempts of one task that both commit
leave one COMMIT naming complete data. Nothing appears under the output prefix until every
reduce task has committed: then the job commit copies the parts in and writes _SUCCESS.

Under the output prefix:

    {output}/_KUBEMR_LOCK    the claim of the one job writing the output: who, and what its
                             commit replaces (claim_output at planning; released by the commit,
                             or when the job fails or is deleted)
    {output}/part-00000 ...  the committed parts
    {output}/_SUCCESS        JSON: job, uid, parts, counters; written last

kubemr deletes nothing there but an earlier kubemr output (its _SUCCESS and parts) that the
claim recorded, and only with output.overwrite; anything else fails the job at planning.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable

from kubemr.engine import counters as counter_math
from kubemr.errors import OutputInUse, StorageError, UntrustedCommit
from kubemr.storage import join, normalize_uri, split_uri, store_for

SUCCESS = "_SUCCESS"
LOCK = "_KUBEMR_LOCK"  # a leading _ : readers of the prefix as input skip it
PART = re.compile(r"part-\d{5}")


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
    if task_type not in ("map", "combine", "reduce") or not index.isdigit():
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


def holder(job: str, namespace: str = "", uid: str = "", runner: str = "operator") -> dict:
    """Who claims an output: the job, and the uid that tells one run of it from another."""
    return {"job": job, "namespace": namespace, "uid": uid, "runner": runner,
            "host": socket.gethostname(), "pid": os.getpid(),
            "claimedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def describe_holder(claim: dict) -> str:
    if claim.get("unreadable"):
        return "an unknown writer (its lock cannot be read)"
    name = claim.get("job")
    if claim.get("namespace") and claim.get("runner") != "local":
        name = f"{claim['namespace']}/{name}"
    if claim.get("runner") == "local":
        return (f"a local run of job {name} (run {claim.get('uid')} on host {claim.get('host')}, "
                f"pid {claim.get('pid')}, since {claim.get('claimedAt')})")
    return f"job {name} (uid {claim.get('uid')}, since {claim.get('claimedAt')})"


def _held(prefix: str, claim: dict) -> OutputInUse:
    lock = join(prefix, LOCK)
    return OutputInUse(
        f"output {prefix} is in use by {describe_holder(claim)}: two jobs may not write one "
        f"output at once. Wait for that job to end (it releases {lock} then); if it is gone "
        f"and nothing writes {prefix} any more, delete {lock}")


def _read_claim(store, lock: str) -> dict | None:
    for attempt in range(3):
        try:
            data = store.read_bytes(lock)
            break
        except StorageError:
            if not store.exists(lock):
                return None
            if attempt == 2:  # there, yet unreadable: not a lock made as we read
                raise
    try:
        claim = json.loads(data)
    except ValueError:
        claim = None
    return claim if isinstance(claim, dict) else {"unreadable": True}


def _kubemr_summary(store, uri: str) -> dict | None:
    """The JSON summary kubemr writes as _SUCCESS; None for any other object of that name."""
    try:
        summary = json.loads(store.read_bytes(uri))
    except (StorageError, ValueError):
        return None
    if isinstance(summary, dict) and "job" in summary and "committedAt" in summary:
        return summary
    return None


def _survey(store, prefix: str) -> tuple[list[str], list[str], dict | None]:
    """(kubemr's objects, every other object, the committed summary) under the prefix.

    kubemr's are a _SUCCESS holding its summary and the parts that summary covers
    (part-00000 up to its `parts`; every part-NNNNN for a summary that does not count them),
    or, with no _SUCCESS, part-NNNNN objects: a commit writes _SUCCESS last and deletes the
    previous one first, so those are the parts of a kubemr commit that did not finish."""
    names = [o.uri[len(prefix):] for o in store.list(prefix)]
    names = [n for n in names if n != LOCK]
    summary = _kubemr_summary(store, join(prefix, SUCCESS)) if SUCCESS in names else None
    counted = summary.get("parts") if summary else None
    ours, other = [], []
    for name in names:
        if name == SUCCESS:
            mine = summary is not None
        else:
            mine = bool(PART.fullmatch(name)) and (
                not isinstance(counted, int) or int(name[len("part-"):]) < counted)
        (ours if mine else other).append(name)
    return ours, other, summary


def _replaceable(spec: dict, store, prefix: str) -> list[str]:
    """What this job's commit will replace; raise if the job may not write the prefix."""
    ours, other, summary = _survey(store, prefix)
    if other:
        more = f" (and {len(other) - 1} more objects)" if len(other) > 1 else ""
        raise StorageError(
            f"output {prefix} already holds {other[0]!r}{more}, which kubemr did not write: kubemr "
            f"writes only part-NNNNN and {SUCCESS} there and never deletes or replaces "
            "anything else, even with output.overwrite: choose an output prefix of its own")
    if ours and not spec["output"].get("overwrite"):
        if summary is not None:
            raise StorageError(
                f"output {prefix} already holds a committed job ({SUCCESS} exists): choose "
                "another output.uri or set output.overwrite: true")
        raise StorageError(
            f"output {prefix} holds {ours[0]!r} but no {SUCCESS}: the parts of a kubemr commit "
            "that did not finish. Set output.overwrite: true to replace them, or choose "
            "another output.uri")
    return ours


def check_output(spec: dict, uid: str | None = None) -> list[str]:
    """Refuse an output prefix another job holds, one that holds objects kubemr did not write,
    and one holding a kubemr output unless overwriting. Return what an overwrite replaces.
    Reads only: claim_output is the check that counts."""
    prefix = output_prefix(spec)
    store = store_for(prefix)
    claim = _read_claim(store, join(prefix, LOCK))
    if claim is not None and not (uid and claim.get("uid") == uid):
        raise _held(prefix, claim)
    return _replaceable(spec, store, prefix)


def claim_output(spec: dict, holder: dict,
                 stale: Callable[[dict], bool] | None = None) -> dict:
    """Claim the output prefix for one job: its lock object, created only where none exists
    (If-None-Match: * on S3, an exclusive create on a filesystem), so of jobs racing for one
    output exactly one wins; the others get OutputInUse naming the winner.

    Idempotent for the same job (same uid): planning again after a restart keeps the claim.
    A lock for which `stale(lock)` is true (its job has ended or is gone) is taken over.
    The lock records what the commit may replace, surveyed once the lock is held."""
    if not holder.get("uid"):
        raise ValueError("an output is claimed by a job's uid: the holder has none")
    prefix = output_prefix(spec)
    store = store_for(prefix)
    lock = join(prefix, LOCK)
    for _ in range(5):
        claim = _read_claim(store, lock)
        if claim is None:
            claim = dict(holder)
            made = _folders_to_make(prefix)
            if made:
                claim["madeFolder"] = made  # removed again with the lock if left empty
            if not store.write_bytes_if_absent(lock, json.dumps(claim, indent=1).encode()):
                continue  # another job was quicker: read whose lock it is
        elif claim.get("unreadable") or claim.get("uid") != holder["uid"]:
            if stale is not None and not claim.get("unreadable") and stale(claim):
                store.delete(lock)
                continue
            raise _held(prefix, claim)
        if "replaces" not in claim:
            try:
                claim["replaces"] = _replaceable(spec, store, prefix)
            except BaseException:
                _drop(store, prefix, claim)
                raise
            store.write_bytes(lock, json.dumps(claim, indent=1).encode())
        return claim
    raise _held(prefix, _read_claim(store, lock) or {"unreadable": True})


def release_output(spec: dict, holds: Callable[[dict], bool]) -> bool:
    """Delete the output's lock if `holds(lock)` says it is this job's; True if it was."""
    prefix = output_prefix(spec)
    store = store_for(prefix)
    lock = join(prefix, LOCK)
    claim = _read_claim(store, lock)
    if claim is None or claim.get("unreadable") or not holds(claim):
        return False
    _drop(store, prefix, claim)
    return True


def _drop(store, prefix: str, claim: dict) -> None:
    store.delete(join(prefix, LOCK))
    if claim.get("madeFolder"):
        _remove_empty_folders(prefix, claim["madeFolder"])


def _folders_to_make(prefix: str) -> str | None:
    """For a file:// output that does not exist yet: the outermost folder the lock creates."""
    scheme, _, path = split_uri(prefix)
    path, made = path.rstrip("/"), None
    while scheme == "file" and path and not os.path.exists(path):
        made, path = path, os.path.dirname(path)
    return made


def _remove_empty_folders(prefix: str, made: str) -> None:
    """Remove the folders the claim made, from the output up to `made`, while they are empty:
    a job that fails leaves the filesystem as it was."""
    path = split_uri(prefix)[2].rstrip("/")
    if not made or not (path == made or path.startswith(made.rstrip("/") + "/")):
        return
    while True:
        try:
            os.rmdir(path)
        except OSError:
            return
        if path == made:
            return
        path = os.path.dirname(path)


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
    """Copy every committed part under the output prefix, write _SUCCESS, then release the
    output (its lock). Idempotent: once this job's _SUCCESS is there, it only releases.

    The job must hold the output (claim_output, with uid `job_uid`). Every part a reduce COMMIT
    names must pass `trusted`, and exist under `work`, before anything is copied or deleted.
    Deleted are only the earlier kubemr output the claim recorded; an object that appeared
    since is left alone, and one in the way of a part or _SUCCESS stops the commit before it
    changes anything."""
    if not job_uid:
        raise ValueError("commit_job needs the uid of the job that claimed the output")
    prefix = output_prefix(spec)
    store = store_for(prefix)

    def mine(claim: dict) -> bool:
        return claim.get("uid") == job_uid

    summary = committed_summary(spec)
    if isinstance(summary, dict) and summary.get("uid") == job_uid:
        release_output(spec, mine)  # this job committed already
        return prefix
    lock = join(prefix, LOCK)
    claim = _read_claim(store, lock)
    if claim is None:  # planned before outputs were claimed: claim it now
        try:
            claim = claim_output(spec, holder(job_name, uid=job_uid))
        except OutputInUse:
            raise
        except StorageError as e:
            raise OutputInUse(f"{e}; nothing was committed") from None
    elif claim.get("unreadable") or claim.get("uid") != job_uid:
        raise _held(prefix, claim)
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
    there = {o.uri for o in store_for(work).list(work + "/")}
    for r, data in enumerate(parts):
        if data not in there:
            raise StorageError(f"the COMMIT of reduce task {r} names {data!r}, which does not "
                               "exist: nothing was committed")
    written = {part_name(r) for r in range(spec["reducers"])} | {SUCCESS}
    replaces = set(claim.get("replaces") or ())
    present = [o.uri[len(prefix):] for o in store.list(prefix)]
    in_the_way = [n for n in present if n in written and n not in replaces
                  and not (claim.get("committing") and n != SUCCESS)]
    if in_the_way:
        raise OutputInUse(
            f"output {prefix} holds {in_the_way[0]!r}, written there after the job was "
            "planned, not by it: kubemr replaces only what it wrote, so nothing was committed")
    if not claim.get("committing"):
        claim["committing"] = True  # from here, parts present are this commit's or replaced
        store.write_bytes(lock, json.dumps(claim, indent=1).encode())
    if SUCCESS in present:
        store.delete(join(prefix, SUCCESS))
    for name in present:
        if name in replaces and name not in written:
            store.delete(join(prefix, name))
    for r, data in enumerate(parts):
        if store_for(data) is store:
            store.copy(data, join(prefix, part_name(r)))
        else:
            store.write_bytes(join(prefix, part_name(r)), store_for(data).read_bytes(data))
    summary = {"job": job_name, "namespace": claim.get("namespace", ""), "uid": job_uid,
               "parts": spec["reducers"], "counters": job_counters,
               "committedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    store.write_bytes(join(prefix, SUCCESS), json.dumps(summary, indent=1).encode())
    release_output(spec, mine)
    return prefix


def sum_counters(work: str, num_maps: int, num_reducers: int, num_combines: int = 0) -> dict:
    total: dict = {}
    for task_type, n in (("map", num_maps), ("combine", num_combines),
                         ("reduce", num_reducers)):
        for i in range(n):
            record = read_commit(work, task_type, i)
            if record:
                counter_math.add(total, record.get("counters", {}))
    return total
