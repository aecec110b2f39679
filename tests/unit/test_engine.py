"""The map and reduce sides run in-process, against a sequential reference."""

from collections import Counter
from collections.abc import Iterator

import pytest

from kubemr.engine.maptask import MapTask
from kubemr.engine.plan import plan_splits
from kubemr.engine.reducetask import ReduceTask
from kubemr.engine.sortedruns import read_run
from kubemr.engine.usercode import UserFunctions
from kubemr.errors import UserCodeError

WORDS = "the quick brown fox jumps over the lazy dog and the cat".split()


def mapper(_, line):
    for word in line.split():
        yield word, 1


def listing_mapper(_, line):
    """Values 1 and True alternate, so no batch is all one object: the buffer lists them."""
    for i, word in enumerate(line.split()):
        yield word, (1, True)[i % 2]


def summing(key, values):
    yield key, sum(values)


def corpus(tmp_path, lines=3000):
    path = tmp_path / "corpus.txt"
    path.write_text("".join(" ".join(WORDS[(i + j) % len(WORDS)] for j in range(i % 7 + 1)) + "\n"
                            for i in range(lines)))
    return path


def spec(reducers=3, buffer=1 << 20):
    return {"reducers": reducers, "mapBufferSize": buffer, "input": {"format": "text"},
            "output": {"format": "jsonl"}}


def run_job(tmp_path, functions, path, reducers=3, buffer=1 << 20, split_size=10_000):
    """Map every split, then reduce every partition; return output lines and counters."""
    outputs, counters = [], Counter()
    for i, split in enumerate(plan_splits([str(path)], "text", split_size)):
        task = MapTask(split, spec(reducers, buffer), functions, str(tmp_path))
        out = tmp_path / f"map-{i}.out"
        outputs.append((str(out), task.run(str(out))))
        counters.update(task.counters)
    lines = []
    for r in range(reducers):
        task = ReduceTask(spec(reducers), functions, str(tmp_path))
        paths = task.fetch([("file://" + out, *index[r][:2]) for out, index in outputs])
        part = tmp_path / f"part-{r}"
        task.run(paths, str(part))
        lines.extend(part.read_text().splitlines())
        counters.update(task.counters)
    return lines, counters


def reference(path):
    counts = Counter(path.read_text().split())
    return sorted(f'["{w}", {n}]' for w, n in counts.items())


@pytest.mark.parametrize("buffer", [4 << 10, 1 << 20, 64 << 20])
@pytest.mark.parametrize("combiner", [None, summing])
@pytest.mark.parametrize("map_fn", [mapper, listing_mapper])
def test_combiner_zero_one_or_many_times_gives_the_same_result(tmp_path, map_fn, combiner,
                                                                buffer):
    path = corpus(tmp_path)
    functions = UserFunctions(mapper=map_fn, reducer=summing, combiner=combiner)
    lines, counters = run_job(tmp_path, functions, path, buffer=buffer)
    assert sorted(lines) == reference(path)
    if combiner:
        assert counters["combine_output_records"] < counters["combine_input_records"]


def test_tiny_buffer_spills_many_times_and_memory_estimate_is_used(tmp_path, monkeypatch):
    import kubemr.engine.maptask as maptask

    monkeypatch.setattr(maptask, "PULL", 64)
    path = corpus(tmp_path)
    spills = []
    original = maptask.MapTask._spill
    monkeypatch.setattr(maptask.MapTask, "_spill",
                        lambda self, buf: (spills.append(buf.distinct_keys()),
                                           original(self, buf)))
    functions = UserFunctions(mapper=listing_mapper, reducer=summing, combiner=summing)
    lines, _ = run_job(tmp_path, functions, path, buffer=16 << 10, split_size=1 << 20)
    assert sorted(lines) == reference(path)
    assert len(spills) > 5
    assert max(spills) < 400


def test_values_all_one_object_are_counted_not_buffered(tmp_path, monkeypatch):
    import kubemr.engine.maptask as maptask

    monkeypatch.setattr(maptask, "PULL", 64)
    path = corpus(tmp_path, lines=20_000)
    spills = []
    original = maptask.MapTask._spill
    monkeypatch.setattr(maptask.MapTask, "_spill",
                        lambda self, buf: (spills.append(buf.pairs), original(self, buf)))
    functions = UserFunctions(mapper=mapper, reducer=summing)
    lines, counters = run_job(tmp_path, functions, path, buffer=16 << 10, split_size=1 << 30)
    assert sorted(lines) == reference(path)
    assert counters["map_output_records"] > 50_000
    assert spills == []


def test_a_counted_key_is_written_in_bounded_groups(tmp_path):
    from kubemr.engine.sortedruns import BATCH_VALUES

    path = tmp_path / "one-key.txt"
    path.write_text("x\n" * 100_000)
    functions = UserFunctions(mapper=mapper, reducer=summing)
    task = MapTask(plan_splits([str(path)], "text", 1 << 30)[0], spec(reducers=1), functions,
                   str(tmp_path))
    [(start, end, count)] = task.run(str(tmp_path / "out"))
    with open(tmp_path / "out", "rb") as f:
        groups = list(read_run(f))
    assert count == 100_000
    assert {key for key, _ in groups} == {"x"}
    assert max(len(values) for _, values in groups) <= BATCH_VALUES
    assert sum(len(values) for _, values in groups) == 100_000


