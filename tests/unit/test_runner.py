"""Whole jobs through the local runner: worker processes, retries, commit, counters."""

import os
import re
from collections import Counter

import pytest

from kubemr.engine import commit
from kubemr.errors import JobFailed
from kubemr.runtime.local import run_local
from tests.conftest import make_job, read_output

WORDCOUNT = """
import re
WORD = re.compile(r"[a-z]+")

def mapper(offset, line):
    for word in WORD.findall(line.lower()):
        yield word, 1

def reducer(word, counts):
    yield word, sum(counts)
"""


@pytest.fixture
def books(tmp_path):
    folder = tmp_path / "books"
    folder.mkdir()
    text = "It was the best of times, it was the worst of times; Ünïcode too.\n"
    for i in range(4):
        (folder / f"book{i}.txt").write_text(f"title book{i}\n" + text * (50 * (i + 1)) +
                                             "tail words " * i)
    (folder / "empty.txt").write_text("")
    return folder


def sequential_wordcount(folder):
    counts = Counter()
    for path in folder.iterdir():
        counts.update(re.findall(r"[a-z]+", path.read_text().lower()))
    return counts


def output_counts(tmp_path):
    return Counter({k: int(v) for k, v in (line.split("\t") for line in
                                              read_output(tmp_path / "out"))})


def test_wordcount_matches_a_sequential_run(tmp_path, books):
    job = make_job(tmp_path, WORDCOUNT, str(books) + "/", reducer="reducer", combiner="reducer",
                   reducers=3, input={"splitSize": 1024})
    result = run_local(job)
    assert output_counts(tmp_path) == sequential_wordcount(books)
    assert sorted(os.listdir(tmp_path / "out")) == ["_SUCCESS", "part-00000", "part-00001",
                                                    "part-00002"]
    kubemr = result.counters["kubemr"]
    assert kubemr["reduce_output_records"] == len(sequential_wordcount(books))
    assert kubemr["map_input_records"] == sum(
        len(p.read_text().splitlines()) for p in books.iterdir())
    assert result.maps > 4
    for name in ("part-00000", "part-00001", "part-00002"):
        keys = [line.split("\t")[0] for line in (tmp_path / "out" / name).read_text().splitlines()]
        assert keys == sorted(keys)


def test_user_counters_are_summed_over_committed_attempts(tmp_path, books):
    code = WORDCOUNT + """
import kubemr
def counting_mapper(offset, line):
    kubemr.increment_counter("lines")
    yield from mapper(offset, line)
"""
    job = make_job(tmp_path, code, str(books) + "/", reducer="reducer",
                   mapper="counting_mapper", input={"splitSize": 1024})
    result = run_local(job)
    assert result.counters["user"]["lines"] == result.counters["kubemr"]["map_input_records"]


CRASH_ONCE = WORDCOUNT + """
import os, signal
def crashing_mapper(offset, line):
    marker = os.path.join({marker!r}, line)
    if line.startswith("title") and not os.path.exists(marker):
        open(marker, "w").close()
        {crash}
    yield from mapper(offset, line)
"""


@pytest.mark.parametrize("crash", [
    "raise RuntimeError('first attempt fails')",
    "os._exit(1)",
    "os.kill(os.getpid(), signal.SIGKILL)",
])
def test_a_task_that_dies_once_is_retried_and_the_output_is_exact(tmp_path, books, crash):
    markers = tmp_path / "markers"
    markers.mkdir()
    code = CRASH_ONCE.format(marker=str(markers), crash=crash)
    job = make_job(tmp_path, code, str(books) + "/", mapper="crashing_mapper",
                   reducer="reducer", reducers=2, input={"splitSize": 1 << 10})
    result = run_local(job)
    assert output_counts(tmp_path) == sequential_wordcount(books)
    map_attempts = Counter(a.index for a in result.attempts if a.kind == "map")
    # the first split of each book holds its title line, and fails once
    assert Counter(map_attempts.values()) == {1: result.maps - 4, 2: 4}
    failed = [a for a in result.attempts if not a.ok]
    assert len(failed) == 4


