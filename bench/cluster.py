"""Cluster benchmarks: job overhead against bare pods, and word count throughput.

    eval "$(hack/cluster.sh env)"      # a cluster with the operator installed (helm)
    python bench/cluster.py overhead [--runs 5]
    python bench/cluster.py throughput [--size-mib 1024] [--runs N] [--parallelism 4]
    python bench/cluster.py scale [--maps 1000]
    python bench/cluster.py indexed [--maps 1000]
    python bench/cluster.py small-files [--runs 3]
    python bench/cluster.py speculation [--runs 3]
    python bench/cluster.py report /tmp/kubemr-bench-JOB.json

On a shared test cluster, `--lock /tmp/kubemr-cluster.lock` holds its lock for each cluster job,
and `--deploy REPO` deploys that checkout (image, CRD, chart) before each (throughput,
small-files, scale).

overhead: seconds from `kubectl apply` of a trivial job (1 map, 1 reduce) to phase Succeeded,
against two bare pods of the same image run one after the other (create, wait for Succeeded,
then the next); median of --runs, and their ratio (target: at most 1.3).
throughput: word count over a corpus in MinIO on the cluster, against the local runner over the
same corpus on this machine (2 workers), in interleaved rounds; MB/s of each, their ratio, and
where the cluster's time went (slot-seconds per step, from its pods' commit records; each run's
attempts are saved to /tmp/kubemr-bench-JOB.json).
scale: a job of --maps map tasks (one small object each) and 2 reduces, run to Succeeded while
the operator's process is watched: its peak RSS (VmHWM; target under 200 MiB), the job's
duration and the size of the job object in etcd.
indexed: a Kubernetes Indexed Job of --maps pods of the task image (each imports the worker
and exits), parallelism 24 as in scale: the floor for a job of one pod per task.
report: the breakdown again, from the attempt files a throughput run saved in /tmp.
small-files: word count over 2,000 files of at most 1 KB in MinIO (one packed map task), against
the local runner over the same files (bench/small_files.py); both outputs checked exactly.
speculation: a word count of 24 map tasks whose mapper is slow on one node only (it sleeps
60 s per attempt there), with speculation off and on, against the same job with no slow node;
median seconds of each over --runs interleaved rounds, and the ratios to the job with no slow
node (target with speculation: at most 1.2).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wordcount import SOURCE as WORDCOUNT_SOURCE  # noqa: E402  (the same job as locally)

IMAGE = os.environ.get("KUBEMR_IMAGE", "kubemr/kubemr:dev")
NAMESPACE = "kubemr-bench"
SYSTEM = "kubemr-system"


def kubectl(*args: str, input: str | None = None) -> str:
    return subprocess.run(
        ["kubectl", *args], input=input, capture_output=True, text=True, check=True
    ).stdout


_api_client = None


def get(kind: str, name: str) -> dict:
    """The object as JSON. Pods, Jobs and MapReduceJobs, which the benchmarks poll, are read in
    this process: a kubectl process per poll costs about 0.3 s of CPU, taken from the two
    cores the cluster under test runs on (at 10 polls a second, a third of the machine)."""
    global _api_client
    from kubernetes import client, config

    from kubemr.spec.names import GROUP, PLURAL, VERSION

    if _api_client is None:
        config.load_kube_config()
        _api_client = client.ApiClient()
    if kind == "mapreducejob":
        return client.CustomObjectsApi(_api_client).get_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, name)
    if kind == "job":
        found = client.BatchV1Api(_api_client).read_namespaced_job(name, NAMESPACE)
    elif kind == "pod":
        found = client.CoreV1Api(_api_client).read_namespaced_pod(name, NAMESPACE)
    else:
        return json.loads(kubectl("get", kind, name, "-n", NAMESPACE, "-o", "json"))
    return _api_client.sanitize_for_serialization(found)


def setup_storage() -> None:
    secret = json.loads(kubectl("get", "secret", "minio-credentials", "-n", SYSTEM, "-o", "json"))[
        "data"
    ]
    ip = json.loads(kubectl("get", "service", "minio", "-n", SYSTEM, "-o", "json"))["spec"][
        "clusterIP"
    ]
    os.environ.update(
        KUBEMR_S3_ENDPOINT=f"http://{ip}:9000",
        KUBEMR_S3_ACCESS_KEY=base64.b64decode(secret["accessKey"]).decode(),
        KUBEMR_S3_SECRET_KEY=base64.b64decode(secret["secretKey"]).decode(),
    )
    subprocess.run(["kubectl", "create", "namespace", NAMESPACE], capture_output=True)
    kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "minio-credentials", "namespace": NAMESPACE},
                "data": secret,
            }
        ),
    )


def bare_pod_seconds() -> float:
    started = time.time()
    for _ in range(2):
        name = f"bare-{uuid.uuid4().hex[:6]}"
        kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name, "namespace": NAMESPACE},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "task",
                                "image": IMAGE,
                                "imagePullPolicy": "IfNotPresent",
                                "command": ["python", "-c", "import kubemr.runtime.worker"],
                            }
                        ],
                    },
                }
            ),
        )
        while get("pod", name)["status"].get("phase") not in ("Succeeded", "Failed"):
            time.sleep(0.1)
    return time.time() - started


def job_seconds(job: dict, timeout: float = 3600) -> float:
    started = time.time()
    kubectl("apply", "-f", "-", input=json.dumps(job))
    name = job["metadata"]["name"]
    while time.time() - started < timeout:
        phase = (get("mapreducejob", name).get("status") or {}).get("phase")
        if phase == "Succeeded":
            return time.time() - started
        if phase == "Failed":
            raise SystemExit(f"job {name} failed: {get('mapreducejob', name)['status']}")
        time.sleep(0.1)
    raise SystemExit(f"job {name} did not finish within {timeout}s")


def job_manifest(name: str, input_uri: str, output_uri: str, **spec) -> dict:
    return {
        "apiVersion": "kubemr.io/v1alpha1",
        "kind": "MapReduceJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "input": {"uri": input_uri},
            "output": {"uri": output_uri},
            "mapper": "mapper",
            "reducer": "reducer",
            "combiner": "reducer",
            "storage": {"secretName": "minio-credentials"},
            "code": {"inline": WORDCOUNT_SOURCE},
            **spec,
        },
    }


def overhead(runs: int) -> None:
    from kubemr.storage import store_for

    bucket = f"s3://bench-{uuid.uuid4().hex[:8]}"
    store_for(bucket + "/").write_bytes(f"{bucket}/in/tiny.txt", b"one two two three\n")
    bare, jobs = [], []
    for i in range(runs):
        bare.append(bare_pod_seconds())
        jobs.append(
            job_seconds(
                job_manifest(
                    f"tiny-{i}-{uuid.uuid4().hex[:4]}", f"{bucket}/in/", f"{bucket}/out-{i}/"
                )
            )
        )
        print(f"run {i + 1}: two bare pods {bare[-1]:.2f}s, job {jobs[-1]:.2f}s", flush=True)
    b, j = statistics.median(bare), statistics.median(jobs)
    print(
        f"median: two bare pods {b:.2f}s, trivial job {j:.2f}s, ratio {j / b:.2f} (target <= 1.3)"
    )


def deploy(repo: str) -> None:
    """This checkout's image into the nodes and its chart installed (the operator restarted
    on it): other users of the cluster may have deployed theirs since the last round."""
    subprocess.run([os.path.join(repo, "hack", "cluster.sh"), "up"], check=True,
                   capture_output=True)
    kubectl("apply", "-f", os.path.join(repo, "crds", "mapreducejob.yaml"))
    chart = os.path.join(repo, "charts", "kubemr")
    subprocess.run(["helm", "upgrade", "--install", "kubemr", chart,
                    "--namespace", SYSTEM, "--wait", "--timeout", "300s"],
                   check=True, capture_output=True)
    kubectl("-n", SYSTEM, "rollout", "restart", "deploy/kubemr-operator")
    kubectl("-n", SYSTEM, "rollout", "status", "deploy/kubemr-operator", "--timeout=180s")
    # a restarted operator acts once one of its new replicas holds the Lease (up to 19 s)
    deadline = time.time() + 120
    while time.time() < deadline:
        pods = json.loads(kubectl("get", "pods", "-n", SYSTEM, "-l",
                                  "app.kubernetes.io/name=kubemr", "-o", "json"))["items"]
        running = {p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"
                   and not p["metadata"].get("deletionTimestamp")}
        lease = json.loads(kubectl("get", "lease", "kubemr-operator", "-n", SYSTEM, "-o",
                                   "json"))["spec"]
        if lease.get("holderIdentity") in running:
            return
        time.sleep(1)
    raise SystemExit("no running operator replica took the Lease within 120 s")


class ClusterLock:
    """The test cluster's lock (shared with the e2e runs of others), held for one job."""

    def __init__(self, path: str | None):
        self.path, self.file = path, None

    def __enter__(self):
        if self.path:
            import fcntl

            self.file = open(self.path, "a")
            fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *_):
        if self.file:
            self.file.close()


