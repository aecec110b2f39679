"""Small input objects packed into one split (Hadoop's CombineFileInputFormat): the plan, the
records each part gives, the task document that carries a split, and whole jobs over many
small files."""

import gzip
import json
import os
import re
from collections import Counter

import pytest

from kubemr.engine.formats import InputReader
from kubemr.engine.plan import (
    MIN_PACKED,
    SLACK,
    Part,
    Split,
    cut_splits,
    load_split,
    pack_counts,
    plan_splits,
    split_document,
)
from kubemr.errors import ManifestError, UserCodeError
from kubemr.runtime.local import run_local
from kubemr.storage import ObjectInfo
from tests.conftest import make_job, read_output


def records(uri, fmt="text", split_size=1 << 20):
    splits = plan_splits([str(uri)], fmt, split_size)
    return splits, [r for s in splits for r in InputReader(s, fmt)]


def by_file(splits):
    """The file names of each split's parts."""
    return [[p.uri.rsplit("/", 1)[1] for p in s.parts] for s in splits]


def test_a_last_line_without_newline_does_not_run_into_the_next_file(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"one\ntwo")
    (tmp_path / "b.txt").write_bytes(b"three\r\nfour\n")
    (tmp_path / "c.txt").write_bytes(b"\nfive")
    splits, got = records(tmp_path)
    assert by_file(splits) == [["a.txt", "b.txt", "c.txt"]]
    # each key is the line's byte offset in its own file
    assert got == [(0, "one"), (4, "two"), (0, "three"), (7, "four"), (0, ""), (1, "five")]


def test_jsonl_offsets_and_errors_belong_to_each_file(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"a": 1}\n\n[2]')
    (tmp_path / "b.jsonl").write_text('"x"\n')
    splits, got = records(tmp_path, "jsonl")
    assert len(splits) == 1
    assert got == [(0, {"a": 1}), (10, [2]), (0, "x")]
    (tmp_path / "c.jsonl").write_text('{"ok": 1}\nnope\n')
    with pytest.raises(UserCodeError, match=r"c\.jsonl at byte 10: not a JSON value"):
        records(tmp_path, "jsonl")


def test_whole_file_keys_stay_each_objects_own_name(tmp_path):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.txt").write_text("héllo\nworld")
    (docs / "sub" / "b.txt").write_text("b")
    (docs / "empty.txt").write_text("")
    (docs / "_SUCCESS").write_text("skipped")
    (docs / ".hidden").write_text("skipped")
    (docs / "sub" / "_temporary").mkdir()
    (docs / "sub" / "_temporary" / "c.txt").write_text("skipped")
    splits, got = records(str(docs) + "/", "whole-file")
    assert len(splits) == 1
    assert got == [("a.txt", "héllo\nworld"), ("empty.txt", ""), ("sub/b.txt", "b")]
    # an object named on its own is keyed by its file name, as before
    _, got = records(docs / "sub" / "b.txt", "whole-file")
    assert got == [("b.txt", "b")]


def test_small_files_pack_up_to_the_split_size_and_large_ones_are_cut(tmp_path):
    sizes = {"a": 30, "b": 30, "big": 250, "c": 50, "d": 40, "e": 100}
    for name, size in sizes.items():
        (tmp_path / f"{name}.txt").write_bytes(b"x" * (size - 1) + b"\n")
    splits = plan_splits([str(tmp_path) + "/"], "text", 100)
    ranges = [[(p.uri.rsplit("/", 1)[1], p.start, p.end) for p in s.parts] for s in splits]
    assert ranges == [
        [("big.txt", 0, 100)], [("big.txt", 100, 200)], [("big.txt", 200, 250)],
        [("e.txt", 0, 100)],  # not smaller than the split size: a range of its own
        # then the small ones, packed: with c.txt they would make 110
        [("a.txt", 0, 30), ("b.txt", 0, 30)], [("c.txt", 0, 50), ("d.txt", 0, 40)],
    ]
    assert all(s.length <= 100 for s in splits)


