"""Trees of reduces (spec.reduceTree): the layout, the scheduler's dependencies, the manifest's
rules, and whole jobs on both runners with exact output."""

from __future__ import annotations

import os
from collections import Counter

import pytest
from kubemr_operator import reconcile as reconcile_module
from kubemr_operator.config import Settings

from kubemr.engine import commit
from kubemr.errors import ManifestError
from kubemr.runtime.local import run_local
from kubemr.scheduling import Policy, decide, new_tasks
from kubemr.scheduling.failures import MAP_OUTPUT_LOST
from kubemr.scheduling.state import FAILED, SUCCEEDED
from kubemr.scheduling.tree import Combine, ReduceTree, Source
from kubemr.spec.manifest import parse_manifest
from tests.conftest import make_job, read_output
from tests.manifest_cases import DELETE, changed, manifest
from tests.unit.standin import (
    StandInCluster,
    job_object,
    lose_before_the_first_reduce,
    run_to_the_end,
)
from tests.unit.test_reconcile import WORDCOUNT

# -- the layout ------------------------------------------------------------------------------


@pytest.mark.parametrize("maps, fan_in, widths", [
    (11, 2, (6, 3, 2)), (1000, 10, (100, 10)), (5, 5, ()), (5, 16, ()), (17, 4, (5, 2)),
    (1, 2, ())])
def test_each_level_has_a_fan_in_th_of_the_one_below(maps, fan_in, widths):
    assert ReduceTree(maps, 3, fan_in).widths == widths


@pytest.mark.parametrize("maps, reducers, fan_in", [(11, 1, 2), (1000, 2, 10), (17, 3, 4),
                                                    (7, 2, 3), (4, 2, 9)])
def test_every_map_output_reaches_each_final_reduce_once_through_the_tree(maps, reducers, fan_in):
    tree = ReduceTree(maps, reducers, fan_in)
    for r in range(reducers):
        reached, frontier = Counter(), list(tree.reduce_sources(r))
        assert 1 <= len(frontier) <= fan_in
        while frontier:
            source = frontier.pop()
            if source.kind == "map":
                reached[source.index] += 1
                continue
            where = tree.combine(source.index)
            assert where.partition == r
            below = tree.combine_sources(source.index)
            assert 1 <= len(below) <= fan_in
            assert all(s.kind == "map" for s in below) == (where.level == 1)
            frontier += below
        assert reached == Counter(range(maps))


def test_combine_tasks_are_numbered_level_by_level_then_partition_by_partition():
    tree = ReduceTree(10, 2, 3)  # level 1: 4 per partition, level 2: 2 per partition
    assert tree.combines == 12
    assert [tree.combine(i) for i in (0, 3, 4, 8, 9, 10, 11)] == [
        Combine(1, 0, 0), Combine(1, 0, 3), Combine(1, 1, 0), Combine(2, 0, 0),
        Combine(2, 0, 1), Combine(2, 1, 0), Combine(2, 1, 1)]
    assert tree.combine_sources(3) == [Source("map", 9)]
    assert tree.combine_sources(9) == [Source("combine", 3)]
    assert tree.combine_sources(10) == [Source("combine", i) for i in (4, 5, 6)]
    assert tree.reduce_sources(1) == [Source("combine", 10), Source("combine", 11)]


def test_a_tree_of_too_many_combine_tasks_is_refused_naming_the_fields():
    with pytest.raises(ManifestError, match="spec.reduceTree.fanIn 2 .* raise fanIn"):
        ReduceTree(100_000, 10, 2).check_size()


# -- the scheduler ---------------------------------------------------------------------------

POLICY = Policy(parallelism=4, backoff_seconds=0, speculation=False)


def commit_task(task, now=0.0):
    attempt = task.attempt(task.next_number)
    attempt.state, attempt.launched, attempt.finished = SUCCEEDED, now, now
    task.committed, task.committed_attempt = True, attempt.number


def test_a_combine_task_starts_once_its_inputs_commit_before_maps_still_waiting():
    tasks = new_tasks(9, 1, fan_in=3)
    maps = tasks[:9]
    for task in maps[:3]:
        commit_task(task)
    launched = [(launch.task.kind, launch.task.index) for launch in decide(tasks, POLICY, 1).launch]
    assert launched == [("combine", 0), ("map", 3), ("map", 4), ("map", 5)]