def upload_corpus(folder: str, size: int) -> str:
    """The corpus in MinIO, uploaded once (a bucket named by its size)."""
    from kubemr.storage import store_for

    bucket = f"s3://bench-corpus-{size}"
    store = store_for(bucket + "/")
    there = {o.uri: o.size for o in store.list(f"{bucket}/in/")} if store.exists(
        f"{bucket}/in/.done") else {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not name.startswith(".") and there.get(f"{bucket}/in/{name}") != os.path.getsize(path):
            store.upload_file(f"{bucket}/in/{name}", path)
    store.write_bytes(f"{bucket}/in/.done", b"")
    return f"{bucket}/in/"


def _iso(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def attempt_times(name: str) -> list[dict]:
    """Each task attempt of a finished job, from its pod: when the pod was made (to the second,
    so half a second is added), when its process started, its task's timings, when it ended."""
    pods = json.loads(kubectl("get", "pods", "-n", NAMESPACE, "-l", f"kubemr.io/job={name}",
                              "-o", "json"))["items"]
    attempts = []
    for pod in pods:
        for container in pod["status"].get("containerStatuses") or []:
            ended = container["state"].get("terminated")
            if not ended or not ended.get("message"):
                continue
            record = json.loads(ended["message"]).get("commit")
            if not record or "timings" not in record:
                continue
            timings = record["timings"]
            attempts.append({
                "type": pod["metadata"]["labels"]["kubemr.io/task-type"],
                "created": _iso(pod["metadata"]["creationTimestamp"]) + 0.5,
                "process": record["started"] - timings["startup"],
                "started": record["started"],
                "committed": record["started"] + record["seconds"],
                "finished": _iso(ended["finishedAt"]) + 0.5,
                "timings": timings,
            })
    return attempts


def breakdown(attempts: list[dict], applied: float, done: float, parallelism: int) -> dict:
    """Where the job's time went, in slot-seconds: `parallelism` slots over the job's span, each
    at any moment in one step of an attempt or idle (waiting for the operator to launch)."""
    steps: dict[str, float] = {}

    def add(step: str, seconds: float) -> None:
        steps[step] = steps.get(step, 0.0) + max(seconds, 0.0)

    for a in attempts:
        t = a["timings"]
        add("pod start (made -> process)", a["process"] - a["created"])
        add("python start + imports", t["startup"])
        if a["type"] == "map":
            add("map: input reads", t["read"])
            add("map: the map (mapper, sort, spill)", t["map"] - t["read"])
            add("map: upload", t["upload"])
        else:
            add("reduce: fetch", t["fetch"])
            add("reduce: the reduce", t["reduce"])
            add("reduce: upload", t["upload"])
        add("commit + exit (task -> pod ended)", a["finished"] - a["committed"])
    span = done - applied
    cpu = sum(a["timings"].get("cpu", 0.0) for a in attempts)
    add("idle slots (no pod)", parallelism * span - sum(steps.values()))
    maps = [a for a in attempts if a["type"] == "map"]
    reduces = [a for a in attempts if a["type"] == "reduce"]
    ends = [a["finished"] for a in attempts]
    # a launch after the first wave waits on the pass that sees a task commit
    commits = [a["committed"] for a in attempts]
    reactions = [a["created"] - max(c for c in commits if c <= a["created"] + 0.5)
                 for a in sorted(attempts, key=lambda a: a["created"])[parallelism:]
                 if any(c <= a["created"] + 0.5 for c in commits)]
    return {
        "span": span,
        "slots": steps,
        "CPU of the task processes (user + sys, summed)": cpu,
        "planning (apply -> first pod)": min(a["created"] for a in attempts) - applied,
        "operator reaction (a commit -> next pod made, +-0.5 s), mean": statistics.mean(reactions)
        if reactions else 0.0,
        "last map committed -> first reduce pod": min(a["created"] for a in reduces)
        - max(a["committed"] for a in maps) if reduces and maps else 0.0,
        "job commit (last reduce ended -> Succeeded seen)": done - max(ends),
    }


def print_breakdown(report: dict) -> None:
    span, slots = report["span"], report["slots"]
    total = sum(slots.values())
    print(f"  where the time went, slot-seconds ({total:.0f} = parallelism x {span:.1f} s):")
    for step, seconds in slots.items():
        print(f"    {step:40s} {seconds:7.1f}  {seconds / total:5.1%}")
    for step, seconds in report.items():
        if step not in ("span", "slots"):
            print(f"  {step:62s} {seconds:6.2f} s")


def run_job(job: dict, timeout: float = 3600) -> tuple[float, float]:
    """Apply the job and wait for Succeeded: (applied, done) times."""
    applied = time.time()
    job_seconds(job, timeout)
    return applied, time.time()


def throughput(size_mib: int, rounds: int, parallelism: int, lock: str | None,
               repo: str | None) -> None:
    from corpus import corpus

    from kubemr.runtime.local import run_local
    from kubemr.spec.manifest import parse_manifest

    folder = corpus(size_mib << 20)
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)
               if not f.startswith("."))
    with ClusterLock(lock):
        input_uri = upload_corpus(folder, size)
    cluster, local, reports = [], [], []
    for round_ in range(rounds):
        with ClusterLock(lock):
            if repo:
                deploy(repo)
            name = f"wordcount-{uuid.uuid4().hex[:4]}"
            applied, done = run_job(job_manifest(
                name, input_uri, f"s3://bench-out-{uuid.uuid4().hex[:8]}/out/", reducers=2,
                parallelism=parallelism))
            attempts = attempt_times(name)
            with open(f"/tmp/kubemr-bench-{name}.json", "w") as f:
                json.dump({"applied": applied, "done": done, "attempts": attempts}, f)
            reports.append(breakdown(attempts, applied, done, parallelism))
            kubectl("delete", "mapreducejob", name, "-n", NAMESPACE, "--wait=false")
        cluster.append(done - applied)
        print(f"round {round_ + 1}: cluster {cluster[-1]:.1f} s", flush=True)
        print_breakdown(reports[-1])
        out = f"/tmp/kubemr-bench-out-{os.getpid()}-{round_}/"
        started, before = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
        run_local(parse_manifest(job_manifest("local", folder + "/", out, reducers=2)),
                  workers=2)
        local.append(time.time() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        local_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        subprocess.run(["rm", "-rf", out])
        print(f"round {round_ + 1}: local {local[-1]:.1f} s (its workers' CPU {local_cpu:.0f} s), "
              f"cluster/local {local[-1] / cluster[-1]:.2f}", flush=True)
    c, lo = statistics.median(cluster), statistics.median(local)
    print(f"corpus {size / 1e6:.0f} MB, {rounds} rounds, cluster parallelism {parallelism}: "
          f"cluster {size / c / 1e6:.1f} MB/s ({c:.1f} s), local runner {size / lo / 1e6:.1f} "
          f"MB/s ({lo:.1f} s), cluster/local {lo / c:.2f} (target >= 0.8)")


def operator_process() -> int:
    """The pid of the operator replica that leads (its container runs on this machine)."""
    leader = json.loads(kubectl("get", "lease", "kubemr-operator", "-n", SYSTEM, "-o", "json"))
    holder = f"POD_NAME={leader['spec']['holderIdentity']}".encode()
    pids = subprocess.run(["pgrep", "-f", "python -m kubemr_operator"], capture_output=True,
                          text=True).stdout.split()
    for pid in pids:
        with open(f"/proc/{pid}/environ", "rb") as f:
            if holder in f.read().split(b"\0"):
                return int(pid)
    raise SystemExit(f"no operator process here is the leader {holder.decode()}: {pids}")


def memory_kib(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/status") as f:
        return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f)
                if k in ("VmRSS", "VmHWM")}


