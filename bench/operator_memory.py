"""The operator's memory and time per reconcile pass on a large job, without a cluster.

    nice -n 19 .venv/bin/python bench/operator_memory.py [--sizes 1000x100,10000x1000]
        [--rounds 3] [--dir /var/tmp] [--source CHECKOUT,CHECKOUT] [--trace]

A job of M map tasks and R reducers is built in a file:// work prefix exactly as its tasks and
the operator would leave it (plan.json and spec.json written by the pass itself over an input of
M small objects; attempt-N.started and .alive markers; map COMMITs each with a run index of R
[start, end, count] entries and counters; map outputs as sparse files of the indexed size; 1% of
the tasks with a failed first attempt, its .failed record, and a second attempt; reduce COMMITs
and small parts). The reconcile pass (kubemr_operator.reconcile.reconcile) runs against it in a
fresh subprocess with a stand-in for the API server that runs no processes: a pod is listed as
Running while its attempt runs, and not at all once it has committed (the operator lists only
unfinished pods). The job goes through four phases:

    plan       1 pass: plans M map tasks over the input, launches `parallelism` (24) pods
    mapping    3 passes: every map committed but the last 50; 24 of those running
    reducing   3 passes: every map committed; R/2 reduces committed, 24 running
    success    1 pass: every reduce committed: the job commit (R parts copied), the status,
               and the deletion of the work prefix

The state is written by this (parent) process between phases, so the subprocess measures only
what the operator does. It reports its RSS after imports (the baseline), and for each phase its
peak RSS (VmHWM, reset before the phase through /proc/self/clear_refs), its RSS after the phase,
the seconds (wall and CPU) of each pass, and the size of the job's status as the passes left
it. Sizes are interleaved round by round; the summary gives medians over the rounds. --source
runs the operator's code from each of several checkouts (PYTHONPATH; a `git worktree` of main
and this one, say), interleaved, to compare a change. --trace runs one more round per size under
tracemalloc and prints, per phase, the traced peak and the lines that hold the most memory once
the phase is over (slow: minutes at 10000x1000).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PARALLELISM = 24
UNCOMMITTED_MAPS = 50  # in the mapping phase: the last 50 maps, 24 of them running
PHASES = ("plan", "mapping", "reducing", "success")
PASSES = {"plan": 1, "mapping": 3, "reducing": 3, "success": 1}
NODES = ("node-a", "node-b", "node-c")
UID = "5e1f0c2a-9b7d-4e3a-8f61-0d2c4b6a8e10"
NAMESPACE = "bench"
TRACEBACK = ("Traceback (most recent call last):\n"
             '  File "/usr/local/lib/python3.11/site-packages/kubemr/runtime/worker.py", '
             "line 120, in main\n    record = run_task(task)\n" +
             '  File "<inline>", line 4, in mapper\n    yield row["user"], 1\n' * 12 +
             "KeyError: 'user'\n")


# -- the job's state in the store, as tasks leave it (the parent writes it) ------------------

def failed_first(index: int) -> bool:
    """1% of the tasks failed on their first attempt and ran a second."""
    return index % 100 == 7


def final_attempt(index: int) -> int:
    return 2 if failed_first(index) else 1


class JobState:
    def __init__(self, root: str, maps: int, reducers: int):
        self.root, self.maps, self.reducers = root, maps, reducers
        self.work = os.path.join(root, "work", NAMESPACE, f"bench-{UID[:8]}")
        rng = random.Random(maps * 100_003 + reducers)
        self.indexes = []  # 64 run indexes of R entries, as JSON, and the map output size each
        for _ in range(64):
            runs, offset = [], 0
            for _ in range(reducers):
                size = rng.randint(200, 4000)
                runs.append([offset, offset + size, rng.randint(10, 300)])
                offset += size
            self.indexes.append((json.dumps(runs), offset))
        self.now = time.time()

    def job(self) -> dict:
        from kubemr.spec.manifest import parse_manifest

        inputs = os.path.join(self.root, "in")
        os.makedirs(inputs)
        for i in range(self.maps):
            with open(os.path.join(inputs, f"{i:06d}.txt"), "w") as f:
                f.write(f"line {i} of the input\n" * 4)
        spec = parse_manifest({
            "apiVersion": "kubemr.io/v1alpha1", "kind": "MapReduceJob",
            "metadata": {"name": "bench", "namespace": NAMESPACE},
            "spec": {"input": {"uri": f"file://{inputs}/", "format": "text"},
                     "output": {"uri": f"file://{self.root}/out/", "format": "text"},
                     "mapper": "mapper", "reducer": "reducer", "combiner": "reducer",
                     "reducers": self.reducers, "parallelism": PARALLELISM,
                     "code": {"inline": "def mapper(k, v):\n    yield v, 1\n"
                                        "def reducer(k, vs):\n    yield k, sum(vs)\n"}},
        }).spec
        return {"apiVersion": "kubemr.io/v1alpha1", "kind": "MapReduceJob",
                "metadata": {"name": "bench", "namespace": NAMESPACE, "uid": UID,
                             "generation": 1, "resourceVersion": "1",
                             "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": spec, "status": {}}

    def _dir(self, kind: str, index: int) -> str:
        path = os.path.join(self.work, f"{kind}-{index:05d}")
        os.makedirs(path, exist_ok=True)
        return path

    def _write(self, path: str, data: bytes = b"") -> None:
        with open(path, "wb") as f:
            f.write(data)

    def _failed(self, kind: str, index: int) -> None:
        """Attempt 1 ran and failed: its markers and the operator's record of why."""
        folder = self._dir(kind, index)
        self._write(os.path.join(folder, "attempt-1.started"))
        self._write(os.path.join(folder, "attempt-1.alive"), b"52133")
        self._write(os.path.join(folder, "attempt-1.failed"), json.dumps({
            "failure": "UserError", "message": TRACEBACK[-4000:], "node": NODES[index % 3],
            "finished": self.now - 600, "lostMaps": []}).encode())

    def started(self, kind: str, index: int) -> tuple[str, int, int, str]:
        """The task's last attempt is running: its markers; the pod the stand-in lists."""
        if failed_first(index):
            self._failed(kind, index)
        number = final_attempt(index)
        folder = self._dir(kind, index)
        self._write(os.path.join(folder, f"attempt-{number}.started"))
        self._write(os.path.join(folder, f"attempt-{number}.alive"), b"1881")
        return kind, index, number, NODES[(index + 1) % 3]

    def committed(self, kind: str, index: int) -> None:
        """The task's last attempt ran and committed: markers, data and COMMIT."""
        self.started(kind, index)
        number = final_attempt(index)
        folder = self._dir(kind, index)
        record = {"attempt": number, "node": NODES[(index + 1) % 3],
                  "started": round(self.now - 900 + index * 0.05, 3),
                  "seconds": round(20 + index % 37 * 0.731, 3)}
        if kind == "map":
            index_json, size = self.indexes[index % len(self.indexes)]
            data = os.path.join(folder, f"attempt-{number}.out")
            with open(data, "wb") as f:
                f.truncate(size)  # sparse: listed with its size, costs no disk
            record.update(data="file://" + data, index="@INDEX@", counters={"kubemr": {
                "map_input_records": 4, "bytes_read": 88 + index, "map_output_records": 4,
                "combine_input_records": 4, "combine_output_records": 4,
                "spilled_records": 4, "map_output_bytes": size}, "user": {"lines": 4}})
            text = json.dumps(record, sort_keys=True).replace('"@INDEX@"', index_json)
        else:
            data = os.path.join(folder, f"attempt-{number}")
            self._write(data, "".join(f"word{index}-{i}\t{i * 7}\n"
                                      for i in range(12)).encode())
            record.update(data="file://" + data, counters={"kubemr": {
                "shuffle_bytes": 2100 * self.maps + index, "reduce_input_groups": 12,
                "reduce_output_records": 12, "bytes_written": 180}})
            text = json.dumps(record, sort_keys=True)
        self._write(os.path.join(folder, "COMMIT"), text.encode())

    # The phases: each returns the attempts running (pods listed as Running) during it.

    def mapping(self) -> list:
        """Every map committed but the last 50 (what the plan pass launched among them), 24
        of those running."""
        first_open = self.maps - UNCOMMITTED_MAPS
        for m in range(first_open):
            self.committed("map", m)
        return [self.started("map", m) for m in range(first_open, first_open + PARALLELISM)]

    def reducing(self) -> list:
        for m in range(self.maps - UNCOMMITTED_MAPS, self.maps):
            self.committed("map", m)
        half = self.reducers // 2
        for r in range(half):
            self.committed("reduce", r)
        return [self.started("reduce", r)
                for r in range(half, min(self.reducers, half + PARALLELISM))]

    def success(self) -> list:
        for r in range(self.reducers // 2, self.reducers):
            self.committed("reduce", r)
        return []

    def disk_bytes(self) -> int:
        total = 0
        for folder, _, files in os.walk(self.root):
            for name in files:
                total += os.stat(os.path.join(folder, name)).st_blocks * 512
        return total


# -- the operator's side (the child process) -------------------------------------------------

def memory_kib() -> dict[str, int]:
    with open("/proc/self/status") as f:
        return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f)
                if k in ("VmRSS", "VmHWM")}