def test_a_mapper_that_always_raises_fails_the_job_with_its_traceback(tmp_path, books):
    code = "def mapper(offset, line):\n    raise ValueError('bad record %d' % offset)\n"
    job = make_job(tmp_path, code, str(books) + "/", maxAttempts=2)
    with pytest.raises(JobFailed) as failure:
        run_local(job)
    message = str(failure.value)
    assert "failed on all 2 attempts" in message
    assert "ValueError: bad record 0" in message
    assert 'line 2, in mapper' in message
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_an_attempt_killed_before_commit_leaves_no_output(tmp_path, books):
    code = "import os, signal\ndef mapper(k, v):\n    yield v, 1\n" \
           "def reducer(k, vs):\n    os.kill(os.getpid(), signal.SIGKILL)\n    yield k, 1\n"
    job = make_job(tmp_path, code, str(books) + "/", reducer="reducer", maxAttempts=1)
    with pytest.raises(JobFailed, match=r"killed \(SIGKILL\)"):
        run_local(job)
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_out_of_memory_fails_the_attempt_not_the_runner(tmp_path, books):
    code = "def mapper(k, v):\n    hog = bytearray(2 << 30)\n    yield v, len(hog)\n"
    job = make_job(tmp_path, code, str(books) + "/", maxAttempts=2,
                   resources={"limits": {"memory": "1Gi"}})
    with pytest.raises(JobFailed, match="MemoryError"):
        run_local(job)