def scale(maps: int, lock: str | None, repo: str | None) -> None:
    with ClusterLock(lock):
        if repo:
            deploy(repo)
        _scale(maps)


def _scale(maps: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from kubemr.storage import store_for

    bucket = f"s3://bench-{uuid.uuid4().hex[:8]}"
    store = store_for(bucket + "/")
    size = 1024  # the least splitSize: objects of this size are not packed with others
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: store.write_bytes(
            f"{bucket}/in/{i:05d}.txt",
            f"split {i} of the scale job".ljust(size - 1).encode() + b"\n"), range(maps)))
    pid = operator_process()
    before = memory_kib(pid)
    name = f"scale-{uuid.uuid4().hex[:4]}"
    manifest = job_manifest(name, f"{bucket}/in/", f"{bucket}/out/", reducers=2,
                            parallelism=24, input={"uri": f"{bucket}/in/", "splitSize": size})
    started = time.time()
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    largest_object = 0
    while True:
        job = get("mapreducejob", name)
        largest_object = max(largest_object, len(json.dumps(job)))
        status = job.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            break
        print(f"  {time.time() - started:5.0f}s {status.get('phase')} maps "
              f"{status.get('mapsDone')} RSS {memory_kib(pid)['VmRSS'] / 1024:.0f} MiB",
              flush=True)
        time.sleep(10)
    seconds = time.time() - started
    after = memory_kib(pid)
    if operator_process() != pid:
        raise SystemExit("the operator restarted during the job: its peak RSS is lost")
    print(f"{maps} maps: job {status['phase']} in {seconds:.0f}s "
          f"({status.get('mapsDone')} maps, {status.get('reducesDone')} reduces, "
          f"{status.get('attempts')} attempts); operator RSS {before['VmRSS'] / 1024:.0f} MiB "
          f"before, peak {after['VmHWM'] / 1024:.0f} MiB (target < 200 MiB); largest job "
          f"object {largest_object / 1024:.1f} KiB")
    print_breakdown(breakdown(attempt_times(name), started, started + seconds, 24))
    kubectl("delete", "mapreducejob", name, "-n", NAMESPACE, "--wait=false")


