"""The map side: split -> mapper -> bounded buffer -> sort + combine -> spills -> merged output.

The hot path stays in C: the mapper's pairs are pulled with itertools into a list, and grouped
by key with dict and list methods; Python-level work happens once per distinct key per spill.
"""

from __future__ import annotations

import heapq
import os
import sys
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from itertools import chain, islice, starmap
from operator import itemgetter

from kubemr.errors import UserCodeError
from kubemr.partition import checked_partition, default_partition
from kubemr.records import InputReader
from kubemr.runs import RunWriter, merge_runs, read_run, sort_keys
from kubemr.splits import Split
from kubemr.usercode import UserFunctions

PULL = 4096
first, second = itemgetter(0), itemgetter(1)


class Combiner:
    """Runs the user's combiner on one key's values, counting what goes in and out."""

    def __init__(self, fn: Callable, counters: dict):
        self._fn = fn
        self._counters = counters

    def __call__(self, key: object, values) -> list:
        out = []
        n_in = len(values) if isinstance(values, list) else None
        for k, v in self._fn(key, values):
            if k != key:
                raise UserCodeError(
                    f"combiner emitted key {k!r:.60} for key {key!r:.60}: a combiner must keep "
                    "the key it was given"
                )
            out.append(v)
        if n_in is not None:
            self._counters["combine_input_records"] += n_in
        self._counters["combine_output_records"] += len(out)
        return out


def _check_pairs(buf: list) -> None:
    try:
        if set(map(len, buf)) <= {2}:
            return
    except TypeError:
        pass
    bad = next(r for r in buf if not isinstance(r, tuple | list) or len(r) != 2)
    raise UserCodeError(f"mapper must yield (key, value) pairs; it yielded {bad!r:.80}")


def _group(buf: list) -> dict:
    groups: defaultdict = defaultdict(list)
    try:
        deque(map(list.append, map(groups.__getitem__, map(first, buf)), map(second, buf)),
              maxlen=0)
    except TypeError as e:
        if "unhashable" in str(e):
            bad = next(k for k, _ in buf if getattr(k, "__hash__", None) is None)
            raise UserCodeError(
                f"mapper emitted key {bad!r:.60} of type {type(bad).__name__}, which is "
                "unhashable: use str, int, float, bytes or tuple keys"
            ) from None
        raise
    return groups


class MapTask:
    def __init__(self, split: Split, spec: dict, functions: UserFunctions, scratch: str):
        self.split = split
        self.spec = spec
        self.fn = functions
        self.scratch = scratch
        self.num_partitions = spec["reducers"]
        self.buffer_limit = spec["mapBufferSize"]
        self.counters: dict[str, int] = defaultdict(int)
        self.combine = Combiner(functions.combiner, self.counters) if functions.combiner else None
        self.spills: list[tuple[str, list]] = []

    def _outputs(self, reader: InputReader) -> Iterator:
        counted = _Counted(reader, self.counters)
        outputs = chain.from_iterable(starmap(self.fn.mapper, counted))
        if self.fn.mapper_final is not None:
            outputs = chain(outputs, _call_later(self.fn.mapper_final))
        return outputs

    def run(self, output_path: str) -> list[tuple[int, int, int]]:
        """Run the map task; write its partitions to `output_path`; return the index."""
        reader = InputReader(self.split, self.spec["input"]["format"])
        outputs = self._outputs(reader)
        buf: list = []
        buffered = 0.0
        getsize = sys.getsizeof
        while True:
            before = len(buf)
            buf.extend(islice(outputs, PULL))
            added = len(buf) - before
            if not added:
                break
            sample = buf[before:: max(1, added // 8)]
            per_record = sum(getsize(r) + getsize(r[0]) + getsize(r[1]) + 8 for r in sample)
            buffered += per_record / len(sample) * added
            if buffered >= self.buffer_limit:
                self._spill(buf)
                buf = []
                buffered = 0.0
        self.counters["bytes_read"] += reader.bytes_read
        if not self.spills:
            with open(output_path, "wb") as f:
                return self._write_groups(self._sorted_partitions(buf), f)
        if buf:
            self._spill(buf)
        del buf
        with open(output_path, "wb") as f:
            return self._merge_spills(f)

    def _sorted_partitions(self, buf: list) -> list[list[tuple[object, list]]]:
        """Group the buffer by key, sort the keys, partition, and combine."""
        _check_pairs(buf)
        self.counters["map_output_records"] += len(buf)
        groups = _group(buf)
        buf.clear()
        partitions: list[list] = [[] for _ in range(self.num_partitions)]
        n = self.num_partitions
        custom = self.fn.partitioner
        for key in sort_keys(groups):
            values = groups.pop(key)
            if custom is None:
                targets = {default_partition(key, n) if n > 1 else 0: values}
            else:
                targets = defaultdict(list)
                for v in values:
                    targets[checked_partition(custom, key, v, n)].append(v)
            for p, vs in targets.items():
                partitions[p].append((key, self.combine(key, vs) if self.combine else vs))
        return partitions

    def _write_groups(self, partitions: list[list], f) -> list[tuple[int, int, int]]:
        writer = RunWriter(f)
        counts = []
        for groups in partitions:
            before = writer.records
            for key, values in groups:
                writer.add(key, values)
            writer.end_run()
            counts.append(writer.records - before)
        self.counters["spilled_records"] += writer.records
        return [(s, e, c) for (s, e), c in zip(writer.index, counts, strict=True)]

    def _spill(self, buf: list) -> None:
        path = os.path.join(self.scratch, f"spill-{len(self.spills):04d}")
        with open(path, "wb") as f:
            index = self._write_groups(self._sorted_partitions(buf), f)
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
                if self.combine:
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


def _call_later(fn: Callable) -> Iterator:
    yield from fn() or ()


class _Counted:
    """Counts input records as the mapper pulls them."""

    def __init__(self, reader: InputReader, counters: dict):
        self._reader = reader
        self._counters = counters

    def __iter__(self):
        n = 0
        for record in self._reader:
            n += 1
            yield record
        self._counters["map_input_records"] += n


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