def test_a_mix_of_big_and_small_files_reads_every_line_once(tmp_path):
    want = []
    for i in range(12):
        lines = [f"file{i} line{j} " + "w" * ((i * 7 + j) % 13) for j in range(3 + i * i * 3)]
        content = "\n".join(lines) + ("\n" if i % 2 else "")  # odd files end with a newline
        (tmp_path / f"f{i:02d}.txt").write_text(content)
        offsets = [0]
        for line in lines[:-1]:
            offsets.append(offsets[-1] + len(line) + 1)
        want.extend(zip(offsets, lines, strict=True))
    sizes = sorted(os.path.getsize(p) for p in tmp_path.iterdir())
    for split_size in (sizes[3], sizes[6], 999, sizes[-1] // 2, sizes[-1] + 1):
        splits, got = records(tmp_path, split_size=split_size)
        assert sorted(got, key=lambda r: (r[1].split()[0], r[0])) == \
            sorted(want, key=lambda r: (r[1].split()[0], r[0])), split_size
        assert len(got) == len(want)
        packed = [s for s in splits if len(s.parts) > 1]
        assert packed and all(s.length <= split_size * (1 + SLACK) for s in packed)
        assert all(p.start == 0 and p.end == p.size < split_size for s in packed for p in s.parts)


def test_empty_files(tmp_path):
    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    splits, got = records(tmp_path)
    assert by_file(splits) == [["a.txt", "b.txt", "c.txt"]] and got == []
    (tmp_path / "d.txt").write_text("only\nthese")
    splits, got = records(tmp_path)
    assert by_file(splits) == [["a.txt", "b.txt", "c.txt", "d.txt"]]
    assert got == [(0, "only"), (5, "these")]
    _, got = records(tmp_path, "whole-file")
    assert got == [("a.txt", ""), ("b.txt", ""), ("c.txt", ""), ("d.txt", "only\nthese")]


def test_gzip_files_are_read_whole_and_may_be_packed(tmp_path):
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(b"alpha\nbeta\n"))
    (tmp_path / "b.txt").write_text("gamma\n")
    (tmp_path / "c.txt.gz").write_bytes(gzip.compress(b"delta"))
    splits, got = records(tmp_path, split_size=1000)
    assert by_file(splits) == [["a.txt.gz", "b.txt", "c.txt.gz"]]
    assert got == [(0, "alpha"), (6, "beta"), (0, "gamma"), (0, "delta")]
    # a .gz as large as the split size is one split, read whole
    assert all(os.path.getsize(tmp_path / n) > 20 for n in ("a.txt.gz", "c.txt.gz"))
    splits, got = records(tmp_path, split_size=20)
    assert by_file(splits) == [["a.txt.gz"], ["c.txt.gz"], ["b.txt"]]
    assert got == [(0, "alpha"), (6, "beta"), (0, "delta"), (0, "gamma")]


SERVERS = [{"node": "n1", "bucket": "node-n1", "endpoint": "http://minio-n1:9000"},
           {"node": "n2", "bucket": "node-n2", "endpoint": "http://minio-n2:9000"}]


def test_objects_are_packed_only_with_others_on_the_same_nodes_server():
    def listed(base, *names_and_sizes):
        return base, [ObjectInfo(base + name, size) for name, size in names_and_sizes]

    inputs = [listed("s3://node-n1/a/", ("f0", 10), ("f1", 10)),
              listed("s3://node-n2/a/", ("g0", 10), ("big", 75)),
              listed("s3://shared/a/", ("h0", 10)),
              listed("s3://node-n1/b/", ("f2", 10), ("f3", 10)),
              listed("s3://node-n2/b/", ("g1", 10))]
    splits = cut_splits(inputs, "text", 30, SERVERS)
    got = [(s.node, [p.uri[len("s3://"):] for p in s.parts]) for s in splits]
    assert got == [
        ("n2", ["node-n2/a/big"]), ("n2", ["node-n2/a/big"]), ("n2", ["node-n2/a/big"]),
        # n1's 40 bytes need 2 splits of at most 30: 2 of 20, not 30 and 10
        ("n1", ["node-n1/a/f0", "node-n1/a/f1"]), ("n1", ["node-n1/b/f2", "node-n1/b/f3"]),
        ("n2", ["node-n2/a/g0", "node-n2/b/g1"]),
        (None, ["shared/a/h0"]),
    ]
    # each part keeps the input prefix it was listed under
    assert [p.name for p in splits[4].parts] == ["f2", "f3"]
    assert splits[4].parts[0].base == "s3://node-n1/b/"
    # with no per-node servers (the local runner), everything small packs together
    splits = cut_splits(inputs, "text", 1000, [])
    assert [(s.node, len(s.parts)) for s in splits] == [(None, 8)]


MiB = 1 << 20


def packed_sizes(sizes: list[int], split_size: int, parallelism: int = 1,
                 max_splits: int = 1000) -> list[list[int]]:
    objects = [ObjectInfo(f"file:///in/{i:04d}", size) for i, size in enumerate(sizes)]
    splits = cut_splits([("file:///in/", objects)], "text", split_size, [], max_splits,
                        parallelism)
    return [[p.size for p in s.parts] for s in splits]