def indexed_job(pods: int, parallelism: int) -> None:
    """The floor for one pod per task: a Kubernetes Indexed Job of `pods` pods of the task
    image, each importing the worker and exiting, `parallelism` at a time."""
    name = f"indexed-{uuid.uuid4().hex[:4]}"
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": name, "namespace": NAMESPACE},
           "spec": {"completionMode": "Indexed", "completions": pods,
                    "parallelism": parallelism, "backoffLimit": pods,
                    "template": {"spec": {"restartPolicy": "Never", "containers": [{
                        "name": "task", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                        "command": ["python", "-c", "import kubemr.runtime.worker"]}]}}}}
    started = time.time()
    kubectl("apply", "-f", "-", input=json.dumps(job))
    while True:
        status = get("job", name).get("status") or {}
        done = {c["type"] for c in status.get("conditions") or [] if c["status"] == "True"}
        if done & {"Complete", "Failed"}:
            break
        time.sleep(1)
    seconds = time.time() - started
    kubectl("delete", "job", name, "-n", NAMESPACE, "--wait=false", "--cascade=background")
    print(f"Indexed Job of {pods} pods, parallelism {parallelism}: {sorted(done)} in "
          f"{seconds:.0f} s ({status.get('succeeded')} succeeded, {status.get('failed', 0)} "
          f"failed): {seconds / pods * parallelism:.2f} s per pod per slot")


