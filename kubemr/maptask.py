"""The map side: split -> mapper -> bounded buffer -> sort + combine -> spills -> merged output.

The hot path stays in C: the mapper's pairs are pulled with itertools a batch at a time and
grouped by key with dict and list methods; Python-level work happens once per batch, and once
per distinct key per spill.
"""

from __future__ import annotations

import gc
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
VALUE_SLOT = 9
GROUP_OVERHEAD = 120
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


def _group_into(groups: defaultdict, batch: list) -> None:
    try:
        deque(map(list.append, map(groups.__getitem__, map(first, batch)), map(second, batch)),
              maxlen=0)
    except (TypeError, IndexError, KeyError) as e:
        _check_pairs(batch)
        if "unhashable" in str(e):
            bad = next(k for k, _ in batch if getattr(k, "__hash__", None) is None)
            raise UserCodeError(
                f"mapper emitted key {bad!r:.60} of type {type(bad).__name__}, which is "
                "unhashable: use str, int, float, bytes or tuple keys"
            ) from None
        raise


def _value_size(value: object) -> int:
    if value.__class__ is int and -5 <= value <= 256 or value is None or value is True \
            or value is False:
        return 0
    return sys.getsizeof(value)


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
        outputs = chain.from_iterable(starmap(self.fn.mapper, reader))
        if self.fn.mapper_final is not None:
            outputs = chain(outputs, _call_later(self.fn.mapper_final))
        return outputs

    def run(self, output_path: str) -> list[tuple[int, int, int]]:
        """Run the map task; write its partitions to `output_path`; return the index.

        The buffer is a dict of key -> list of values, filled a few thousand pairs at a time,
        so a repeated key costs one list slot. Its size is estimated from a sample of each
        batch; past the limit it is sorted, combined and spilled.
        """
        reader = InputReader(self.split, self.spec["input"]["format"])
        outputs = self._outputs(reader)
        groups: defaultdict = defaultdict(list)
        # The buffer holds only acyclic data; cyclic GC passes over it cost a third of the time.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._map_and_spill(reader, outputs, groups, output_path)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _map_and_spill(self, reader: InputReader, outputs: Iterator, groups: defaultdict,
                       output_path: str) -> list[tuple[int, int, int]]:
        buffered = 0.0
        getsize = sys.getsizeof
        while True:
            batch = list(islice(outputs, PULL))
            if not batch:
                break
            _check_pairs(batch if not self.counters["map_output_records"] else batch[::97])
            keys_before = len(groups)
            _group_into(groups, batch)
            n = len(batch)
            self.counters["map_output_records"] += n
            sample = batch[:: max(1, n // 8)]
            value_bytes = sum(_value_size(v) for _, v in sample) / len(sample)
            key_bytes = sum(getsize(k) for k, _ in sample) / len(sample)
            buffered += n * (VALUE_SLOT + value_bytes) + \
                (len(groups) - keys_before) * (key_bytes + GROUP_OVERHEAD)
            if buffered >= self.buffer_limit:
                self._spill(groups)
                groups = defaultdict(list)
                buffered = 0.0
                gc.collect()
        self.counters["map_input_records"] += reader.records
        self.counters["bytes_read"] += reader.bytes_read
        if not self.spills:
            with open(output_path, "wb") as f:
                return self._write_groups(self._sorted_partitions(groups), f)
        if groups:
            self._spill(groups)
        del groups
        with open(output_path, "wb") as f:
            return self._merge_spills(f)

    def _sorted_partitions(self, groups: dict) -> list[list[tuple[object, list]]]:
        """Sort the buffered keys, partition them, and combine each key's values."""
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

    def _spill(self, groups: dict) -> None:
        path = os.path.join(self.scratch, f"spill-{len(self.spills):04d}")
        with open(path, "wb") as f:
            index = self._write_groups(self._sorted_partitions(groups), f)
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
