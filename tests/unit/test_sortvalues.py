"""Sorted values (spec.sortValues, spec.valueKey): each key's values reach the combiner and the
reducer in order, across spills, map tasks and combiners, and a reducer that reads a few values
of a huge key holds only a few in memory."""

import json
import random
import tracemalloc
from collections import defaultdict
from itertools import islice

import pytest

import kubemr.engine.maptask as maptask
import kubemr.engine.reducetask as reducetask
import kubemr.engine.sortedruns as sortedruns
from kubemr.engine.maptask import MapTask
from kubemr.engine.plan import plan_splits
from kubemr.engine.reducetask import ReduceTask
from kubemr.engine.usercode import UserFunctions, load_functions
from kubemr.errors import UserCodeError

TAGS = ("c", "a", "b")


def spec(reducers=3, buffer=1 << 20, sort=True):
    return {"reducers": reducers, "mapBufferSize": buffer, "input": {"format": "text"},
            "output": {"format": "jsonl"}, "sortValues": sort}


def run_maps(tmp_path, functions, path, reducers=3, buffer=1 << 20, split_size=10_000,
             sort=True):
    """Map every split; return each map output with its index, and each task's spills."""
    outputs, spills = [], []
    for i, split in enumerate(plan_splits([str(path)], "text", split_size)):
        task = MapTask(split, spec(reducers, buffer, sort), functions, str(tmp_path))
        out = tmp_path / f"map-{i}.out"
        outputs.append((str(out), task.run(str(out))))
        spills.append(len(task.spills))
    return outputs, spills


def run_reduces(tmp_path, functions, outputs, reducers=3, sort=True, measure=False):
    """Reduce every partition; return {key: value} (and the reduce's peak traced memory)."""
    result, peak = {}, 0
    for r in range(reducers):
        task = ReduceTask(spec(reducers, sort=sort), functions, str(tmp_path))
        paths = task.fetch([("file://" + out, *index[r][:2]) for out, index in outputs])
        part = tmp_path / f"part-{r}"
        if measure:
            tracemalloc.start()
        try:
            task.run(paths, str(part))
            peak = max(peak, tracemalloc.get_traced_memory()[1])
        finally:
            if measure:
                tracemalloc.stop()
        result.update(json.loads(line) for line in part.read_text().splitlines())
    return (result, peak) if measure else result


def run_job(tmp_path, functions, path, reducers=3, buffer=1 << 20, split_size=10_000,
            sort=True):
    """Map every split, then reduce every partition; return {key: value} and the spills."""
    outputs, spills = run_maps(tmp_path, functions, path, reducers, buffer, split_size, sort)
    return run_reduces(tmp_path, functions, outputs, reducers, sort), spills


def readings(tmp_path, lines=6000, seed=7):
    """Lines of `sensor reading`, readings shuffled: the reference is each sensor's sorted list."""
    rng = random.Random(seed)
    rows = [(f"s{rng.randrange(40)}", rng.randrange(-500, 500)) for _ in range(lines)]
    path = tmp_path / "readings.txt"
    path.write_text("".join(f"{s} {v}\n" for s, v in rows))
    want = defaultdict(list)
    for s, v in rows:
        want[s].append(v)
    return path, {s: sorted(vs) for s, vs in want.items()}


def mapper(_, line):
    sensor, value = line.split()
    yield sensor, int(value)


def all_values(key, values):
    yield key, list(values)


def checked_all_values(key, values):
    values = list(values)
    assert values == sorted(values), f"{key}: values out of order"
    yield key, values


def reversing_combiner(key, values):
    """Emits the values it got in reverse: the engine must put them back in order."""
    values = list(values)
    assert values == sorted(values), f"{key}: combiner's values out of order"
    for v in reversed(values):
        yield key, v


def first_three(key, values):
    for v in islice(values, 3):
        yield key, v


def top3(key, values):
    yield key, list(islice(values, 3))


@pytest.fixture
def small_pulls(monkeypatch):
    monkeypatch.setattr(maptask, "PULL", 64)


@pytest.mark.parametrize("merge", ["sorted-at-once", "lazy"])
@pytest.mark.parametrize("combiner", [None, reversing_combiner])
@pytest.mark.parametrize("buffer, split_size", [
    (1 << 20, 1 << 30),  # one map task, no spill
    (4 << 10, 1 << 30),  # one map task, many spills
    (1 << 20, 2_000),  # many map tasks
    (4 << 10, 8_000),  # many map tasks, each spilling
])
def test_values_come_sorted(tmp_path, small_pulls, monkeypatch, buffer, split_size, combiner,
                            merge):
    if merge == "lazy":  # no key's values are few enough to sort at once
        monkeypatch.setattr(sortedruns, "BATCH_VALUES", 0)
    path, want = readings(tmp_path)
    functions = UserFunctions(mapper=mapper, reducer=checked_all_values, combiner=combiner)
    got, spills = run_job(tmp_path, functions, path, buffer=buffer, split_size=split_size)
    assert got == want
    if buffer < 1 << 20:
        assert max(spills) > 3
    if split_size < 1 << 30:
        assert len(spills) > 4