def small_files(runs: int, lock: str | None, repo: str | None) -> None:
    """2,000 files of at most 1 KB on the cluster, beside the local runner (bench/small_files.py)
    in interleaved rounds; both outputs checked against a Counter's."""
    from small_files import dataset, digest, files_of, run_counter

    from kubemr.storage import store_for

    folder = dataset(2000, 1024)
    expected = run_counter(folder)[1]
    bucket = "s3://bench-small-2000-1024"
    store = store_for(bucket + "/")
    with ClusterLock(lock):
        if not store.exists(f"{bucket}/in/.done"):
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda path: store.upload_file(
                    f"{bucket}/in/{os.path.basename(path)}", path), files_of(folder)))
            store.write_bytes(f"{bucket}/in/.done", b"")
    cluster, local = [], []
    for round_ in range(runs):
        with ClusterLock(lock):
            if repo:
                deploy(repo)
            name = f"small-{uuid.uuid4().hex[:4]}"
            out = f"s3://bench-out-{uuid.uuid4().hex[:8]}/out/"
            applied, done = run_job(job_manifest(name, f"{bucket}/in/", out, reducers=2))
            kubectl("delete", "mapreducejob", name, "-n", NAMESPACE, "--wait=false")
        counts: dict[str, int] = {}
        for obj in store_for(out).list(out):
            if not obj.uri.rsplit("/", 1)[-1].startswith("_"):
                text = store_for(obj.uri).read_bytes(obj.uri).decode()
                counts.update((w, int(n)) for w, n in (line.split("\t") for line in
                                                        text.splitlines()))
        if digest(counts) != expected:
            raise SystemExit(f"the cluster's output differs: {digest(counts)} != {expected}")
        cluster.append(done - applied)
        ran = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__),
                                                           "small_files.py"),
                              "--one", "kubemr", "--folder", folder],
                             capture_output=True, text=True, check=True)
        result = json.loads(ran.stdout.splitlines()[-1])
        if result["output"] != expected:
            raise SystemExit(f"the local runner's output differs: {result['output']}")
        local.append(result["seconds"])
        print(f"round {round_ + 1}: cluster {cluster[-1]:.1f} s, local {local[-1]:.2f} s",
              flush=True)
    c = statistics.median(cluster)
    print(f"2,000 files of at most 1 KB, {runs} rounds: cluster {c:.1f} s (target <= 30 s: "
          f"{'yes' if c <= 30 else 'NO'}), local runner {statistics.median(local):.2f} s; "
          f"outputs exact ({expected})")