def test_the_final_reduce_waits_for_the_last_level_not_for_every_map_alone():
    tasks = new_tasks(4, 1, fan_in=2)  # maps 0-3, combines 0-1, reduce 0
    for task in tasks[:4]:
        commit_task(task)
    decision = decide(tasks, POLICY, 1)
    assert decision.phase == "Reducing"
    assert [(x.task.kind, x.task.index) for x in decision.launch] == [("combine", 0),
                                                                      ("combine", 1)]
    commit_task(tasks[4])
    commit_task(tasks[5])
    assert [(x.task.kind, x.task.index) for x in decide(tasks, POLICY, 2).launch] == [
        ("reduce", 0)]


def test_a_lost_combine_output_runs_that_combine_again_and_its_reader_after_it():
    tasks = new_tasks(4, 1, fan_in=2)
    for task in tasks[:6]:
        commit_task(task)
    reduce = tasks[6]
    attempt = reduce.attempt(1)
    attempt.fail(MAP_OUTPUT_LOST, "committed outputs are gone", 3)
    attempt.lost_maps = (("combine", 1, 1),)
    decision = decide(tasks, POLICY, 4)
    assert decision.lost_maps == [tasks[5]]
    assert tasks[5].attempt(1).state == FAILED and not tasks[5].committed
    assert [(x.task.kind, x.task.index, x.number) for x in decision.launch] == [
        ("combine", 1, 2)]


# -- the manifest ----------------------------------------------------------------------------


def test_a_tree_without_a_combiner_or_an_associative_reducer_is_refused():
    with pytest.raises(ManifestError) as e:
        parse_manifest(changed(manifest(), "spec.reduceTree", {"fanIn": 4}))
    assert str(e.value).startswith("spec.reduceTree: a tree of reduces combines")
    parse_manifest(changed(changed(manifest(), "spec.reduceTree", {"fanIn": 4}),
                           "spec.combiner", "reducer"))


def test_an_associative_reducer_that_is_not_there_is_refused():
    doc = changed(changed(manifest(), "spec.reduceTree", {"fanIn": 4, "associative": True}),
                  "spec.reducer", DELETE)
    with pytest.raises(ManifestError, match="^spec.reduceTree.associative: says the reducer"):
        parse_manifest(doc)


# -- whole jobs ------------------------------------------------------------------------------

SQUARES = """
def mapper(offset, line):
    first, last = map(int, line.split())
    yield "squares", sum(n * n for n in range(first, last + 1))

def total(key, values):
    yield key, sum(values)
"""


