"""Word count over many small files: the local runner against Dask bag and a hand-written Counter.

    python bench/small_files.py [--files 2000] [--max-bytes 1024] [--runs 3]

Each configuration runs in a fresh subprocess (`--one CONFIG`); the runs are interleaved, so
background load spreads over all of them. Dask bag runs only where `dask[bag]` is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

CACHE = os.path.expanduser(os.environ.get("KUBEMR_BENCH_CACHE", "~/.cache/kubemr/bench"))
SOURCE = '''\
import re
WORD = re.compile(r"[a-z']+")
def mapper(offset, line):
    for word in WORD.findall(line.lower()):
        yield word, 1
def reducer(word, counts):
    yield word, sum(counts)
'''
WORD = re.compile(r"[a-z']+")
WORKERS = 2
CONFIGS = {
    "kubemr": "(a) kubemr local runner, 2 workers",
    "kubemr-1k": "(a) the same, splitSize 1 KiB",
    "dask": "(b) Dask bag, processes, 2 workers",
    "dask-threads": "(b) Dask bag, threads, 2 workers",
    "counter": "(c) collections.Counter, 1 process",
}
# Common English words, most frequent first; drawn with weight 1/rank (Zipf).
VOCABULARY = """the of and to a in is that for it as was with be by on not he i this are or
his from at which but have an they you were her she there one all we their been has when who
will more no if out so said what up its about into than them can only other new some could time
these two may then do first any my now such like our over man me even most made after also did
many before must through back years where much your way well down should because each just those
people how too little state good very make world still own see men work long get here between
both life being under never day same another know while last might us great old year off come
since against go came right used take three states himself few house use during without again
place american around however home small found mrs thought went say part once general high upon
school every don't does got united left number course war until always away something fact though
water less public put think almost hand enough far took head yet government system better set told
nothing night end why called didn't eyes find going look asked later knew point next city business
give group toward young days let room president side social given present several order national
possible rather second face per among form important often things looking early white case john
become large big need four within felt children along saw best church ever least power development
light seemed family interest want members mind country area others done turned although open god
service certain kind problem began different door thus help sense means whole matter perhaps itself
york it's times law human line above name example action company hands local show whether five
history gave today either act feet across taken past quite anything seen having death week
experience body word half really field am car words already themselves i'm information tell
together college shall money period held keep sure probably free seems real behind cannot miss
political air question making office brought whose special major heard problems ago became federal
moment study available known result street economic boy position reason change south board
individual job areas society west close turn love community true court force full seem am""".split()


def dataset(files: int, max_bytes: int) -> str:
    """A folder of `files` text files of at most `max_bytes` each (most of them far smaller:
    2,000 files are 263 KB), generated once; its path."""
    folder = os.path.join(CACHE, f"small-{files}-{max_bytes}")
    if os.path.isfile(os.path.join(folder, ".done")):
        return folder
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(13)
    weights = [1 / rank for rank in range(1, len(VOCABULARY) + 1)]
    for i in range(files):
        target = min(max_bytes, max(1, int(rng.expovariate(1 / 142))))
        lines, size = [], 0
        while True:
            line = " ".join(rng.choices(VOCABULARY, weights, k=rng.randint(3, 12)))
            if rng.random() < 0.3:
                line = line[0].upper() + line[1:] + "."
            if lines and size + len(line) + 1 > target:
                break
            lines.append(line)
            size += len(line) + 1
        text = "\n".join(lines) + ("\n" if lines and i % 4 else "")  # some end without one
        with open(os.path.join(folder, f"doc-{i:05d}.txt"), "w") as f:
            f.write(text)
    open(os.path.join(folder, ".done"), "w").close()
    return folder


def files_of(folder: str) -> list[str]:
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if not n.startswith("."))


def digest(counts: dict[str, int]) -> str:
    """Total words and a hash of every (word, count): the outputs must agree exactly."""
    text = "".join(f"{w}\t{n}\n" for w, n in sorted(counts.items()))
    sha = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"{sum(counts.values()):,} words, {len(counts):,} distinct, sha256 {sha}"


def run_kubemr(folder: str, split_size: int = 64 << 20) -> tuple[float, str, int]:
    """With splitSize 1 KiB the files are packed a few to a map task: hundreds of tasks, which
    show what starting each task attempt costs."""
    from kubemr.runtime.local import run_local
    from kubemr.spec.manifest import parse_manifest

    with tempfile.TemporaryDirectory(prefix="kubemr-bench-") as out:
        spec = {"input": {"uri": folder + "/", "format": "text", "splitSize": split_size},
                "output": {"uri": out + "/result/", "overwrite": True},
                "mapper": "mapper", "combiner": "reducer", "reducer": "reducer",
                "reducers": 2, "code": {"inline": SOURCE}}
        job = parse_manifest({"apiVersion": "kubemr.io/v1alpha1", "kind": "MapReduceJob",
                              "metadata": {"name": "small-files"}, "spec": spec})
        start = time.perf_counter()
        result = run_local(job, workers=WORKERS, overwrite=True)
        seconds = time.perf_counter() - start
        counts: dict[str, int] = {}
        for name in os.listdir(out + "/result"):
            if not name.startswith(("_", ".")):
                with open(os.path.join(out, "result", name), encoding="utf-8") as f:
                    counts.update((w, int(n)) for w, n in (line.split("\t") for line in f))
    return seconds, digest(counts), result.maps


def words(line: str) -> list[str]:
    return WORD.findall(line.lower())


def run_dask(folder: str, scheduler: str = "processes") -> tuple[float, str, int]:
    """Bag's own default scheduler is processes, one per core."""
    import dask.bag as db

    start = time.perf_counter()
    bag = db.read_text(files_of(folder))  # one partition per file
    pairs = bag.map(words).flatten().frequencies().compute(scheduler=scheduler,
                                                            num_workers=WORKERS)
    seconds = time.perf_counter() - start
    return seconds, digest(dict(pairs)), bag.npartitions