SLOW_NODE_SOURCE = WORDCOUNT_SOURCE + """
import os, time
_SLOW = os.environ.get("KUBEMR_NODE_NAME") == os.environ.get("BENCH_SLOW_NODE", "-")

def slow_mapper(offset, line):
    global _SLOW
    if _SLOW:
        time.sleep(60)  # this node is slow: once per attempt
        _SLOW = False
    yield from mapper(offset, line)
"""


def speculation(runs: int) -> None:
    from kubemr.storage import store_for

    bucket = f"s3://bench-spec-{uuid.uuid4().hex[:8]}"
    store = store_for(bucket + "/")
    text = "".join(f"line {i} of the speculation corpus with a few words\n" for i in range(400))
    for f in range(24):
        store.write_bytes(f"{bucket}/in/part-{f:02d}.txt", text.encode())
    nodes = json.loads(kubectl("get", "nodes", "-l", "kubemr.io/role=worker", "-o", "json"))
    slow_node = nodes["items"][0]["metadata"]["name"]
    times: dict[str, list[float]] = {"no slow node": [], "speculation off": [],
                                     "speculation on": []}
    for round_ in range(runs):
        for case in times:
            name = f"spec-{round_}-{case.split()[-1]}"
            slow = case != "no slow node"
            code = SLOW_NODE_SOURCE.replace('"BENCH_SLOW_NODE", "-"',
                                            f'"BENCH_SLOW_NODE", "{slow_node if slow else "-"}"')
            job = job_manifest(name, f"{bucket}/in/", f"{bucket}/out-{name}/",
                               mapper="slow_mapper", reducers=2, parallelism=6,
                               locality="none", speculation=case != "speculation off",
                               code={"inline": code})
            times[case].append(job_seconds(job))
            kubectl("delete", "mapreducejob", name, "-n", NAMESPACE, "--wait=false")
            print(f"round {round_ + 1} {case}: {times[case][-1]:.1f} s", flush=True)
    base = statistics.median(times["no slow node"])
    for case, values in times.items():
        median = statistics.median(values)
        print(f"{case:16s} median {median:6.1f} s  ratio to no slow node {median / base:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["overhead", "throughput", "scale", "speculation",
                                         "indexed", "small-files", "report"])
    parser.add_argument("saved", nargs="*", help="report: the runs' saved attempt files")
    parser.add_argument("--maps", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--lock", help="hold this lock (the test cluster's) for each cluster job")
    parser.add_argument("--deploy", metavar="REPO",
                        help="before each cluster job, deploy the image and chart of this checkout")
    args = parser.parse_args()
    if args.what == "report":
        for path in args.saved:
            with open(path) as f:
                saved = json.load(f)
            print(f"{path}: {saved['done'] - saved['applied']:.1f} s")
            print_breakdown(breakdown(saved["attempts"], saved["applied"], saved["done"],
                                      args.parallelism))
        return
    setup_storage()
    if args.what == "overhead":
        overhead(args.runs)
    elif args.what == "scale":
        scale(args.maps, args.lock, args.deploy)
    elif args.what == "speculation":
        speculation(args.runs)
    elif args.what == "indexed":
        with ClusterLock(args.lock):
            indexed_job(args.maps, 24)
    elif args.what == "small-files":
        small_files(args.runs, args.lock, args.deploy)
    else:
        throughput(args.size_mib, args.runs, args.parallelism, args.lock, args.deploy)


if __name__ == "__main__":
    main()
