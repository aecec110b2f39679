"""Word count benchmark for the local runner, against the ceiling and a hand-written Counter.

    python bench/wordcount.py [--size-mib 1024] [--files 16] [--runs 3] [--buffer-mib 64]
                              [--corpus long,short] [--configs combiner,no-combiner,ceiling,counter]

The ceiling is the bare mapper in 2 processes at once, each over half of the files. Each
configuration runs in a fresh subprocess (`--one CONFIG`), so that its peak RSS is its own; the
runs of the configurations are interleaved, so background load spreads over all of them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from corpus import WORDS_PER_LINE, corpus  # noqa: E402

SOURCE = '''\
import re
def mapper(offset, line):
    for w in re.findall("[A-Za-z]+", line):
        yield w.lower(), 1
def reducer(word, counts):
    yield word, sum(counts)
'''
WORKERS = 2
ENGINE = ("combiner", "no-combiner")
CONFIGS = {
    "combiner": "(a) local runner, 2 workers, combiner",
    "no-combiner": "(a) local runner, 2 workers, no combiner",
    "ceiling": "(b) mapper alone, 2 processes at once",
    "counter": "(c) collections.Counter, 1 process",
}
TARGET = 0.85


def files_of(folder: str) -> list[str]:
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if not n.startswith("."))


def digest(counts: dict[str, int]) -> str:
    """Total words and a hash of every (word, count): the outputs must agree exactly."""
    text = "".join(f"{w}\t{n}\n" for w, n in sorted(counts.items()))
    sha = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"{sum(counts.values()):,} words, {len(counts):,} distinct, sha256 {sha}"


def cpu_seconds() -> float:
    """This process's CPU time and that of its children that ended."""
    me, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def run_engine(folder: str, buffer: int, combiner: bool) -> tuple[float, float, str]:
    """The job's seconds and CPU seconds, kubemr's imports included, the check of its output
    not; and the output's digest."""
    start, cpu = time.perf_counter(), cpu_seconds()
    from kubemr.runtime.local import run_local
    from kubemr.spec.manifest import parse_manifest

    with tempfile.TemporaryDirectory(prefix="kubemr-bench-") as out:
        spec = {"input": {"uri": folder + "/", "format": "text", "splitSize": 64 << 20},
                "output": {"uri": out + "/result/", "overwrite": True},
                "mapper": "mapper", "reducer": "reducer", "reducers": 2,
                "mapBufferSize": buffer, "code": {"inline": SOURCE}}
        if combiner:
            spec["combiner"] = "reducer"
        job = parse_manifest({"apiVersion": "kubemr.io/v1alpha1", "kind": "MapReduceJob",
                              "metadata": {"name": "bench"}, "spec": spec})
        run_local(job, workers=WORKERS, overwrite=True)
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        counts: dict[str, int] = {}
        for name in os.listdir(out + "/result"):
            if not name.startswith(("_", ".")):
                with open(os.path.join(out, "result", name), encoding="utf-8") as f:
                    counts.update((w, int(n)) for w, n in (line.split("\t") for line in f))
    return seconds, cpu, digest(counts)


def compile_kubemr() -> None:
    """Byte-compile kubemr as pip does when it installs a package. An editable install where
    PYTHONDONTWRITEBYTECODE is set would compile kubemr's modules again in every process,
    charging each worker for what an installed kubemr does once."""
    import compileall

    import kubemr

    compileall.compile_dir(os.path.dirname(kubemr.__file__), quiet=1)


def run_mapper(files: list[str]) -> None:
    """The user's mapper over every line, keyed by byte offset as the text format does."""
    namespace: dict = {}
    exec(SOURCE, namespace)
    mapper = namespace["mapper"]
    for path in files:
        with open(path, "rb") as f:
            offset = 0
            for raw in f:
                for _ in mapper(offset, raw.rstrip(b"\n").decode("utf-8", errors="replace")):
                    pass
                offset += len(raw)


def run_ceiling(folder: str) -> float:
    """The bare mapper in WORKERS processes at once, each over its share of the files."""
    start = time.perf_counter()
    processes = [subprocess.Popen([sys.executable, __file__, "--one", "mapper", "--folder",
                                   folder, "--share", str(i)]) for i in range(WORKERS)]
    if any(p.wait() for p in processes):
        raise SystemExit("a mapper process failed")
    return time.perf_counter() - start


