"""The Python SDK: submit plain Python functions as a MapReduce job, follow it, read results.

Functions of any kind (lambdas, closures, functions defined in __main__ or a notebook) travel
with cloudpickle, uploaded next to the job, never inside the MapReduceJob resource. Modules of
the user's own (not installed in site-packages) travel by value, so the image need not hold them.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import sys
import sysconfig
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from kubemr.errors import JobFailed, KubemrError, NotFound
from kubemr.spec.manifest import parse_manifest
from kubemr.spec.names import API_VERSION, KIND
from kubemr.storage import join, normalize_uri, store_for

ROLES = ("mapper", "reducer", "combiner", "partitioner", "valueKey")
DEFAULT_WORK_URI = "s3://kubemr-work"  # the chart's workUri
DEFAULT_CODE_URI = DEFAULT_WORK_URI + "/code"


def _installed_paths() -> tuple[str, ...]:
    paths = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return tuple(os.path.realpath(p) for p in paths)


def _register_user_modules(functions: dict[str, Callable]) -> None:
    """Ship the user's own modules by value: every module a function comes from or refers to
    that is not part of Python or an installed package."""
    import cloudpickle

    installed = _installed_paths()
    seen: set[str] = set()
    pending = [getattr(fn, "__module__", None) for fn in functions.values()]
    for fn in functions.values():
        pending.extend(getattr(v, "__name__", None) for v in getattr(fn, "__globals__", {})
                       .values() if type(v).__name__ == "module")
    while pending:
        name = pending.pop()
        if not name or name in seen or name == "__main__" or name not in sys.modules:
            continue
        seen.add(name)
        module = sys.modules[name]
        path = getattr(module, "__file__", None)
        if not path or os.path.realpath(path).startswith(installed):
            continue
        top = name.split(".")[0]
        if top in ("kubemr", "kubemr_operator"):
            continue
        cloudpickle.register_pickle_by_value(sys.modules[top])


def bundle_functions(functions: dict[str, Callable]) -> bytes:
    """The bytes of code.pickle: the functions, and the Python and cloudpickle that made them."""
    import cloudpickle

    _register_user_modules(functions)
    return pickle.dumps({
        "python": platform.python_version(),
        "cloudpickle": cloudpickle.__version__,
        "functions": cloudpickle.dumps(functions),
    })


@dataclass
class LocalJob:
    """A job run on this machine by the local runner; done when submit() returns."""

    name: str
    output: str
    output_format: str
    result: object = None

    def wait(self, timeout: float | None = None, progress: bool = False) -> LocalJob:
        return self

    def status(self) -> dict:
        return {"phase": "Succeeded", "output": self.output}

    def counters(self) -> dict:
        return self.result.counters

    def results(self) -> Iterator[tuple]:
        return read_output(self.output, self.output_format)


@dataclass
class Job:
    """A MapReduceJob on the cluster."""

    name: str
    namespace: str
    cluster: object = field(repr=False)

    def _job(self) -> dict:
        return self.cluster.get_job(self.namespace, self.name)

    def status(self) -> dict:
        return self._job().get("status") or {}

    def counters(self) -> dict:
        return self.status().get("counters", {})

    def wait(self, timeout: float | None = None, progress: bool = False) -> Job:
        """Block until the job ends; raise JobFailed with the reason if it failed."""
        deadline = None if timeout is None else time.time() + timeout
        bar = ProgressBar() if progress else None
        while True:
            status = self.status()
            if bar:
                bar.show(status)
            if status.get("phase") == "Succeeded":
                if bar:
                    bar.close()
                return self
            if status.get("phase") == "Failed":
                if bar:
                    bar.close()
                raise JobFailed(f"job {self.name} failed: {status.get('message', '')}")
            if deadline is not None and time.time() > deadline:
                raise TimeoutError(f"job {self.name} did not finish within {timeout}s")
            time.sleep(1)

    def results(self) -> Iterator[tuple]:
        spec = self._job()["spec"]
        return read_output(spec["output"]["uri"], spec["output"].get("format", "text"))

    def logs(self, task: str = "map-0", attempt: int | None = None) -> str:
        """The log of a task's attempt (default: its latest), the task named like map-3 or
        reduce-0: its pod's while the pod exists, else the tail the attempt stored (the last
        MiB of its stdout and stderr, kept until the job is deleted)."""
        from kubemr.runtime.logs import parse_task, stored_attempts

        kind, index = parse_task(task)
        job = self._job()
        pods = {a.attempt: a for a in self.cluster.attempts(self.namespace, self.name)
                if (a.task_type, a.index) == (kind, index)}
        uri = logs_folder(job)
        try:
            stored, unreadable = stored_attempts(uri, kind, index), None
        except KubemrError as e:  # the store: unreachable, or no credentials here
            stored, unreadable = {}, e
        numbers = set(pods) | set(stored)
        if not numbers:
            if unreadable:
                raise KubemrError(f"{task} of job {self.name} has no pod, and its stored logs "
                                  f"cannot be read: {unreadable}")
            raise NotFound(f"job {self.name} has no task {task} (yet)")
        number = attempt if attempt is not None else max(numbers)
        if number in pods:
            try:
                return self.cluster.logs(self.namespace, pods[number].pod)
            except KubemrError:
                if number not in stored:
                    raise
        if number in stored:
            return store_for(stored[number]).read_bytes(stored[number]).decode(
                "utf-8", errors="replace")
        detail = f" (its stored logs cannot be read: {unreadable})" if unreadable else ""
        raise NotFound(f"{task} of job {self.name} has no attempt {number}: its attempts "
                       f"are {', '.join(map(str, sorted(numbers)))}{detail}")

    def cancel(self) -> None:
        self.cluster.delete_job(self.namespace, self.name)


def logs_folder(job: dict) -> str:
    """Where a job's attempt logs are: its status says, else they are under the operator's work
    URI (KUBEMR_WORK_URI here, if the chart's workUri is not the default)."""
    from kubemr.runtime.logs import job_logs_uri

    if (job.get("status") or {}).get("logs"):
        return job["status"]["logs"]
    meta = job["metadata"]
    return job_logs_uri(os.environ.get("KUBEMR_WORK_URI") or DEFAULT_WORK_URI,
                        meta.get("namespace", "default"), meta["name"], meta["uid"])


class ProgressBar:
    """One line on stderr: maps and reduces done, and output records per second."""

    def __init__(self) -> None:
        self.started = time.time()

    def show(self, status: dict) -> None:
        maps, reduces = status.get("maps", {}), status.get("reduces", {})

        def bar(counts: dict) -> str:
            total, done = counts.get("total", 0), counts.get("succeeded", 0)
            filled = int(20 * done / total) if total else 0
            return f"[{'#' * filled}{'.' * (20 - filled)}] {done}/{total}"

        records = status.get("counters", {}).get("kubemr", {}).get("map_input_records", 0)
        rate = records / max(time.time() - self.started, 1e-3)
        line = (f"\r{status.get('phase', 'Pending'):<9} maps {bar(maps)} reduces {bar(reduces)}"
                f" {rate:,.0f} rec/s")
        print(line, end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        print(file=sys.stderr)


def read_output(output_uri: str, output_format: str) -> Iterator[tuple]:
    """Every (key, value) of a committed output, part by part."""
    prefix = normalize_uri(output_uri)
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    store = store_for(prefix)
    if not store.exists(join(prefix, "_SUCCESS")):
        raise KubemrError(f"{prefix} holds no committed output (no _SUCCESS)")
    for obj in store.list(prefix):
        if not obj.uri[len(prefix):].startswith("part-"):
            continue
        for line in store.read_bytes(obj.uri).decode("utf-8").splitlines():
            if output_format == "jsonl":
                key, value = json.loads(line)
                yield (tuple(key) if isinstance(key, list) else key), value
            else:
                yield tuple(line.split("\t", 1))


def _manifest(name: str, namespace: str, functions: dict, code_uri: str, input, output,
              input_format: str, output_format: str, overwrite: bool, reducers: int,
              spec: dict) -> dict:
    return {
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "input": ({"uris": list(input)} if isinstance(input, list | tuple) else
                      {"uri": input}) | {"format": input_format},
            "output": {"uri": output, "format": output_format, "overwrite": overwrite},
            **{role: role for role in functions},
            "reducers": reducers,
            "code": {"pickle": code_uri},
            **spec,
        },
    }


def submit(mapper: Callable, reducer: Callable | None = None, *, input: str | list[str],
           output: str, combiner: Callable | None = None, partitioner: Callable | None = None,
           value_key: Callable | None = None, reducers: int = 1, name: str | None = None,
           namespace: str = "default", input_format: str = "text", output_format: str = "jsonl",
           overwrite: bool = False, local: bool = False, workers: int | None = None,
           code_uri: str | None = None, **spec) -> Job | LocalJob:
    """Run mapper/reducer over `input` into `output`: on the cluster, or here with local=True.

    Extra keyword arguments are MapReduceJob spec fields (sortValues, maxAttempts, ...);
    `value_key` orders each key's values (spec.valueKey).
    """
    functions = {role: fn for role, fn in zip(ROLES, (mapper, reducer, combiner, partitioner,
                                                      value_key), strict=True)
                 if fn is not None}
    name = name or f"job-{uuid.uuid4().hex[:8]}"
    bundle = bundle_functions(functions)
    if local:
        import tempfile

        from kubemr.runtime.local import run_local

        folder = tempfile.mkdtemp(prefix="kubemr-code-")
        uri = "file://" + os.path.join(folder, "functions.pkl")
        store_for(uri).write_bytes(uri, bundle)
        manifest = _manifest(name, namespace, functions, uri, input, output, input_format,
                             output_format, overwrite, reducers, spec)
        result = run_local(parse_manifest(manifest), workers=workers)
        return LocalJob(name, output, output_format, result)
    from kubemr.client.cluster import Cluster

    cluster = Cluster()
    base = code_uri or os.environ.get("KUBEMR_CODE_URI") or DEFAULT_CODE_URI
    uri = join(base, namespace, f"{name}-{uuid.uuid4().hex[:8]}.pkl")
    manifest = _manifest(name, namespace, functions, uri, input, output, input_format,
                         output_format, overwrite, reducers, spec)
    from kubemr.engine.commit import check_output

    check_output(parse_manifest(manifest).spec)
    store_for(uri).write_bytes(uri, bundle)
    cluster.create_job(manifest)
    return Job(name, namespace, cluster)


@dataclass
class Step:
    """One job of a pipeline."""

    mapper: Callable
    reducer: Callable | None = None
    combiner: Callable | None = None
    partitioner: Callable | None = None
    reducers: int = 1


class Pipeline:
    """Several jobs in a chain, each step's output the next step's input (mrjob's steps).

    Subclass and define steps(), or pass the steps. Every step after the first gets the
    previous step's (key, value) pairs as its mapper's input.
    """

    def __init__(self, steps: list[Step] | None = None):
        self._steps = steps

    def steps(self) -> list[Step]:
        if self._steps is None:
            raise NotImplementedError("define steps() or pass steps=[...]")
        return self._steps

    def run(self, input: str | list[str], output: str, *, local: bool = False,
            input_format: str = "text", name: str | None = None, **options) -> Job | LocalJob:
        steps = self.steps()
        name = name or f"pipeline-{uuid.uuid4().hex[:6]}"
        current_input, current_format = input, input_format
        overwrite = options.pop("overwrite", False)
        job = None
        for i, step in enumerate(steps):
            last = i == len(steps) - 1
            step_output = output if last else f"{output.rstrip('/')}.step-{i}/"
            mapper = step.mapper if i == 0 else _from_pairs(step.mapper)
            job = submit(mapper, step.reducer, input=current_input, output=step_output,
                         combiner=step.combiner, partitioner=step.partitioner,
                         reducers=step.reducers, name=f"{name}-{i}", local=local,
                         input_format=current_format, output_format="jsonl",
                         overwrite=overwrite or not last, **options)
            job.wait()
            current_input, current_format = step_output, "jsonl"
        return job


def _from_pairs(mapper: Callable) -> Callable:
    def pairs_mapper(_offset, pair):
        key, value = pair
        return mapper(tuple(key) if isinstance(key, list) else key, value)

    return pairs_mapper
