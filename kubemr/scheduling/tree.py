"""Trees of reduces (spec.reduceTree): which task reads which outputs.

With `fanIn` F and M map tasks, level 1 has ceil(M / F) combine tasks per partition, each
reading one partition's segments of at most F consecutive map outputs; level 2 reads at most F
level-1 outputs of that partition, and so on, until at most F outputs are left: the final reduce
task of the partition reads those. With M <= F there is no intermediate level.

Combine tasks are numbered across levels and partitions: level 1's partition 0 first, then its
partition 1, ..., then level 2's. Every runner, the scheduler and the worker compute the same
layout from (maps, reducers, fanIn): it is not stored anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from kubemr.errors import ManifestError

MAX_COMBINE_TASKS = 200_000  # combine tasks a job may have: bounds the scheduler's work


@dataclass(frozen=True)
class Source:
    """A committed output a task reads: a map task's or a combine task's."""

    kind: str  # "map" | "combine"
    index: int


@dataclass(frozen=True)
class Combine:
    """Where one combine task sits in the tree."""

    level: int  # 1, 2, ...
    partition: int
    position: int  # among its level's tasks of that partition


@dataclass(frozen=True)
class ReduceTree:
    maps: int
    reducers: int
    fan_in: int | None  # None: no tree, each reduce task reads every map output

    @classmethod
    def of(cls, spec: dict, maps: int) -> ReduceTree:
        tree = spec.get("reduceTree") or {}
        return cls(maps, spec["reducers"], tree.get("fanIn"))

    @cached_property
    def widths(self) -> tuple[int, ...]:
        """Combine tasks per partition at each level, from level 1 up."""
        if self.fan_in is None:
            return ()
        widths, n = [], self.maps
        while n > self.fan_in:
            n = -(-n // self.fan_in)
            widths.append(n)
        return tuple(widths)

    @cached_property
    def _starts(self) -> tuple[int, ...]:
        """The number of the first combine task of each level."""
        starts, total = [], 0
        for width in self.widths:
            starts.append(total)
            total += width * self.reducers
        return (*starts, total)

    @property
    def levels(self) -> int:
        """Intermediate levels: 0 without a tree, or when fanIn covers every map."""
        return len(self.widths)

    @property
    def combines(self) -> int:
        return self._starts[-1]

    def check_size(self) -> None:
        """Refuse, at planning, a tree with more combine tasks than a job may have."""
        if self.combines > MAX_COMBINE_TASKS:
            raise ManifestError(
                f"spec.reduceTree.fanIn {self.fan_in} over {self.maps} map tasks and "
                f"{self.reducers} reducers makes {self.combines} combine tasks, more than the "
                f"{MAX_COMBINE_TASKS} a job may have: raise fanIn or lower reducers")

    def index(self, level: int, partition: int, position: int) -> int:
        return self._starts[level - 1] + partition * self.widths[level - 1] + position

    def combine(self, index: int) -> Combine:
        level = max(n for n, start in enumerate(self._starts[:-1], 1) if start <= index)
        partition, position = divmod(index - self._starts[level - 1], self.widths[level - 1])
        return Combine(level, partition, position)

    def _level_sources(self, level: int, partition: int, first: int, count: int) -> list[Source]:
        """`count` outputs of `level` (0: the maps) from position `first`, for a partition."""
        if level == 0:
            return [Source("map", m) for m in range(first, first + count)]
        return [Source("combine", self.index(level, partition, p))
                for p in range(first, first + count)]

    def combine_sources(self, index: int) -> list[Source]:
        """The outputs a combine task reads (its partition's segment of each)."""
        where = self.combine(index)
        below = self.widths[where.level - 2] if where.level > 1 else self.maps
        first = where.position * self.fan_in
        return self._level_sources(where.level - 1, where.partition, first,
                                   min(self.fan_in, below - first))

    def reduce_sources(self, partition: int) -> list[Source]:
        """The outputs the final reduce task of a partition reads."""
        if not self.widths:
            return self._level_sources(0, partition, 0, self.maps)
        return self._level_sources(self.levels, partition, 0, self.widths[-1])