def reset_peak() -> bool:
    """Set VmHWM to the current RSS (Linux: 5 > /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class StandInKube:
    """The calls kubemr_operator.kube.Kube answers, with no processes behind the pods: a pod is
    Running until the state says its attempt ended; the job is the object the pass patches."""

    def __init__(self, job: dict):
        self.job = job
        self.pods: dict[str, dict] = {}
        self.created: list = []
        self.events = 0

    def set_running(self, attempts: list) -> None:
        from kubemr_operator.pods import pod_name

        from kubemr.spec.names import job_labels

        meta = self.job["metadata"]
        self.pods = {}
        for kind, index, number, node in attempts:
            name = pod_name(meta["name"], meta["uid"], kind, index, number)
            started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 30))
            self.pods[name] = {  # as Kube.list_pods returns a pod: trimmed, spec = nodeName
                "metadata": {
                    "name": name, "namespace": NAMESPACE, "uid": f"{index:08d}-{number}",
                    "creationTimestamp": started, "resourceVersion": str(1000 + index),
                    "labels": {**job_labels(meta["name"], meta["uid"]),
                               "app.kubernetes.io/component": kind,
                               "kubemr.io/task-type": kind, "kubemr.io/task-index": str(index),
                               "kubemr.io/attempt": str(number)},
                    "ownerReferences": [{"apiVersion": self.job["apiVersion"],
                                         "kind": self.job["kind"], "name": meta["name"],
                                         "uid": meta["uid"], "controller": True,
                                         "blockOwnerDeletion": True}]},
                "spec": {"nodeName": node},
                "status": {
                    "phase": "Running", "hostIP": "10.0.0.2", "podIP": "10.244.1.17",
                    "startTime": started, "qosClass": "Burstable",
                    "conditions": [{"type": t, "status": "True",
                                    "lastTransitionTime": started}
                                   for t in ("Initialized", "Ready", "ContainersReady",
                                             "PodScheduled")],
                    "containerStatuses": [{
                        "name": "task", "ready": True, "restartCount": 0, "started": True,
                        "image": "kubemr/kubemr:dev", "imageID": "sha256:" + "0" * 64,
                        "containerID": "containerd://" + "1" * 64,
                        "state": {"running": {"startedAt": started}}}]}}

    def list_pods(self, namespace, selector, unfinished=False):
        key, _, value = selector.partition("=")
        return [json.loads(json.dumps(p)) for p in self.pods.values()  # fresh, as parsed
                if p["metadata"]["labels"].get(key) == value]

    def list_jobs(self, namespaces=()):
        return [self.job]

    def read_secret(self, namespace, name):
        return {"accessKey": "team", "secretKey": "team-secret"}  # the job's storage Secret

    def get_job(self, namespace, name):
        return json.loads(json.dumps(self.job))  # read afresh, as parsed from the API server

    def ready_nodes(self):
        return set(NODES)

    def node_zones(self):
        return {}

    def create_pod(self, pod):
        labels = pod["metadata"]["labels"]
        self.created.append(("map" if labels["kubemr.io/task-type"] == "map" else "reduce",
                             int(labels["kubemr.io/task-index"]),
                             int(labels["kubemr.io/attempt"])))
        pod = json.loads(json.dumps(pod))
        pod["metadata"]["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                             time.gmtime())
        pod["spec"] = {"nodeName": NODES[len(self.created) % 3]}
        pod["status"] = {"phase": "Pending"}
        self.pods[pod["metadata"]["name"]] = pod

    def delete_pod(self, namespace, name):
        self.pods.pop(name, None)

    def patch_status(self, namespace, name, status, resource_version=None):
        meta = self.job["metadata"]
        if resource_version and resource_version != meta["resourceVersion"]:
            raise SystemExit("a status write against a stale job: nothing else writes it here")
        self.job["status"] = {**self.job.get("status", {}), **status}
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)

    def delete_job(self, namespace, name):
        pass

    def post_event(self, job, event_type, reason, message):
        self.events += 1


def child(job_path: str, work_uri: str, trace: bool) -> None:
    """Import what the operator's process imports, then run the passes each command asks for,
    answering with one JSON line per command."""
    import gc

    import kubemr_operator.handlers  # noqa: F401  (kopf, the Kubernetes client, the pass)
    from kubemr_operator.config import Settings
    from kubemr_operator.reconcile import reconcile

    with open(job_path) as f:
        job = json.load(f)
    settings = Settings(work_uri=work_uri, local_paths=True)
    kube = StandInKube(job)
    gc.collect()
    print(json.dumps({"baseline": memory_kib()}), flush=True)
    if trace:
        import tracemalloc

        tracemalloc.start(1)
    for line in sys.stdin:
        command = json.loads(line)
        kube.set_running(command["running"])
        kube.created = []
        resettable = reset_peak()
        if trace:
            tracemalloc.reset_peak()
        seconds, cpu = [], []
        for _ in range(command["passes"]):
            started, cpu_started = time.perf_counter(), time.process_time()
            reconcile(kube.job, kube, settings, kube.post_event)  # which reads it afresh
            seconds.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
        result = {"phase": command["phase"], "memory": memory_kib(), "reset": resettable,
                  "seconds": seconds, "cpu": cpu, "status": kube.job.get("status", {}).get("phase"),
                  "statusBytes": len(json.dumps(kube.job.get("status", {}))),
                  "jobBytes": len(json.dumps(kube.job)), "created": kube.created}
        gc.collect()
        result["afterGc"] = memory_kib()["VmRSS"]
        if trace:
            import tracemalloc

            held, peak = tracemalloc.get_traced_memory()
            top = tracemalloc.take_snapshot().statistics("lineno")[:8]
            result["trace"] = {"held": held, "peak": peak,
                               "top": [f"{s.size / 2**20:7.2f} MiB {s.count:8d} blocks  "
                                       f"{s.traceback[0].filename.split('site-packages/')[-1]}"
                                       f":{s.traceback[0].lineno}" for s in top]}
        print(json.dumps(result), flush=True)


# -- the parent: build, drive, summarize -----------------------------------------------------

def one_round(maps: int, reducers: int, base: str, source: str | None = None,
              trace: bool = False) -> dict:
    root = tempfile.mkdtemp(prefix=f"kubemr-opmem-{maps}x{reducers}-", dir=base)
    try:
        state = JobState(root, maps, reducers)
        job_path = os.path.join(root, "job.json")
        with open(job_path, "w") as f:
            json.dump(state.job(), f)
        process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--child", job_path,
             "--work-uri", f"file://{root}/work", *(["--trace"] if trace else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONPATH=f"{source}{os.pathsep}{source}/operator")
            if source else None)
        try:
            result = {"size": f"{maps}x{reducers}", "source": source,
                      "baseline": json.loads(process.stdout.readline())["baseline"]}
            disk = 0
            for phase in PHASES:
                running = [] if phase == "plan" else getattr(state, phase)()
                if phase == "success":
                    disk = state.disk_bytes()
                process.stdin.write(json.dumps({"phase": phase, "passes": PASSES[phase],
                                                "running": running}) + "\n")
                process.stdin.flush()
                answer = process.stdout.readline()
                if not answer:
                    raise SystemExit(f"the operator's process ended in phase {phase}")
                result[phase] = json.loads(answer)
                # What the passes launched must be what the next phase's state accounts for:
                # the plan pass's first maps (committed in the mapping phase), and nothing
                # later (every slot is taken by the running attempts).
                created = result[phase]["created"]
                want = [["map", m, 1] for m in range(PARALLELISM)] if phase == "plan" else []
                if created != want:
                    raise SystemExit(f"{maps}x{reducers}: the {phase} passes launched "
                                     f"{created[:5]}..., not {want[:5]}...")
            result["diskBytes"] = disk
        finally:
            process.stdin.close()
            process.wait()
        want = {"plan": "Mapping", "mapping": "Mapping", "reducing": "Reducing",
                "success": "Succeeded"}
        for phase, status in want.items():
            if result[phase]["status"] != status:
                raise SystemExit(f"{maps}x{reducers}: after the {phase} passes the job is "
                                 f"{result[phase]['status']}, not {status}")
        if os.path.exists(state.work):
            raise SystemExit(f"{maps}x{reducers}: the job's work prefix was not deleted")
        if len([n for n in os.listdir(os.path.join(root, "out")) if n.startswith("part-")]) \
                != reducers:
            raise SystemExit(f"{maps}x{reducers}: the output does not hold {reducers} parts")
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


def mib(kib: float) -> str:
    return f"{kib / 1024:6.1f}"


def label(source: str | None) -> str:
    if not source:
        return ""
    commit = subprocess.run(["git", "-C", source, "log", "-1", "--format=%h"],
                            capture_output=True, text=True).stdout.strip()
    return commit or os.path.basename(source.rstrip("/"))


def summary(results: list[dict]) -> None:
    configs = list(dict.fromkeys((r["size"], r["source"]) for r in results))
    print(f"\nmedians over {len(results) // len(configs)} rounds: RSS in MiB (peak: VmHWM in the "
          "phase; +base: over the baseline; after: at its end; gc: after gc.collect()); seconds "
          "per pass, wall and CPU, of the phase's first pass and of the others; the status's "
          "bytes")
    print(f"{'job':>18} {'phase':9} {'peak':>6} {'+base':>6} {'after':>6} {'gc':>6} "
          f"{'1st s':>6} {'cpu':>6} {'next s':>6} {'cpu':>6} {'status B':>9}")
    growth = {}
    for size, source in configs:
        rs = [r for r in results if (r["size"], r["source"]) == (size, source)]
        base = statistics.median(r["baseline"]["VmRSS"] for r in rs)
        print(f"{size + ' ' + label(source):>18} {'baseline':9} {mib(base)}")
        peaks = []
        for phase in PHASES:
            peak = statistics.median(r[phase]["memory"]["VmHWM"] for r in rs)
            after = statistics.median(r[phase]["memory"]["VmRSS"] for r in rs)
            gc_after = statistics.median(r[phase]["afterGc"] for r in rs)
            times = []
            for what in ("seconds", "cpu"):
                first = statistics.median(r[phase][what][0] for r in rs)
                rest = [statistics.median(r[phase][what][1:]) for r in rs
                        if len(r[phase][what]) > 1]
                times += [f"{first:6.2f}", f"{statistics.median(rest):6.2f}" if rest else
                          f"{'-':>6}"]
            wall_first, cpu_first, wall_rest, cpu_rest = times[0], times[2], times[1], times[3]
            status = statistics.median(r[phase]["statusBytes"] for r in rs)
            peaks.append(peak)
            print(f"{'':>18} {phase:9} {mib(peak)} {mib(peak - base)} {mib(after)} "
                  f"{mib(gc_after)} {wall_first} {cpu_first} {wall_rest} {cpu_rest} "
                  f"{status:9.0f}")
        growth[size, source] = max(peaks) - base
        disk = statistics.median(r["diskBytes"] for r in rs) / 2**20
        print(f"{'':>18} peak over the job {mib(max(peaks))} MiB, "
              f"{mib(growth[size, source]).strip()} MiB over the baseline; work prefix "
              f"{disk:.0f} MiB on disk")
    sizes = list(dict.fromkeys(size for size, _ in configs))
    sources = list(dict.fromkeys(source for _, source in configs))
    print()
    for source in sources:
        for small, large in zip(sizes, sizes[1:], strict=False):
            (m1, r1), (m2, r2) = (tuple(int(n) for n in s.split("x")) for s in (small, large))
            print(f"growth over the baseline{' of ' + label(source) if source else ''}, "
                  f"{large} against {small}: "
                  f"x{growth[large, source] / growth[small, source]:.1f} (M grows "
                  f"x{m2 / m1:.0f}, M x R x{m2 * r2 / (m1 * r1):.0f})")
    for size in sizes:
        for other in sources[1:]:
            print(f"growth over the baseline at {size}, {label(other)} against "
                  f"{label(sources[0])}: {growth[size, other] / growth[size, sources[0]]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000x100,10000x1000",
                        help="jobs as MAPSxREDUCERS, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=tempfile.gettempdir(),
                        help="where to build each job's store (deleted after each round)")
    parser.add_argument("--trace", action="store_true",
                        help="one more round per size under tracemalloc")
    parser.add_argument("--source", default="",
                        help="checkouts whose operator to run, comma-separated, interleaved "
                             "(default: the installed one): compares a change against main")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work-uri", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.work_uri, args.trace)
        return
    sizes = [tuple(int(n) for n in s.split("x")) for s in args.sizes.split(",")]
    sources = [os.path.abspath(s) for s in args.source.split(",") if s] or [None]
    results = []
    started = time.time()
    for run in range(args.rounds):
        for (maps, reducers), source in ((size, s) for size in sizes for s in sources):
            r = one_round(maps, reducers, args.dir, source)
            results.append(r)
            print(f"round {run + 1} {(r['size'] + ' ' + label(source)).strip():>18}: baseline "
                  f"{mib(r['baseline']['VmRSS'])} MiB; peak per phase " +
                  " ".join(f"{p} {mib(r[p]['memory']['VmHWM']).strip()}" for p in PHASES) +
                  "; s per pass (CPU s) " + " ".join(
                      f"{p} " + "/".join(f"{s:.2f} ({c:.2f})" for s, c in
                                         zip(r[p]["seconds"], r[p]["cpu"], strict=True))
                      for p in PHASES) +
                  f"; status {r['success']['statusBytes']} B "
                  f"({time.time() - started:.0f}s)", flush=True)
    if results:
        summary(results)
    if args.trace:
        for (maps, reducers), source in ((size, s) for size in sizes for s in sources):
            r = one_round(maps, reducers, args.dir, source, trace=True)
            print(f"\ntracemalloc, {r['size']} {label(source)} (its own overhead included in "
                  "RSS here):")
            for phase in PHASES:
                t = r[phase]["trace"]
                print(f"  {phase}: traced peak {t['peak'] / 2**20:.1f} MiB, held after "
                      f"{t['held'] / 2**20:.1f} MiB; largest holders:")
                for line in t["top"]:
                    print(f"      {line}")


if __name__ == "__main__":
    main()