def run_counter(files: list[str]) -> tuple[float, str]:
    import re

    word = re.compile("[A-Za-z]+")
    start = time.perf_counter()
    counts: Counter[str] = Counter()
    for path in files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                counts.update(map(str.lower, word.findall(line)))
    seconds = time.perf_counter() - start
    return seconds, digest(counts)


def own_peak_kib() -> int:
    with open("/proc/self/status") as f:  # VmHWM: this process's own peak RSS, in KiB
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def one(config: str, folder: str, buffer: int) -> dict:
    """Run one configuration in this process: its seconds, CPU seconds (this process's and its
    children's, over the work alone: for the engine, the job and kubemr's imports, not the
    check of its output), peak RSS (KiB) and output digest.

    For the engine, the peak RSS is the largest worker's ru_maxrss. A process's ru_maxrss also
    counts the peak it inherited from its parent over fork + exec: so (b) and (c) report their
    own VmHWM instead, and a worker's may include the runner's (`runner_kib`, smaller).
    """
    files, output = files_of(folder), None
    if config in ENGINE:
        seconds, cpu, output = run_engine(folder, buffer, config == "combiner")
    else:
        cpu = cpu_seconds()
        if config == "ceiling":
            seconds = run_ceiling(folder)
        else:
            seconds, output = run_counter(files)
        cpu = cpu_seconds() - cpu
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if config in ENGINE \
        else own_peak_kib()
    return {"seconds": seconds, "cpu": cpu, "rss_kib": rss, "runner_kib": own_peak_kib(),
            "output": output}


def bracketed_ratios(engine: list[dict], ceiling: list[dict]) -> list[float]:
    """Each engine run against the mean of the ceiling runs just before and just after it (the
    one there is, at the ends): this machine's CPU speed drifts by tens of percent over a
    minute, and a bracket cancels a steady drift. The ratio is the lower of wall time and CPU."""
    ratios = []
    for run in engine:
        before = [c for c in ceiling if c["at"] < run["at"]][-1:]
        after = [c for c in ceiling if c["at"] > run["at"]][:1]
        near = before + after
        seconds = statistics.mean(c["seconds"] for c in near)
        cpu = statistics.mean(c["cpu"] for c in near)
        ratios.append(min(seconds / run["seconds"], cpu / run["cpu"]))
    return ratios