def test_each_partition_is_sorted_by_key(tmp_path):
    path = corpus(tmp_path)
    functions = UserFunctions(mapper=mapper, reducer=summing)
    task = MapTask(plan_splits([str(path)], "text", 1 << 20)[0], spec(buffer=1 << 20), functions,
                   str(tmp_path))
    index = task.run(str(tmp_path / "out"))
    with open(tmp_path / "out", "rb") as f:
        for start, end, count in index:
            f.seek(start)
            data = f.read(end - start)
            import io

            keys = [k for k, _ in read_run(io.BytesIO(data))]
            assert keys == sorted(keys)
            assert len(keys) <= count


def test_custom_partitioner_places_keys(tmp_path):
    path = corpus(tmp_path)
    functions = UserFunctions(mapper=mapper, reducer=summing,
                              partitioner=lambda k, v, n: len(k) % n)
    lines, _ = run_job(tmp_path, functions, path, reducers=3)
    assert sorted(lines) == reference(path)


def test_bad_partitioner_result_is_reported(tmp_path):
    path = corpus(tmp_path, lines=10)
    functions = UserFunctions(mapper=mapper, partitioner=lambda k, v, n: n)
    with pytest.raises(UserCodeError, match=r"must return an int in \[0, 3\)"):
        run_job(tmp_path, functions, path)


def test_mixed_key_types_are_a_clear_error(tmp_path):
    path = corpus(tmp_path, lines=10)

    def mixed(offset, line):
        yield (offset if offset % 2 else line), 1

    with pytest.raises(UserCodeError, match="keys of different types"):
        run_job(tmp_path, UserFunctions(mapper=mixed), path)


def test_mixed_key_types_across_map_tasks_are_a_clear_error(tmp_path):
    path = corpus(tmp_path, lines=200)

    def by_split(offset, line):
        yield (line if offset < 1000 else offset), 1

    with pytest.raises(UserCodeError, match="keys of different types"):
        run_job(tmp_path, UserFunctions(mapper=by_split, reducer=summing), path, reducers=1,
                split_size=1000)


def test_mapper_must_yield_pairs(tmp_path):
    path = corpus(tmp_path, lines=10)
    with pytest.raises(UserCodeError, match="must yield \\(key, value\\) pairs"):
        run_job(tmp_path, UserFunctions(mapper=lambda k, v: [v]), path)


def test_unhashable_key_is_named(tmp_path):
    path = corpus(tmp_path, lines=10)
    with pytest.raises(UserCodeError, match="unhashable"):
        run_job(tmp_path, UserFunctions(mapper=lambda k, v: [([v], 1)]), path)


def test_one_key_with_many_values_streams_through_the_reducer(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("x\n" * 200_000)
    seen = {}

    def counting(key, values):
        assert isinstance(values, Iterator)
        seen[key] = sum(1 for _ in values)
        yield key, seen[key]

    functions = UserFunctions(mapper=lambda k, v: [(v, k)], reducer=counting)
    lines, counters = run_job(tmp_path, functions, path, reducers=2, buffer=1 << 20,
                              split_size=1 << 30)
    assert lines == ['["x", 200000]']
    assert counters["spilled_records"] >= 200_000


def test_a_bad_pair_after_the_first_batch_is_still_named(tmp_path):
    path = corpus(tmp_path, lines=3000)

    def late_single(offset, line):
        yield (line,) if offset > 20_000 else (line, 1)

    with pytest.raises(UserCodeError, match="must yield \\(key, value\\) pairs"):
        run_job(tmp_path, UserFunctions(mapper=late_single), path, split_size=1 << 20)


def test_runs_read_back_exactly_when_batches_repeat_objects(tmp_path):
    import io

    from kubemr.engine.sortedruns import RunWriter, read_run

    shared = "a"
    buf = io.BytesIO()
    writer = RunWriter(buf)
    writer.add("zebra", [shared] * 20000)  # one batch, memoizing "a"
    writer.add(shared, [shared, shared])  # a later batch referring to "a" twice
    writer.end_run()
    buf.seek(0)
    groups = list(read_run(buf))
    assert [k for k, _ in groups] == ["zebra", "a"]
    assert groups[1][1] == ["a", "a"]


def test_a_map_task_without_the_c_modules_says_so_and_stays_exact(tmp_path, monkeypatch, capsys):
    """Installed without a C compiler, kubemr counts keys and cuts lines in Python: each map task
    says so on stderr, and the job's output is the same."""
    from kubemr.engine import formats, mapbuffer

    monkeypatch.setattr(mapbuffer, "Tally", mapbuffer.PyTally)
    monkeypatch.setattr(mapbuffer, "COMPILED", False)
    monkeypatch.setattr(formats, "split_lines", formats.py_split_lines)
    monkeypatch.setattr(formats, "COMPILED", False)
    path = corpus(tmp_path)
    lines, _ = run_job(tmp_path, UserFunctions(mapper, summing, summing), path)
    assert sorted(lines) == reference(path)
    err = capsys.readouterr().err
    assert "kubemr.engine._tally is not compiled" in err
    assert "kubemr.engine._lines is not compiled" in err
