"""The map side: split -> mapper -> bounded buffer -> sort + combine -> spills -> merged output.

The mapper's pairs are pulled with itertools a batch at a time into the buffer
(kubemr.engine.mapbuffer); Python-level work happens once per batch, and once per distinct key
per spill. With sorted values (spec.sortValues), spills and their merge are sorted by
(key, value) instead of by key.
"""

from __future__ import annotations

import gc
import heapq
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, islice, starmap
from operator import itemgetter

from kubemr.engine import formats, mapbuffer, progress
from kubemr.engine.formats import InputReader
from kubemr.engine.mapbuffer import MapBuffer, check_pairs
from kubemr.engine.partition import checked_partition, default_partition
from kubemr.engine.plan import Split
from kubemr.engine.sortedruns import (
    BATCH_VALUES,
    RunWriter,
    job_sorts_values,
    merge_runs,
    merge_runs_sorted_values,
    read_run,
    sort_values,
)
from kubemr.engine.usercode import UserFunctions
from kubemr.errors import UserCodeError

PULL = 4096
first = itemgetter(0)


class Combiner:
    """Runs the user's combiner on one key's values, counting what goes in and out."""

    def __init__(self, fn: Callable, counters: dict):
        self._fn = fn
        self._counters = counters

    def __call__(self, key: object, values: Iterable, count: int | None = None) -> list:
        out = [v for k, v in self._fn(key, values) if k == key or _changed_key(k, key)]
        if count is not None:
            self._counters["combine_input_records"] += count
        self._counters["combine_output_records"] += len(out)
        return out


def _changed_key(emitted: object, key: object) -> bool:
    raise UserCodeError(f"combiner emitted key {emitted!r:.60} for key {key!r:.60}: a combiner "
                        "must keep the key it was given")


class SortingCombiner(Combiner):
    """A combiner in a job with sorted values: the values it emits are put back in order."""

    def __init__(self, fn: Callable, counters: dict, value_key: Callable | None):
        super().__init__(fn, counters)
        self._value_key = value_key

    def __call__(self, key: object, values: Iterable, count: int | None = None) -> list:
        return sort_values(key, super().__call__(key, values, count), self._value_key)


