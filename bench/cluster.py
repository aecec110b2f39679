"""Cluster benchmarks: job overhead against bare pods, and word count throughput.

    eval "$(hack/cluster.sh env)"      # a cluster with the operator installed (helm)
    python bench/cluster.py overhead [--runs 5]
    python bench/cluster.py throughput [--size-mib 1024]
    python bench/cluster.py scale [--maps 1000]
    python bench/cluster.py speculation [--runs 3]

overhead: seconds from `kubectl apply` of a trivial job (1 map, 1 reduce) to phase Succeeded,
against two bare pods of the same image run one after the other (create, wait for Succeeded,
then the next); median of --runs, and their ratio (target: at most 1.3).
throughput: word count over a corpus in MinIO on the cluster, against the local runner over the
same corpus on this machine (2 workers); MB/s of each and their ratio.
scale: a job of --maps map tasks (one small object each) and 2 reduces, run to Succeeded while
the operator's process is watched: its peak RSS (VmHWM; target under 200 MiB), the job's
duration and the size of the job object in etcd.
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


def get(kind: str, name: str) -> dict:
    return json.loads(kubectl("get", kind, name, "-n", NAMESPACE, "-o", "json"))


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


def throughput(size_mib: int) -> None:
    from corpus import corpus

    from kubemr.runtime.local import run_local
    from kubemr.spec.manifest import parse_manifest
    from kubemr.storage import store_for

    folder = corpus(size_mib << 20)
    size = sum(
        os.path.getsize(os.path.join(folder, f))
        for f in os.listdir(folder)
        if not f.startswith(".")
    )
    bucket = f"s3://bench-{uuid.uuid4().hex[:8]}"
    store = store_for(bucket + "/")
    for name in sorted(os.listdir(folder)):
        if not name.startswith("."):
            store.upload_file(f"{bucket}/in/{name}", os.path.join(folder, name))
    cluster = job_seconds(
        job_manifest(
            f"wordcount-{uuid.uuid4().hex[:4]}",
            f"{bucket}/in/",
            f"{bucket}/out/",
            reducers=2,
            parallelism=4,
        )
    )
    local_job = parse_manifest(
        job_manifest("local", folder + "/", f"/tmp/kubemr-bench-out-{os.getpid()}/", reducers=2)
    )
    started = time.time()
    run_local(local_job, workers=2)
    local = time.time() - started
    print(
        f"corpus {size / 1e6:.0f} MB: cluster {size / cluster / 1e6:.1f} MB/s ({cluster:.1f}s), "
        f"local runner {size / local / 1e6:.1f} MB/s ({local:.1f}s), "
        f"cluster/local {local / cluster:.2f}"
    )


def operator_process() -> int:
    """The operator's pid: its container runs on this machine."""
    pids = subprocess.run(["pgrep", "-f", "python -m kubemr_operator"], capture_output=True,
                          text=True).stdout.split()
    if len(pids) != 1:
        raise SystemExit(f"expected one operator process on this machine, found {pids}")
    return int(pids[0])


def memory_kib(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/status") as f:
        return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f)
                if k in ("VmRSS", "VmHWM")}


def scale(maps: int) -> None:
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
    parser.add_argument("what", choices=["overhead", "throughput", "scale", "speculation"])
    parser.add_argument("--maps", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    setup_storage()
    if args.what == "overhead":
        overhead(args.runs)
    elif args.what == "scale":
        scale(args.maps)
    elif args.what == "speculation":
        speculation(args.runs)
    else:
        throughput(args.size_mib)


if __name__ == "__main__":
    main()