def report(shape: str, folder: str, size: int, results: dict[str, list[dict]],
           failed: dict[str, str], buffer_mib: int) -> None:
    words = WORDS_PER_LINE[shape]
    lines = sum(sum(1 for _ in open(p, "rb")) for p in files_of(folder))
    print(f"\n{shape} lines ({words[0]} to {words[1]} words, {size / lines:.1f} bytes a line): "
          f"{folder}, {size:,} bytes")
    median = {c: statistics.median(r["seconds"] for r in rs) for c, rs in results.items() if rs}
    cpu = {c: statistics.median(r["cpu"] for r in rs) for c, rs in results.items() if rs}
    rate = {c: size / 1e6 / s for c, s in median.items()}
    rss = {c: max(r["rss_kib"] for r in rs) / 1024 for c, rs in results.items() if rs}
    print(f"{'config':44} {'median s':>9} {'MB/s':>7} {'/ceiling':>8} {'CPU s':>6} "
          f"{'/ceiling':>8} {'peak RSS MiB':>13}")
    for c, label in CONFIGS.items():
        if c in failed:
            print(f"{label:44} FAILED: {failed[c]}")
            continue
        if c not in median:
            continue
        who = " /worker" if c in ENGINE else ""
        by_wall = f"{rate[c] / rate['ceiling']:8.2f}" if "ceiling" in rate else f"{'':8}"
        by_cpu = f"{cpu['ceiling'] / cpu[c]:8.2f}" if "ceiling" in cpu else f"{'':8}"
        print(f"{label:44} {median[c]:9.1f} {rate[c]:7.1f} {by_wall} {cpu[c]:6.1f} {by_cpu} "
              f"{rss[c]:6.0f}{who:>7}")
    outputs = {r["output"] for rs in results.values() for r in rs if r["output"]}
    print(f"outputs: {' | '.join(sorted(outputs))} "
          f"({'all identical' if len(outputs) == 1 else 'MISMATCH'})")
    if "combiner" in rate and "ceiling" in rate:
        by_wall = rate["combiner"] / rate["ceiling"]
        by_cpu = cpu["ceiling"] / cpu["combiner"]
        rounds = bracketed_ratios(results["combiner"], results["ceiling"])
        ratio = statistics.median(rounds)
        print(f"ratio of the medians: min(wall {by_wall:.2f}, CPU {by_cpu:.2f}) = "
              f"{min(by_wall, by_cpu):.2f}")
        print(f"target: (a) with combiner / ceiling, median round = {ratio:.2f} >= {TARGET} ? "
              f"{'yes' if ratio >= TARGET else 'NO'}; round by round (each against the ceiling "
              f"runs either side, min of wall and CPU): {', '.join(f'{r:.2f}' for r in rounds)}")
    for c in (c for c in ENGINE if c in rss):
        print(f"{'target' if c == 'combiner' else 'also'}: peak RSS per worker with {c} = "
              f"{rss[c]:.0f} MiB <= 2 x buffer = {2 * buffer_mib} MiB ? "
              f"{'yes' if rss[c] <= 2 * buffer_mib else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of each corpus (MiB)")
    parser.add_argument("--files", type=int, default=16, help="files in each corpus (each at "
                        "least 16 MiB)")
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration")
    parser.add_argument("--buffer-mib", type=int, default=64, help="mapBufferSize (MiB)")
    parser.add_argument("--corpus", default="long,short", help="corpora: long, short or both")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="configurations to run")
    parser.add_argument("--one", choices=[*CONFIGS, "mapper"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--share", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    buffer = args.buffer_mib << 20
    if args.one == "mapper":
        run_mapper(files_of(args.folder)[args.share::WORKERS])
        return
    if args.one:
        print(json.dumps(one(args.one, args.folder, buffer)))
        return
    compile_kubemr()
    shapes = args.corpus.split(",")
    configs = sorted((c for c in CONFIGS if c in args.configs.split(",")),
                     key=lambda c: c != "ceiling")  # the ceiling first in each round
    folders = {s: corpus(args.size_mib << 20, args.files, shape=s) for s in shapes}
    sizes = {s: sum(os.path.getsize(p) for p in files_of(f)) for s, f in folders.items()}
    print(f"corpora: {', '.join(f'{s} {sizes[s] / 2**20:.0f} MiB' for s in shapes)}; buffer "
          f"{args.buffer_mib} MiB; {args.runs} runs each", flush=True)
    results = {s: {c: [] for c in configs} for s in shapes}
    failed: dict[str, dict[str, str]] = {s: {} for s in shapes}
    order = 0  # the runs' sequence, for bracketing each engine run with ceiling runs

    def run_one(label: str, shape: str, config: str) -> None:
        nonlocal order
        done = subprocess.run([sys.executable, __file__, "--one", config, "--folder",
                               folders[shape], "--buffer-mib", str(args.buffer_mib)],
                              capture_output=True, text=True)
        if done.returncode:
            failed[shape][config] = (done.stderr.strip().splitlines() or ["?"])[-1]
            print(f"  {label} {shape} {config}: FAILED: {done.stderr[-2000:]}", flush=True)
            return
        result = json.loads(done.stdout.splitlines()[-1])
        result["at"] = order = order + 1
        results[shape][config].append(result)
        print(f"  {label} {shape} {config}: {result}", flush=True)

    for run in range(args.runs):
        for shape in shapes:
            for config in (c for c in configs if c not in failed[shape]):  # not retried
                run_one(f"run {run + 1}", shape, config)
    for shape in (s for s in shapes if "ceiling" in configs and len(configs) > 1):
        run_one("closing", shape, "ceiling")  # so that the last engine run is bracketed too
    for shape in shapes:
        report(shape, folders[shape], sizes[shape], results[shape], failed[shape],
               args.buffer_mib)


if __name__ == "__main__":
    main()
