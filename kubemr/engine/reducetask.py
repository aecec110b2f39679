"""The reduce side: fetch partition r of every map output -> k-way merge -> reducer -> part.

With sorted values (spec.sortValues) the merge orders each key's values too.
"""

from __future__ import annotations

import io
import os
import shutil
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from kubemr.engine.formats import OUTPUT_FORMATS
from kubemr.engine.progress import advance
from kubemr.engine.sortedruns import (
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

    def run(self, segment_paths: list[str], output_path: str) -> None:
        files = [open(p, "rb") for p in segment_paths]
        format_line = OUTPUT_FORMATS[self.spec["output"]["format"]]
        reducer = self.fn.reducer or _identity
        groups = outputs = 0
        try:
            runs = [read_run(io.BufferedReader(f, 1 << 16)) for f in files]
            if job_sorts_values(self.spec, self.fn.value_key):
                merged = merge_runs_sorted_values(runs, self.fn.value_key)
            else:
                merged = merge_runs(runs)
            with open(output_path, "w", encoding="utf-8", newline="\n") as out:
                write = out.write
                for key, values in merged:
                    groups += 1
                    advance()
                    for k, v in reducer(key, values):
                        write(format_line(k, v))
                        outputs += 1
        except TypeError as e:  # keys compared in heapq.merge as the reducer reads values
            if _raised_in_heapq(e) and "not supported between instances" in str(e):
                raise UserCodeError(
                    f"keys of different types cannot be sorted together ({e}); emit keys of "
                    "one type throughout the job"
                ) from None
            raise
        finally:
            for f in files:
                f.close()
        self.counters["reduce_input_groups"] += groups
        self.counters["reduce_output_records"] += outputs
        self.counters["bytes_written"] += os.path.getsize(output_path)


def _raised_in_heapq(e: BaseException) -> bool:
    tb = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith("heapq.py"):
            return True
        tb = tb.tb_next
    return False