def test_packed_splits_are_even_and_fill_whole_waves_of_the_jobs_parallelism():
    just_over = 16 * MiB + 100  # 8 such files: 2 splits a few bytes past 64 MiB, not 3
    assert packed_sizes([just_over] * 8, 64 * MiB) == [[just_over] * 4] * 2
    assert packed_sizes([just_over] * 8, 64 * MiB, parallelism=2) == [[just_over] * 4] * 2
    # 9 such files: 3 splits by size; on 2 workers the third would leave one idle: 4
    assert packed_sizes([just_over] * 9, 64 * MiB) == [[just_over] * 3] * 3
    assert [len(split) for split in packed_sizes([just_over] * 9, 64 * MiB, 2)] == [2, 3, 2, 2]
    assert packed_sizes([just_over] * 8, 64 * MiB, parallelism=4) == [[just_over] * 2] * 4
    assert packed_sizes([just_over] * 8, 64 * MiB, parallelism=8) == [[just_over]] * 8
    # 10% past split_size at most in one split, and every object exactly once
    sizes = [(i * 7919) % (40 * MiB) + 1 for i in range(60)]
    for parallelism in (1, 2, 3, 8):
        packed = packed_sizes(sizes, 64 * MiB, parallelism)
        assert sum(packed, []) == sizes
        assert all(sum(split) <= 64 * MiB * (1 + SLACK) for split in packed)
    assert all(sum(split) <= 64 * MiB for split in packed_sizes([16 * MiB] * 9, 64 * MiB))
    # objects small beside a split: exactly as many splits as planned, a whole wave
    sizes = [(i * 7919 * 7919) % (8 * MiB) + 1 for i in range(100)]
    for parallelism in (1, 2, 3, 8):
        counts = pack_counts({None: sum(sizes)}, 64 * MiB, parallelism, 1000)
        assert len(packed_sizes(sizes, 64 * MiB, parallelism)) == counts[None]
        assert counts[None] % parallelism == 0
    # small inputs are not spread thin to fill a wave: splits keep at least MIN_PACKED bytes
    assert packed_sizes([1000] * 2000, 64 * MiB, parallelism=8) == [[1000] * 2000]
    assert len(packed_sizes([MIN_PACKED // 2] * 4, 64 * MiB, parallelism=8)) == 2
    # nor past the bound on the number of map tasks
    assert len(packed_sizes([just_over] * 8, 64 * MiB, parallelism=8, max_splits=5)) <= 5


def test_pack_counts_fill_waves_across_nodes():
    totals = {"n1": 100 * MiB, "n2": 40 * MiB, None: 10 * MiB}
    assert pack_counts(totals, 64 * MiB, 1, 100) == {"n1": 2, "n2": 1, None: 1}
    counts = pack_counts(totals, 64 * MiB, 8, 100)
    assert sum(counts.values()) == 8 and counts[None] == 1  # 10 MiB stays one split
    assert all(totals[n] / counts[n] >= MIN_PACKED for n in counts if counts[n] > 1)


def test_whole_files_of_different_input_prefixes_keep_their_own_names():
    a = [ObjectInfo(f"file:///a/{i}", 5) for i in range(3)]
    b = [ObjectInfo(f"file:///b/x/{i}", 5) for i in range(2)]
    [split] = cut_splits([("file:///a/", a), ("file:///b/", b)], "whole-file", 100, [])
    assert [p.name for p in split.parts] == ["0", "1", "2", "x/0", "x/1"]


def test_the_planned_task_count_is_bounded():
    objects = [ObjectInfo(f"file:///in/{i}", 10) for i in range(100)]
    assert len(cut_splits([("file:///in/", objects)], "text", 20, [], max_splits=50)) == 50
    with pytest.raises(ManifestError, match="more than 49 map tasks: raise input.splitSize"):
        cut_splits([("file:///in/", objects)], "text", 20, [], max_splits=49)
    # packed, a thousand small files are a handful of map tasks
    objects = [ObjectInfo(f"file:///in/{i}", 10) for i in range(1000)]
    assert len(cut_splits([("file:///in/", objects)], "text", 5000, [], max_splits=2)) == 2


def test_a_split_travels_as_a_dict_and_old_plans_still_read():
    split = Split((Part("file:///in/a", 0, 5, 5, "file:///in/"),
                   Part("file:///in/b", 0, 7, 7, "file:///in/")), "n1")
    assert Split.from_dict(json.loads(json.dumps(split.to_dict()))) == split
    old = {"uri": "file:///in/a", "start": 2, "end": 5, "size": 9, "base": "file:///in/"}
    assert Split.from_dict(old) == Split.of("file:///in/a", 2, 5, 9, "file:///in/")


def test_a_large_split_is_kept_in_the_store_and_named_in_the_task(tmp_path):
    parts = tuple(Part(f"file:///in/part-{i:06d}.txt", 0, 10, 10, "file:///in/")
                  for i in range(2000))
    split = Split(parts)
    uri = f"file://{tmp_path}/work/splits/map-00000.json"
    document = split_document(split, uri)
    assert document == {"stored": uri}
    assert load_split(document) == split
    small = Split(parts[:3])
    assert split_document(small, uri + ".unused") == small.to_dict()
    assert load_split(small.to_dict()) == small
    assert not os.path.exists(str(tmp_path / "work" / "splits" / "map-00000.json.unused"))


WORDCOUNT = """
import re
WORD = re.compile(r"[a-z']+")
def mapper(offset, line):
    for word in WORD.findall(line.lower()):
        yield word, 1
def reducer(word, counts):
    yield word, sum(counts)
"""
VOCABULARY = "the of and to in a is that it was for on are as with his they at be this".split()


def tiny_files(folder, count):
    """`count` files of at most a few hundred bytes, some ending without a newline."""
    folder.mkdir()
    want = Counter()
    for i in range(count):
        words = [VOCABULARY[(i * 7 + j * j) % len(VOCABULARY)] for j in range(i % 40 + 1)]
        text = "\n".join(" ".join(words[k:k + 6]) for k in range(0, len(words), 6))
        (folder / f"doc-{i:04d}.txt").write_text(text + ("\n" if i % 3 else ""))
        want.update(words)
    return want


def test_many_tiny_files_are_few_map_tasks_with_the_exact_word_count(tmp_path):
    want = tiny_files(tmp_path / "in", 400)
    total = sum(p.stat().st_size for p in (tmp_path / "in").iterdir())
    job = make_job(tmp_path, WORDCOUNT, str(tmp_path / "in") + "/", reducer="reducer",
                   combiner="reducer", reducers=2, input={"splitSize": 8 << 10})
    result = run_local(job)
    assert result.maps == pytest.approx(total / (8 << 10), abs=1)
    got = Counter({w: int(n) for w, n in (line.split("\t") for line in
                                          read_output(tmp_path / "out"))})
    assert got == want
    assert result.counters["kubemr"]["map_input_records"] == sum(
        len(p.read_text().splitlines()) for p in (tmp_path / "in").iterdir())
    assert result.counters["kubemr"]["bytes_read"] == total


def test_the_operator_keeps_a_packed_split_in_the_store_and_the_job_is_exact(tmp_path):
    from kubemr_operator import reconcile as reconcile_module
    from kubemr_operator.config import Settings
    from kubemr_operator.reconcile import work_uri

    from tests.unit.standin import StandInCluster, job_object, run_to_the_end

    want = tiny_files(tmp_path / "in", 300)
    spec = make_job(tmp_path, WORDCOUNT, str(tmp_path / "in") + "/", reducer="reducer",
                    reducers=2, backoffSeconds=0).spec
    settings = Settings(work_uri=f"file://{tmp_path}/work", heartbeat_seconds=1.0,
                        local_paths=True)
    (tmp_path / "pods").mkdir()
    reconcile_module._caches.clear()
    job = job_object(spec)
    cluster = StandInCluster(job, tmp_path / "pods", settings)
    tasks = []
    original = cluster.create_pod
    cluster.create_pod = lambda pod: (tasks.append(pod["spec"]["containers"][0]["env"]),
                                      original(pod))
    status = run_to_the_end(job, cluster, settings)
    assert status["phase"] == "Succeeded" and status["mapsDone"] == "1/1"
    got = Counter({w: int(n) for w, n in (line.split("\t") for line in
                                          read_output(tmp_path / "out"))})
    assert got == want
    documents = [json.loads(e["value"]) for env in tasks for e in env
                 if e["name"] == "KUBEMR_TASK"]
    [map_document] = [d for d in documents if d["type"] == "map"]
    assert set(map_document["split"]) == {"stored"}
    assert re.search(r"/splits/map-00000\.json$", map_document["split"]["stored"])
    assert max(len(json.dumps(d)) for d in documents) < 4096
    assert not os.path.exists(work_uri(job, settings)[len("file://"):])  # nor the split
