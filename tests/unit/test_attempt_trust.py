"""A reduce attempt reads (unpickles) only map outputs under its own job's work prefix: a map
COMMIT naming anything else, or a name whose `..` leads out of the prefix, is refused before a
byte of it is read."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from kubemr.engine import commit
from kubemr.errors import UntrustedCommit
from kubemr.runtime.attempt import run_task
from kubemr.storage.nodes import within
from tests.conftest import make_job

WORDCOUNT = """
def mapper(offset, line):
    yield line, 1

def reducer(key, values):
    yield key, sum(values)
"""


class Plant:
    """A map output that, once unpickled, creates the file `ran`."""

    def __init__(self, ran: Path):
        self.ran = ran

    def __reduce__(self):
        return exec, (f"open({str(self.ran)!r}, 'w').close()",)


@pytest.mark.parametrize("named", ["elsewhere", "out by .."])
def test_a_reduce_attempt_refuses_a_map_commit_outside_its_prefix(tmp_path, named):
    ran = tmp_path / "the-plant-ran"
    plant = tmp_path / "other-team" / "map-00000" / "attempt-1.out"
    plant.parent.mkdir(parents=True)
    plant.write_bytes(pickle.dumps([Plant(ran)]))
    work = tmp_path / "work" / "ns" / "job-1234abcd"
    data = f"file://{plant}" if named == "elsewhere" else \
        f"file://{work}/map-00000/../../../../other-team/map-00000/attempt-1.out"
    assert Path(data[len("file://"):]).resolve() == plant
    commit.write_commit(f"file://{work}", "map", 0,
                        {"data": data, "attempt": 1, "index": [[0, plant.stat().st_size, 1]]})
    spec = json.loads(json.dumps(make_job(tmp_path, WORDCOUNT, str(tmp_path / "in"),
                                          reducer="reducer").spec))
    task = {"job": {"name": "job", "namespace": "ns", "spec": spec}, "work": f"file://{work}",
            "type": "reduce", "index": 0, "attempt": 1, "maps": 1}
    with pytest.raises(UntrustedCommit, match="the COMMIT of map task 0 names"):
        run_task(task)
    assert not ran.exists()
    assert not commit.read_commit(f"file://{work}", "reduce", 0)


def test_within_is_the_prefix_or_its_node_copies_and_no_dot_segments():
    servers = [{"node": "n1", "bucket": "node-n1", "endpoint": "http://n1:9000"}]
    work = "s3://kubemr-work/ns/job-1234abcd"
    assert within(f"{work}/map-00000/attempt-1.out", work, servers)
    assert within("s3://node-n1/ns/job-1234abcd/map-00000/attempt-1.out", work, servers)
    assert not within("s3://node-n2/ns/job-1234abcd/map-00000/attempt-1.out", work, servers)
    assert not within("s3://kubemr-work/ns/job-1234abcd2/x", work, servers)
    assert not within(f"{work}/../job-5678abcd/x", work, servers)
    assert not within(f"{work}/./x", work, servers)
    assert not within(work, work, servers)
