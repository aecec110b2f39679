"""A global aggregate (one reduce key) over many map tasks, with and without a tree of reduces.

    python bench/reduce_tree.py [--maps 5000] [--fan-in 16] [--rounds 3] [--workers 2]

Without a tree the one reduce task fetches and merges a segment of every map output; with
`reduceTree: {fanIn: F}` combine tasks add up F outputs at a time, level by level, as the maps
commit, and the reduce task reads F. Reported per configuration, as the median of interleaved
rounds (each run in a fresh subprocess, so background load spreads over both): the job's
time, the final reduce task's time, and the tail (from the last map's commit to the job's
end), with ratios against the job without a tree. Local runner.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SOURCE = '''\
def mapper(offset, line):
    yield "total", int(line)

def total(key, values):
    yield key, sum(values)
'''
CONFIGS = ("flat", "tree")


def ranges_file(folder: str, maps: int) -> str:
    """`maps` lines, each a number padded to 1 KiB: with splitSize 1024, a map task each."""
    path = os.path.join(folder, "numbers.txt")
    with open(path, "w") as f:
        for n in range(maps):
            f.write(str(n).ljust(1023) + "\n")
    return folder + "/"


def run_one(config: str, maps: int, fan_in: int, workers: int) -> dict:
    from kubemr.runtime.local import run_local
    from kubemr.spec.manifest import parse_manifest

    with tempfile.TemporaryDirectory(prefix="kubemr-bench-tree-") as scratch:
        data = os.path.join(scratch, "in")
        os.mkdir(data)
        spec = {"input": {"uri": ranges_file(data, maps), "splitSize": 1024},
                "output": {"uri": os.path.join(scratch, "out") + "/"},
                "mapper": "mapper", "reducer": "total", "code": {"inline": SOURCE},
                "speculation": False}
        if config == "tree":
            spec["reduceTree"] = {"fanIn": fan_in, "associative": True}
        job = parse_manifest({"apiVersion": "kubemr.io/v1alpha1", "kind": "MapReduceJob",
                              "metadata": {"name": "tree-bench"}, "spec": spec})
        start = time.time()
        result = run_local(job, workers=workers)
        end = time.time()
        with open(os.path.join(scratch, "out", "part-00000")) as f:
            output = f.read().strip()
    assert output == f"total\t{maps * (maps - 1) // 2}", output
    assert result.maps == maps
    reduce = next(a for a in result.attempts if a.kind == "reduce" and a.ok)
    last_map = max(a.finished for a in result.attempts if a.kind == "map" and a.ok)
    return {"job": end - start, "final_reduce": reduce.seconds, "tail": end - last_map,
            "combines": sum(1 for a in result.attempts if a.kind == "combine" and a.ok)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--maps", type=int, default=5000)
    parser.add_argument("--fan-in", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--one", choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.maps, args.fan_in, args.workers)))
        return
    runs: dict[str, list[dict]] = {c: [] for c in CONFIGS}
    for round_number in range(args.rounds):
        for config in CONFIGS if round_number % 2 == 0 else reversed(CONFIGS):
            out = subprocess.run(
                [sys.executable, __file__, "--one", config, "--maps", str(args.maps),
                 "--fan-in", str(args.fan_in), "--workers", str(args.workers)],
                check=True, capture_output=True, text=True).stdout
            runs[config].append(json.loads(out.strip().splitlines()[-1]))
            print(f"round {round_number + 1} {config}: {runs[config][-1]}", file=sys.stderr)
    median = {c: {k: statistics.median(r[k] for r in runs[c]) for k in runs[c][0]}
              for c in CONFIGS}
    print(f"{args.maps} map tasks, one reduce key, {args.workers} workers, median of "
          f"{args.rounds} interleaved rounds; tree: fanIn {args.fan_in}, "
          f"{median['tree']['combines']:.0f} combine tasks")
    print(f"{'':24}{'job':>10}{'final reduce':>14}{'tail':>10}")
    for config in CONFIGS:
        m = median[config]
        print(f"{config:24}{m['job']:9.1f}s{m['final_reduce']:13.2f}s{m['tail']:9.2f}s")
    flat, tree = median["flat"], median["tree"]
    print(f"{'tree / flat':24}{tree['job'] / flat['job']:9.2f}x"
          f"{tree['final_reduce'] / flat['final_reduce']:13.2f}x"
          f"{tree['tail'] / flat['tail']:9.2f}x")


if __name__ == "__main__":
    main()