def test_a_combiner_keeping_three_values_gives_the_smallest_three(tmp_path, small_pulls):
    path, want = readings(tmp_path)
    functions = UserFunctions(mapper=mapper, reducer=top3, combiner=first_three)
    got, spills = run_job(tmp_path, functions, path, buffer=4 << 10, split_size=8_000)
    assert got == {s: vs[:3] for s, vs in want.items()}
    assert max(spills) > 3 and len(spills) > 4


def test_a_partitioner_splitting_a_key_by_value_keeps_each_part_sorted(tmp_path, small_pulls):
    path, want = readings(tmp_path)

    def by_parity(key, value, n):
        return value % 2

    def parity_and_values(key, values):
        values = list(values)
        assert values == sorted(values)
        yield f"{key}/{values[0] % 2}", values

    functions = UserFunctions(mapper=mapper, reducer=parity_and_values, partitioner=by_parity)
    got, _ = run_job(tmp_path, functions, path, reducers=2, buffer=4 << 10, split_size=8_000)
    assert got == {f"{s}/{p}": [v for v in vs if v % 2 == p]
                   for s, vs in want.items() for p in (0, 1) if any(v % 2 == p for v in vs)}


def tagging_mapper(offset, line):
    """Every word with one of three shared strings, by region of the file: the buffer counts
    most batches (each all one object) and lists those that straddle a region's edge."""
    for word in line.split():
        yield word, TAGS[offset // 9000 % 3]


def test_counted_and_listed_values_come_sorted(tmp_path, small_pulls):
    path = tmp_path / "words.txt"
    path.write_text("".join(f"w{i % 13} w{i % 5} w{i % 7}\n" for i in range(6000)))
    want = defaultdict(list)
    offset = 0
    for line in path.read_text().splitlines(keepends=True):
        for word, tag in tagging_mapper(offset, line):
            want[word].append(tag)
        offset += len(line)
    for buffer in (1 << 20, 4 << 10):
        got, _ = run_job(tmp_path, UserFunctions(mapper=tagging_mapper, reducer=all_values),
                         path, buffer=buffer, split_size=1 << 30)
        assert got == {w: sorted(vs) for w, vs in want.items()}


def test_value_key_orders_the_values(tmp_path, small_pulls):
    path, want = readings(tmp_path)
    functions = UserFunctions(mapper=mapper, reducer=all_values, combiner=reversing_combiner_by_abs,
                              value_key=abs_then_value)
    got, _ = run_job(tmp_path, functions, path, buffer=4 << 10, split_size=8_000, sort=False)
    assert got == {s: sorted(vs, key=abs_then_value) for s, vs in want.items()}


def abs_then_value(v):
    return abs(v), v


def reversing_combiner_by_abs(key, values):
    values = list(values)
    assert values == sorted(values, key=abs_then_value)
    for v in reversed(values):
        yield key, v


def test_value_key_is_resolved_like_the_other_functions():
    source = ("def m(k, v):\n    yield v, 1\n"
              "def newest_first(value):\n    return -value\n"
              "class Job:\n"
              "    def mapper(self, k, v):\n        yield v, 1\n"
              "    def value_key(self, value):\n        return -value\n")
    functions = load_functions({"mapper": "m", "valueKey": "newest_first",
                                "code": {"inline": source}})
    assert functions.value_key(3) == -3
    functions = load_functions({"mapper": "Job", "valueKey": "Job", "code": {"inline": source}})
    assert functions.value_key(3) == -3
    assert load_functions({"mapper": "m", "valueKey": "operator:neg",
                           "code": {"inline": source}}).value_key(3) == -3
    with pytest.raises(UserCodeError, match=r"spec.valueKey: m must accept \(value\)"):
        load_functions({"mapper": "m", "valueKey": "m", "code": {"inline": source}})
    with pytest.raises(UserCodeError, match="spec.valueKey: code.inline has no 'nope'"):
        load_functions({"mapper": "m", "valueKey": "nope", "code": {"inline": source}})


def test_a_value_key_that_raises_type_error_is_the_users_error(tmp_path):
    """Not reported as values (or keys) of different types, on either side."""
    path = tmp_path / "in.txt"
    path.write_text("".join(f"k {v}\n" for v in range(100)))
    raising = []

    def bad_key(value):
        return -str(value) if raising else -value

    functions = UserFunctions(mapper=mapper, reducer=all_values, value_key=bad_key)
    outputs, _ = run_maps(tmp_path, functions, path, split_size=100)
    raising.append(True)
    with pytest.raises(TypeError, match="bad operand type for unary -"):
        run_reduces(tmp_path, functions, outputs)  # raised in heapq.merge
    with pytest.raises(TypeError, match="bad operand type for unary -"):
        run_maps(tmp_path, functions, path, split_size=100)


def mixed_mapper(offset, line):
    """Each key's values alternate, line by line, between int and str."""
    for word in line.split():
        yield word, offset if offset // 8 % 2 else str(offset)


def floats_then_str(boundary):
    """A mapper whose values are floats up to byte `boundary` of the input and str after it."""
    def mapper(offset, line):
        for word in line.split():
            yield word, 1.5 if offset <= boundary else "x"
    return mapper


def test_values_of_mixed_types_are_a_clear_error(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("a b c d\n" * 10)
    with pytest.raises(UserCodeError, match="values of key 'a' have different types and cannot "
                                            "be sorted together"):
        run_job(tmp_path, UserFunctions(mapper=lambda k, v: [("a", 1), ("a", "x")]), path)
    with pytest.raises(UserCodeError, match="values of key '.' have different types"):
        run_job(tmp_path, UserFunctions(mapper=mixed_mapper), path)


@pytest.mark.parametrize("lines, merge", [(10_000, "sorted at once"), (40_000, "lazily")])
def test_values_of_mixed_types_in_different_map_tasks_are_a_clear_error(tmp_path, lines, merge):
    """Each map task's values are of one type; the reduce finds them mixed."""
    path = tmp_path / "in.txt"
    path.write_text("a b c d\n" * lines)
    split_size = lines  # 8 map tasks, the first 4 emitting floats
    functions = UserFunctions(mapper=floats_then_str(4 * split_size), reducer=all_values)
    outputs, _ = run_maps(tmp_path, functions, path, split_size=split_size)
    assert len(outputs) == 8
    with pytest.raises(UserCodeError, match="values of key '.' have different types"):
        run_reduces(tmp_path, functions, outputs)


def test_two_keys_may_hold_values_of_different_types(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("a b c d\n" * 10_000)
    functions = UserFunctions(mapper=lambda k, v: [("a", 1), ("b", "x")], reducer=all_values)
    assert run_job(tmp_path, functions, path, split_size=10_000)[0] == {
        "a": [1] * 10_000, "b": ["x"] * 10_000}


def test_keys_of_mixed_types_are_still_named(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("a b c d\n" * 5000)

    def by_offset(offset, line):
        yield (offset if offset < 20_000 else line), 1

    with pytest.raises(UserCodeError, match="keys of different types"):
        run_job(tmp_path, UserFunctions(mapper=by_offset), path, split_size=10_000)


def test_without_sort_values_the_values_come_as_today(tmp_path, monkeypatch):
    """Off, no value is compared: one map task gives a key's values in the order emitted."""
    path = tmp_path / "in.txt"
    path.write_text("".join(f"k {v}\n" for v in (5, 3, 9, 1, 7)))

    def must_not_run(*args, **kwargs):
        raise AssertionError("sorted values used with sortValues off")

    functions = UserFunctions(mapper=mapper, reducer=all_values)
    assert run_job(tmp_path, functions, path)[0] == {"k": [1, 3, 5, 7, 9]}
    for module in (maptask, reducetask):
        monkeypatch.setattr(module, "merge_runs_sorted_values", must_not_run)
    monkeypatch.setattr(maptask, "sort_values", must_not_run)
    monkeypatch.setattr("kubemr.engine.mapbuffer.sort_values", must_not_run)
    assert run_job(tmp_path, functions, path, sort=False)[0] == {"k": [5, 3, 9, 1, 7]}
    monkeypatch.setattr(maptask, "PULL", 1)
    got, spills = run_job(tmp_path, functions, path, buffer=1, sort=False)
    assert spills == [5] and got == {"k": [5, 3, 9, 1, 7]}


def test_a_reducer_reading_three_of_a_million_values_holds_few(tmp_path):
    """Top 3 of one key with a million values, from map tasks that each spilled and merged:
    the reduce holds a batch of each map output at a time, never the key's values (36 MB as a
    list of ints)."""
    n = 1_000_000
    values = list(range(n))
    random.Random(1).shuffle(values)
    path = tmp_path / "big.txt"
    path.write_text("".join(f"{v}\n" for v in values))
    del values
    handed = []

    def counting_top3(key, values):
        handed.append(type(values))
        yield key, list(islice(values, 3))

    functions = UserFunctions(mapper=lambda _, line: (("k", int(line)),), reducer=counting_top3)
    outputs, spills = run_maps(tmp_path, functions, path, reducers=1, split_size=2 << 20)
    assert len(spills) >= 3 and min(spills) >= 3  # each map task spilled and merged
    got, peak = run_reduces(tmp_path, functions, outputs, reducers=1, measure=True)
    assert got == {"k": [0, 1, 2]}
    assert handed == [handed[0]] and handed[0] is not list  # an iterator, never listed whole
    assert peak < 8 << 20, f"the reduce's peak was {peak / 2**20:.1f} MiB"
