"""The examples run as documented (with their output moved to a temp dir)."""

import json
import os
import shutil

import pytest

from kubemr.runtime.local import run_local
from kubemr.spec.manifest import load_manifest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def run_example(name, tmp_path):
    job = load_manifest(os.path.join("examples", name))
    job.spec["output"]["uri"] = str(tmp_path / "out") + "/"
    result = run_local(job)
    parts = sorted(p for p in os.listdir(tmp_path / "out") if p.startswith("part-"))
    return result, [(tmp_path / "out" / p).read_text().splitlines() for p in parts]


def test_wordcount(tmp_path):
    _, parts = run_example("wordcount.yaml", tmp_path)
    counts = dict(line.split("\t") for part in parts for line in part)
    assert counts["the"] == "17" and counts["harry"] == "6" and counts["vinci"] == "7"


def test_inverted_index(tmp_path):
    _, parts = run_example("inverted-index.yaml", tmp_path)
    index = dict(json.loads(line) for part in parts for line in part)
    assert index["potter"] == ["shelf1.txt", "shelf2.txt", "shelf3.txt"]


def test_combiner_and_partitioner(tmp_path):
    result, parts = run_example("letters.yaml", tmp_path)
    first_half = [json.loads(line)[0] for line in parts[0]]
    second_half = [json.loads(line)[0] for line in parts[1]]
    assert all("a" <= c <= "m" for c in first_half)
    assert all(not "a" <= c <= "m" for c in second_half)
    totals = sum(json.loads(line)[1]["words"] for part in parts for line in part)
    assert totals == result.counters["user"]["words"] == 112


def test_pod_template_variables_reach_each_task_type(tmp_path):
    _, parts = run_example("stopwords.yaml", tmp_path)
    counts = {word: int(n) for word, n in (line.split("\t") for part in parts for line in part)}
    assert counts["harry"] == 6 and counts["vinci"] == 7
    assert "the" not in counts and "of" not in counts  # the mappers' STOPWORDS
    assert "madison" not in counts and min(counts.values()) == 6  # the reducers' MIN_COUNT (5)


def test_sum_of_squares_through_a_tree_of_reduces(tmp_path):
    result, parts = run_example("sum-of-squares.yaml", tmp_path)
    assert parts == [["sum of squares\t385"]]
    assert result.maps == 11
    assert sum(1 for a in result.attempts if a.kind == "combine" and a.ok) == 6 + 3 + 2


def test_a_replicated_dataset_counts_as_its_files_do_with_a_node_lost(tmp_path):
    from kubemr.client.cli import main

    nodes = [a for n in ("n1", "n2", "n3") for a in ("--node", f"{n}={tmp_path}/nodes/{n}")]
    dataset = str(tmp_path / "datasets" / "books")
    assert main(["put", "examples/data/books", dataset, "--block-size", "4Ki", *nodes]) == 0
    job = load_manifest("examples/wordcount-dataset.yaml")
    job.spec["input"]["uris"] = [dataset + "/"]
    job.spec["output"]["uri"] = str(tmp_path / "out") + "/"
    shutil.rmtree(tmp_path / "nodes" / "n2")
    result = run_local(job)
    assert result.maps == 3  # a map task per block: each book is one
    parts = [(tmp_path / "out" / p).read_text().splitlines()
             for p in sorted(os.listdir(tmp_path / "out")) if p.startswith("part-")]
    counts = dict(line.split("\t") for part in parts for line in part)
    assert counts["the"] == "17" and counts["harry"] == "6" and counts["vinci"] == "7"


def test_cluster_example_is_a_valid_manifest():
    assert load_manifest("examples/wordcount-s3.yaml").spec["reducers"] == 2


def test_sorted_values_top3(tmp_path):
    result, parts = run_example("top3.yaml", tmp_path)
    got = dict(json.loads(line) for part in parts for line in part)
    with open("examples/data/readings/readings.jsonl") as f:
        readings = [json.loads(line) for line in f]
    want = {}
    for r in sorted(readings, key=lambda r: (-r["celsius"], r["time"])):
        hottest = want.setdefault(r["sensor"], [])
        if len(hottest) < 3:
            hottest.append({"time": r["time"], "celsius": r["celsius"]})
    assert got == want and set(got) == {"greenhouse", "cellar", "attic"}
    assert result.maps == 3
    counters = result.counters["kubemr"]
    assert counters["combine_input_records"] == len(readings) == 72
    assert counters["combine_output_records"] <= 3 * 3 * 3  # maps x sensors x 3
