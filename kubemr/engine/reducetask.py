"""The reduce side: fetch partition r of every map output -> k-way merge -> reducer -> part.

With sorted values (spec.sortValues) the merge orders each key's values too. In a tree of
reduces (spec.reduceTree) a combine task fetches partition r of a few lower outputs, merges
them, and writes the combined groups as one sorted run, the form a map output's partition has.
"""

from __future__ import annotations

import io
import os
import shutil
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from kubemr.engine.formats import OUTPUT_FORMATS
from kubemr.engine.maptask import Combiner, SortingCombiner, add_values
from kubemr.engine.progress import advance
from kubemr.engine.sortedruns import (
    RunWriter,
    job_sorts_values,
    merge_runs,
    merge_runs_sorted_values,
    read_run,
)
from kubemr.engine.usercode import UserFunctions
from kubemr.errors import UserCodeError
from kubemr.storage import store_for

FETCH_THREADS = 4


def _fetch(segment: tuple[str, int, int], path: str) -> None:
    uri, start, end = segment
    with store_for(uri).open_range(uri, start, end) as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def _identity(key, values):
    for value in values:
        yield key, value


class ReduceTask:
    def __init__(self, spec: dict, functions: UserFunctions, scratch: str):
        self.spec = spec
        self.fn = functions
        self.scratch = scratch
        self.counters: dict[str, int] = defaultdict(int)

    def fetch(self, segments: list[tuple[str, int, int]]) -> list[str]:
        """Copy this partition's segment of every map output to local disk (the shuffle)."""
        segments = [s for s in segments if s[2] > s[1]]
        paths = [os.path.join(self.scratch, f"segment-{i:05d}") for i in range(len(segments))]
        with ThreadPoolExecutor(FETCH_THREADS) as pool:
            list(pool.map(_fetch, segments, paths))
        self.counters["shuffle_bytes"] += sum(end - start for _, start, end in segments)
        return paths

    def _merged(self, files: list) -> Iterator[tuple[object, Iterator]]:
        runs = [read_run(io.BufferedReader(f, 1 << 16)) for f in files]
        if job_sorts_values(self.spec, self.fn.value_key):
            return merge_runs_sorted_values(runs, self.fn.value_key)
        return merge_runs(runs)

    def run(self, segment_paths: list[str], output_path: str) -> None:
        files = [open(p, "rb") for p in segment_paths]
        format_line = OUTPUT_FORMATS[self.spec["output"]["format"]]
        reducer = self.fn.reducer or _identity
        groups = outputs = 0
        try:
            with open(output_path, "w", encoding="utf-8", newline="\n") as out:
                write = out.write
                for key, values in self._merged(files):
                    groups += 1
                    advance()
                    for k, v in reducer(key, values):
                        write(format_line(k, v))
                        outputs += 1
        except TypeError as e:  # keys compared in heapq.merge as the reducer reads values
            raise _mixed_keys(e) from None
        finally:
            for f in files:
                f.close()
        self.counters["reduce_input_groups"] += groups
        self.counters["reduce_output_records"] += outputs
        self.counters["bytes_written"] += os.path.getsize(output_path)

    def combine(self, segment_paths: list[str], output_path: str) -> list[tuple[int, int, int]]:
        """A combine task of a tree of reduces: merge the segments, run the combiner (or the
        associative reducer) on each key's values, write one sorted run; return its index."""
        fn = self.fn.combiner or self.fn.reducer
        if job_sorts_values(self.spec, self.fn.value_key):
            combine = SortingCombiner(fn, self.counters, self.fn.value_key)
        else:
            combine = Combiner(fn, self.counters)
        files = [open(p, "rb") for p in segment_paths]
        try:
            with open(output_path, "wb") as out:
                writer = RunWriter(out)
                for key, values in self._merged(files):
                    self.counters["tree_input_groups"] += 1
                    add_values(writer, key, combine(key, values))
                writer.end_run()
        except TypeError as e:
            raise _mixed_keys(e) from None
        finally:
            for f in files:
                f.close()
        self.counters["tree_output_records"] += writer.records
        start, end = writer.index[0]
        return [(start, end, writer.records)]


def _mixed_keys(e: TypeError) -> Exception:
    if _raised_in_heapq(e) and "not supported between instances" in str(e):
        return UserCodeError(f"keys of different types cannot be sorted together ({e}); emit "
                             "keys of one type throughout the job")
    return e


def _raised_in_heapq(e: BaseException) -> bool:
    tb = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith("heapq.py"):
            return True
        tb = tb.tb_next
    return False