def run_counter(folder: str) -> tuple[float, str, int]:
    start = time.perf_counter()
    counts: Counter[str] = Counter()
    for path in files_of(folder):
        with open(path, encoding="utf-8") as f:
            for line in f:
                counts.update(WORD.findall(line.lower()))
    return time.perf_counter() - start, digest(counts), 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000, help="how many files")
    parser.add_argument("--max-bytes", type=int, default=1024, help="the largest file's size")
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="configurations to run")
    parser.add_argument("--one", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run = {"kubemr": run_kubemr, "dask": run_dask, "counter": run_counter,
               "kubemr-1k": lambda folder: run_kubemr(folder, 1024),
               "dask-threads": lambda folder: run_dask(folder, "threads")}[args.one]
        seconds, output, tasks = run(args.folder)
        print(json.dumps({"seconds": seconds, "output": output, "tasks": tasks}))
        return
    folder = dataset(args.files, args.max_bytes)
    sizes = [os.path.getsize(p) for p in files_of(folder)]
    print(f"input: {folder}: {len(sizes)} files, {sum(sizes):,} bytes, the largest "
          f"{max(sizes):,}; {args.runs} runs each", flush=True)
    configs = {c: label for c, label in CONFIGS.items() if c in args.configs.split(",")}
    try:
        import dask.bag  # noqa: F401
    except ImportError:
        print("dask[bag] is not installed: (b) is left out", flush=True)
        configs.pop("dask", None)
        configs.pop("dask-threads", None)
    results: dict[str, list[dict]] = {c: [] for c in configs}
    failed: dict[str, str] = {}
    for run in range(args.runs):
        for config in (c for c in configs if c not in failed):
            done = subprocess.run([sys.executable, __file__, "--one", config, "--folder", folder],
                                  capture_output=True, text=True)
            if done.returncode:
                failed[config] = (done.stderr.strip().splitlines() or ["?"])[-1]
                print(f"  run {run + 1} {config}: FAILED: {done.stderr[-2000:]}", flush=True)
                continue
            results[config].append(json.loads(done.stdout.splitlines()[-1]))
            print(f"  run {run + 1} {config}: {results[config][-1]}", flush=True)
    print(f"\n{'config':40} {'median s':>9} {'runs s':>20} {'tasks':>6}")
    for c, label in configs.items():
        if c in failed:
            print(f"{label:40} FAILED: {failed[c]}")
            continue
        rs = results[c]
        runs = " / ".join(f"{r['seconds']:.2f}" for r in rs)
        print(f"{label:40} {statistics.median(r['seconds'] for r in rs):9.2f} {runs:>20} "
              f"{rs[-1]['tasks']:6}")
    outputs = {r["output"] for rs in results.values() for r in rs}
    print(f"\noutputs: {' | '.join(sorted(outputs))} "
          f"({'all identical' if len(outputs) == 1 else 'MISMATCH'})")
    if results.get("kubemr"):
        median = statistics.median(r["seconds"] for r in results["kubemr"])
        print(f"target: (a) {median:.2f} s <= 5 s ? {'yes' if median <= 5 else 'NO'}")


if __name__ == "__main__":
    main()