def test_empty_input_gives_empty_committed_parts(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.txt").write_text("")
    job = make_job(tmp_path, WORDCOUNT, str(tmp_path / "in") + "/", reducer="reducer",
                   reducers=2)
    run_local(job)
    assert sorted(os.listdir(tmp_path / "out")) == ["_SUCCESS", "part-00000", "part-00001"]
    assert read_output(tmp_path / "out") == []


def test_jsonl_output_round_trips_tabs_newlines_and_non_ascii(tmp_path):
    import json

    (tmp_path / "in.jsonl").write_text(
        json.dumps({"k": "tab\tkey", "v": "line\nbreak"}) + "\n" +
        json.dumps({"k": "日本語", "v": "ünï"}) + "\n\n")
    code = "def mapper(offset, record):\n    yield record['k'], record['v']\n"
    job = make_job(tmp_path, code, str(tmp_path / "in.jsonl"), input={"format": "jsonl"},
                   output={"format": "jsonl"})
    run_local(job)
    records = [json.loads(line) for line in read_output(tmp_path / "out")]
    assert records == [["tab\tkey", "line\nbreak"], ["日本語", "ünï"]]


def test_class_form_with_setup_and_mapper_final(tmp_path, books):
    code = """
class WordCount:
    def setup(self):
        self.counts = {}

    def mapper(self, offset, line):
        for word in line.lower().split():
            self.counts[word] = self.counts.get(word, 0) + 1
        return ()

    def mapper_final(self):
        yield from self.counts.items()

    def reducer(self, word, counts):
        yield word, sum(counts)
"""
    job = make_job(tmp_path, code, str(books) + "/", mapper="WordCount", reducer="WordCount")
    run_local(job)
    want = Counter()
    for path in books.iterdir():
        want.update(path.read_text().lower().split())
    assert output_counts(tmp_path) == want


def test_committed_output_is_refused_unless_overwriting(tmp_path, books):
    job = make_job(tmp_path, WORDCOUNT, str(books) + "/", reducer="reducer")
    run_local(job)
    with pytest.raises(Exception, match="already holds a committed job"):
        run_local(job)
    run_local(job, overwrite=True)
    assert output_counts(tmp_path) == sequential_wordcount(books)


REUSED = """
import os
import kubemr
poisoned = []  # module state of the attempt: the next attempt must not see it
recorded = []

def mapper(offset, line):
    name, word = line.split()
    if poisoned:
        raise RuntimeError("the state of a failed attempt leaked into this one")
    if not recorded:
        recorded.append(True)
        with open({attempts!r}, "a") as f:
            f.write(f"{{name}} {{os.getpid()}}\\n")
    kubemr.increment_counter("lines")
    if name == "f1" and not os.path.exists({flag!r}):
        open({flag!r}, "w").close()
        poisoned.append(True)
        {failure}
    yield word, 1

def reducer(word, counts):
    yield word, sum(counts)
"""


def run_reusing(tmp_path, failure: str):
    """Four map tasks one at a time; the first attempt of f1's fails with `failure`. Returns
    the (file, worker pid) of each attempt in order, the result and the output."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        (folder / f"f{i}.txt").write_text(f"f{i} w{i}\n" * 200)  # 1,200 bytes: a task each
    attempts, flag = tmp_path / "attempts", tmp_path / "failed-once"
    code = REUSED.format(attempts=str(attempts), flag=str(flag), failure=failure)
    job = make_job(tmp_path, code, str(folder) + "/", reducer="reducer", combiner="reducer",
                   reducers=1, maxAttempts=2, backoffSeconds=0, input={"splitSize": 1200})
    result = run_local(job, workers=1)
    pids = [tuple(line.split()) for line in attempts.read_text().splitlines()]
    return pids, result, Counter(dict(line.split("\t") for line in read_output(tmp_path / "out")))


def test_a_worker_runs_the_next_attempts_after_a_user_exception_as_a_fresh_process(tmp_path):
    pids, result, output = run_reusing(tmp_path, 'raise ValueError("f1 fails once")')
    assert [name for name, _ in pids] == ["f0", "f1", "f1", "f2", "f3"]
    assert len({pid for _, pid in pids}) == 1  # one worker ran every attempt, the failed one too
    assert output == Counter({f"w{i}": "200" for i in range(4)})
    assert result.counters["user"]["lines"] == 800  # not the failed attempt's
    failed = [(a.kind, a.index, a.failure) for a in result.attempts if not a.ok]
    assert failed == [("map", 1, "UserError")]


def test_a_worker_that_dies_is_replaced_by_a_fresh_one(tmp_path):
    pids, result, output = run_reusing(tmp_path, "os._exit(3)")
    assert [name for name, _ in pids] == ["f0", "f1", "f1", "f2", "f3"]
    first, crashed, *rest = [pid for _, pid in pids]
    assert first == crashed and len(set(rest)) == 1 and crashed not in rest
    assert output == Counter({f"w{i}": "200" for i in range(4)})
    assert result.counters["user"]["lines"] == 800
    failed = [(a.kind, a.index, a.failure, a.message) for a in result.attempts if not a.ok]
    assert failed == [("map", 1, "UserError", "the task exited with code 3 without reporting "
                                              "a result")]


def test_each_commit_record_says_where_its_attempt_spent_its_time(tmp_path, books):
    work = tmp_path / "work"
    job = make_job(tmp_path, WORDCOUNT, str(books) + "/", reducer="reducer", reducers=2,
                   intermediate={"uri": f"file://{work}/", "keep": True})
    run_local(job)
    (run,) = os.listdir(work)
    records = {(kind, index): commit.read_commit(f"file://{work}/{run}", kind, index)
               for kind, index in [("map", 0), ("reduce", 0), ("reduce", 1)]}
    for (kind, _), record in records.items():
        timings = record["timings"]
        steps = ("map", "upload") if kind == "map" else ("fetch", "reduce", "upload")
        assert set(timings) == {"startup", "cpu", *steps} | ({"read"} if kind == "map" else set())
        assert 0 <= timings["startup"] < 60  # 0 in a worker that ran an attempt before
        assert 0 <= timings["cpu"] < 60
        assert all(timings[s] >= 0 for s in steps)
        assert sum(timings[s] for s in steps) <= record["seconds"] + 0.01
    assert records["map", 0]["timings"]["read"] <= records["map", 0]["timings"]["map"]
    assert records["map", 0]["timings"]["startup"] > 0  # the first attempt of its worker


def test_a_worker_runs_its_attempts_on_one_thread(tmp_path, books):
    """No heartbeat or other thread in a local worker: a process that ever had a second thread
    takes a lock in every malloc and free (glibc's), 5% of a word count's time."""
    code = """
import os
def mapper(offset, line):
    yield "threads", len(os.listdir("/proc/self/task"))
def reducer(key, counts):
    yield key, max(counts)
"""
    job = make_job(tmp_path, code, str(books) + "/", reducer="reducer", reducers=1)
    run_local(job)
    assert read_output(tmp_path / "out") == ["threads\t1"]