def ranges_input(tmp_path, top: int, maps: int) -> str:
    """One file of `maps` lines "first last" covering 0..top, each line padded to 1 KiB: with
    splitSize 1024, one map task per line."""
    data = tmp_path / "ranges"
    data.mkdir()
    step = -(-(top + 1) // maps)
    with open(data / "ranges.txt", "w") as f:
        for first in range(0, top + 1, step):
            f.write(f"{first} {min(first + step - 1, top)}".ljust(1023) + "\n")
    return str(data) + "/"


def squares_job(tmp_path, top: int, maps: int, fan_in: int):
    return make_job(tmp_path, SQUARES, ranges_input(tmp_path, top, maps), reducer="total",
                    reduceTree={"fanIn": fan_in, "associative": True},
                    input={"splitSize": 1024}, backoffSeconds=0)


def test_seed_000_the_sum_of_the_squares_of_0_to_10(tmp_path):
    result = run_local(squares_job(tmp_path, 10, 11, 2))
    assert read_output(tmp_path / "out") == ["squares\t385"]
    assert result.maps == 11
    combines = [a for a in result.attempts if a.kind == "combine"]
    assert len(combines) == 11 and all(a.ok for a in combines)  # 6 + 3 + 2


@pytest.mark.slow
def test_the_sum_of_the_squares_of_0_to_ten_million_over_1000_maps_in_three_levels(tmp_path):
    top = 10**7
    result = run_local(squares_job(tmp_path, top, 1000, 10), workers=2)
    assert read_output(tmp_path / "out") == [f"squares\t{top * (top + 1) * (2 * top + 1) // 6}"]
    assert result.maps == 1000
    levels = Counter(ReduceTree(1000, 1, 10).combine(a.index).level
                     for a in result.attempts if a.kind == "combine" and a.ok)
    assert levels == {1: 100, 2: 10}  # and the final reduce reads 10 outputs: three levels


@pytest.fixture
def books(tmp_path):
    """Fourteen map tasks of text (seven files of two splits), and the word count they must
    give."""
    data = tmp_path / "books"
    data.mkdir()
    want = Counter()
    for i in range(7):
        text = "".join(f"the {i} word{j % 11} and the cat{(i * j) % 5}\n" for j in range(60))
        (data / f"book{i}.txt").write_text(text)
        want.update(w for line in text.splitlines() for w in line.split())
    return str(data) + "/", want


@pytest.mark.parametrize("fan_in, with_combiner", [(2, True), (3, False), (16, True)])
def test_word_count_is_exact_whatever_the_tree(tmp_path, books, fan_in, with_combiner):
    data, want = books
    tree = {"fanIn": fan_in} if with_combiner else {"fanIn": fan_in, "associative": True}
    job = make_job(tmp_path, WORDCOUNT, data, reducer="reducer", reducers=3,
                   reduceTree=tree, input={"splitSize": 1024},
                   **({"combiner": "reducer"} if with_combiner else {}))
    result = run_local(job, workers=2)
    assert result.maps == 14
    got = Counter({w: int(n) for w, n in (line.split("\t") for line in read_output(
        tmp_path / "out"))})
    assert got == want
    combines = sum(1 for a in result.attempts if a.kind == "combine" and a.ok)
    assert combines == ReduceTree(14, 3, fan_in).combines == {2: 3 * (7 + 4 + 2), 3: 3 * (5 + 2),
                                                            16: 0}[fan_in]
    assert result.counters["kubemr"].get("tree_input_groups", 0) > 0 or fan_in == 16


def test_sorted_values_stay_sorted_through_the_tree(tmp_path):
    code = """
def mapper(offset, line):
    for n in line.split():
        yield int(n) % 3, int(n)

def keep(key, values):
    for v in values:
        yield key, v

def reducer(key, values):
    values = list(values)
    yield key, (values == sorted(values), len(values))
"""
    data = tmp_path / "nums"
    data.mkdir()
    for i in range(5):
        (data / f"n{i}.txt").write_text(" ".join(str((i * 7919 + j * 104729) % 1000)
                                                 for j in range(300)) + "\n")
    job = make_job(tmp_path, code, str(data) + "/", combiner="keep", reducer="reducer",
                   sortValues=True, reduceTree={"fanIn": 2}, input={"splitSize": 1024})
    run_local(job, workers=2)
    got = dict(line.split("\t") for line in read_output(tmp_path / "out"))
    assert sorted(got) == ["0", "1", "2"]
    assert all(value.startswith("(True, ") for value in got.values())
    assert sum(int(v.split(", ")[1].rstrip(")")) for v in got.values()) == 1500


# -- a lost combine output, through both runners ------------------------------------------------


LAST_LEVEL = ReduceTree(14, 1, 3).reduce_sources(0)[-1].index  # of 14 -> 5 -> 2 outputs


def lose_a_combine_output(work: str) -> None:
    """The committed output of a combine task that the reduce task reads."""
    record = commit.read_commit(work, "combine", LAST_LEVEL)
    os.unlink(record["data"][len("file://"):])


def tree_job(tmp_path, books, run: str):
    data, _ = books
    return make_job(tmp_path, WORDCOUNT, data, name="tree", reducer="reducer",
                    reduceTree={"fanIn": 3, "associative": True}, input={"splitSize": 1024},
                    backoffSeconds=0, speculation=False,
                    output={"uri": str(tmp_path / f"out-{run}") + "/"})


def test_a_lost_combine_output_is_made_again_on_both_runners(tmp_path, books, monkeypatch):
    _, want = books
    lose_before_the_first_reduce(monkeypatch, lose_a_combine_output)
    result = run_local(tree_job(tmp_path, books, "local"), workers=2)
    failed = sorted((a.kind, a.index, a.number, a.failure) for a in result.attempts if not a.ok)
    expected = [("combine", LAST_LEVEL, 1, MAP_OUTPUT_LOST), ("reduce", 0, 1, MAP_OUTPUT_LOST)]
    assert failed == expected

    reconcile_module._caches.clear()
    job = job_object(tree_job(tmp_path, books, "operator").spec, name="tree")
    settings = Settings(work_uri=f"file://{tmp_path}/work", heartbeat_seconds=1.0,
                        local_paths=True)
    scratch = tmp_path / "pods"
    scratch.mkdir()
    cluster = StandInCluster(job, scratch, settings, lose_a_combine_output)
    status = run_to_the_end(job, cluster, settings)
    assert status["phase"] == "Succeeded", status
    assert status["combinesDone"] == "7/7" and status["combines"]["levels"] == 2
    failures = sorted(message.split(" failed ")[1].split(")")[0] + ")" for _, reason, message
                      in cluster.events if reason == "TaskFailed")
    assert failures == [f"({MAP_OUTPUT_LOST})"] * 2
    for run in ("local", "operator"):
        got = Counter({w: int(n) for w, n in (line.split("\t") for line in read_output(
            tmp_path / f"out-{run}"))})
        assert got == want