class MapTask:
    def __init__(self, split: Split, spec: dict, functions: UserFunctions, scratch: str):
        self.split = split
        self.spec = spec
        self.fn = functions
        self.scratch = scratch
        self.num_partitions = spec["reducers"]
        self.buffer_limit = spec["mapBufferSize"]
        self.counters: dict[str, int] = defaultdict(int)
        self.values_sorted = job_sorts_values(spec, functions.value_key)
        self.combine = None
        if functions.combiner and self.values_sorted:
            self.combine = SortingCombiner(functions.combiner, self.counters, functions.value_key)
        elif functions.combiner:
            self.combine = Combiner(functions.combiner, self.counters)
        self.spills: list[tuple[str, list]] = []
        self.read_seconds = 0.0  # of the task's time, waiting on its input

    def _outputs(self, reader: InputReader) -> Iterator:
        outputs = chain.from_iterable(starmap(self.fn.mapper, reader))
        if self.fn.mapper_final is not None:
            outputs = chain(outputs, _call_later(self.fn.mapper_final))
        return outputs

    def run(self, output_path: str) -> list[tuple[int, int, int]]:
        """Run the map task; write its partitions to `output_path`; return the index.

        The buffer is filled a few thousand pairs at a time; past its size limit it is sorted,
        combined and spilled.
        """
        reader = InputReader(self.split, self.spec["input"]["format"])
        outputs = self._outputs(reader)
        # The buffer holds only acyclic data; cyclic GC passes over it cost a third of the time.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._map_and_spill(reader, outputs, output_path)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _map_and_spill(self, reader: InputReader, outputs: Iterator,
                       output_path: str) -> list[tuple[int, int, int]]:
        buffer = MapBuffer(count_repeats=self.fn.partitioner is None)
        if not mapbuffer.COMPILED:
            print("kubemr: kubemr.engine._tally is not compiled: map output is counted in Python, "
                  "more slowly", file=sys.stderr)
        if not formats.COMPILED and self.spec["input"]["format"] != "whole-file":
            print("kubemr: kubemr.engine._lines is not compiled: input is cut into lines in "
                  "Python, more slowly", file=sys.stderr)
        while True:
            counted, batch = buffer.pump(outputs, PULL)
            if counted < PULL:
                batch.extend(islice(outputs, PULL - counted - len(batch)))
            if not counted and not batch:
                break
            if batch:
                check_pairs(batch if not self.counters["map_output_records"] else batch[::97])
                buffer.add(batch)
            progress.advance()
            self.counters["map_output_records"] += counted + len(batch)
            if buffer.estimated_bytes >= self.buffer_limit:
                self._spill(buffer)
                gc.collect()
        self.counters["map_input_records"] += reader.records
        self.counters["bytes_read"] += reader.bytes_read
        self.read_seconds = reader.read_seconds
        if not self.spills:
            with open(output_path, "wb") as f:
                return self._write_groups(self._sorted_partitions(buffer), f)
        if buffer:
            self._spill(buffer)
        del buffer
        with open(output_path, "wb") as f:
            return self._merge_spills(f)

    def _sorted_partitions(self, buffer: MapBuffer) -> list[list[tuple[object, Iterable]]]:
        """Empty the buffer into sorted partitions, combining each key's values."""
        partitions: list[list] = [[] for _ in range(self.num_partitions)]
        n = self.num_partitions
        custom = self.fn.partitioner
        for key, values, count in buffer.drain(self.values_sorted, self.fn.value_key):
            if custom is None:
                p = default_partition(key, n) if n > 1 else 0
                partitions[p].append((key, self.combine(key, values, count) if self.combine
                                      else values))
                continue
            targets = defaultdict(list)
            for v in values:
                targets[checked_partition(custom, key, v, n)].append(v)
            for p, vs in targets.items():
                partitions[p].append((key, self.combine(key, vs, len(vs)) if self.combine
                                      else vs))
        return partitions

    def _write_groups(self, partitions: list[list], f) -> list[tuple[int, int, int]]:
        writer = RunWriter(f)
        counts = []
        for groups in partitions:
            before = writer.records
            for key, values in groups:  # add_values, inline: this runs per key per spill
                if isinstance(values, list):
                    writer.add(key, values)
                    continue
                while chunk := list(islice(values, BATCH_VALUES)):
                    writer.add(key, chunk)
            writer.end_run()
            counts.append(writer.records - before)
        self.counters["spilled_records"] += writer.records
        return [(s, e, c) for (s, e), c in zip(writer.index, counts, strict=True)]

    def _spill(self, buffer: MapBuffer) -> None:
        path = os.path.join(self.scratch, f"spill-{len(self.spills):04d}")
        with open(path, "wb") as f:
            index = self._write_groups(self._sorted_partitions(buffer), f)
        self.spills.append((path, index))

    def _merge_spills(self, out) -> list[tuple[int, int, int]]:
        writer = RunWriter(out)
        counts = []
        files = [open(path, "rb") for path, _ in self.spills]
        try:
            for p in range(self.num_partitions):
                runs = []
                for f, (_, index) in zip(files, self.spills, strict=True):
                    start, end, _ = index[p]
                    f.seek(start)
                    runs.append(read_run(_Bounded(f, end - start)))
                before = writer.records
                if self.values_sorted:
                    for key, values in merge_runs_sorted_values(runs, self.fn.value_key):
                        add_values(writer, key,
                                    self.combine(key, values) if self.combine else values)
                elif self.combine:
                    for key, values in merge_runs(runs):
                        writer.add(key, self.combine(key, values))
                else:
                    for key, values in heapq.merge(*runs, key=first):
                        writer.add(key, values)
                writer.end_run()
                counts.append(writer.records - before)
        finally:
            for f in files:
                f.close()
            for path, _ in self.spills:
                os.unlink(path)
        return [(s, e, c) for (s, e), c in zip(writer.index, counts, strict=True)]


def add_values(writer: RunWriter, key: object, values: Iterable) -> None:
    """Write a key's values: a list as one group, an iterator in groups of BATCH_VALUES."""
    if isinstance(values, list):
        writer.add(key, values)
        return
    while chunk := list(islice(values, BATCH_VALUES)):
        writer.add(key, chunk)


def _call_later(fn: Callable) -> Iterator:
    yield from fn() or ()


class _Bounded:
    """A read-only view of the next `remaining` bytes of a shared file."""

    def __init__(self, f, remaining: int):
        self._f = f
        self._pos = f.tell()
        self._remaining = remaining

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self._remaining:
            n = self._remaining
        self._f.seek(self._pos)
        data = self._f.read(n)
        self._pos += len(data)
        self._remaining -= len(data)
        return data

    def readline(self) -> bytes:
        self._f.seek(self._pos)
        data = self._f.readline(self._remaining)
        self._pos += len(data)
        self._remaining -= len(data)
        return data
