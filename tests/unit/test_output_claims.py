"""Who may write an output prefix, and what an overwrite deletes: only kubemr's own earlier
output, never an object kubemr did not write, and one job at a time (the output's lock)."""

import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from kubemr.engine import commit
from kubemr.errors import JobFailed, OutputInUse, StorageError
from kubemr.runtime.local import run_local
from tests.conftest import make_job, read_output

WORDCOUNT = """
import time
def mapper(offset, line):
    for word in line.split():
        yield word, 1

def slow_mapper(offset, line):
    time.sleep(1.5)
    yield from mapper(offset, line)

def reducer(word, counts):
    yield word, sum(counts)
"""


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text("alpha beta\nbeta\n")
    return folder


def wordcount(tmp_path, data, **spec):
    return make_job(tmp_path, WORDCOUNT, str(data) + "/", reducer="reducer", **spec)


def tree(folder) -> dict[str, bytes]:
    """Every file under `folder` with its bytes."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = f.read()
    return found


def counts(out) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split("\t") for line in read_output(out))}


def spec_for(out, overwrite=False) -> dict:
    return {"output": {"uri": str(out) + "/", "overwrite": overwrite}, "reducers": 1}


# -- overwrite: kubemr's earlier output only ---------------------------------------------------

def test_overwrite_replaces_an_earlier_kubemr_output(tmp_path, data):
    run_local(wordcount(tmp_path, data, reducers=3))
    assert sorted(os.listdir(tmp_path / "out")) == ["_SUCCESS", "part-00000", "part-00001",
                                                    "part-00002"]
    run_local(wordcount(tmp_path, data, reducers=1, name="again"), overwrite=True)
    assert sorted(os.listdir(tmp_path / "out")) == ["_SUCCESS", "part-00000"]
    assert counts(tmp_path / "out") == {"alpha": 1, "beta": 2}
    summary = json.loads((tmp_path / "out" / "_SUCCESS").read_text())
    assert summary["job"] == "again" and summary["parts"] == 1


def test_overwrite_next_to_a_foreign_object_fails_at_planning_naming_it(tmp_path, data):
    """Found in issue 11: `out/keep/x`, which no job wrote, was deleted by an overwrite."""
    run_local(wordcount(tmp_path, data, reducers=2))
    (tmp_path / "out" / "keep").mkdir()
    (tmp_path / "out" / "keep" / "x").write_text("mine\n")
    before = tree(tmp_path / "out")
    with pytest.raises(StorageError, match="holds 'keep/x'.*kubemr did not write"):
        run_local(wordcount(tmp_path, data), overwrite=True)
    assert tree(tmp_path / "out") == before


@pytest.mark.parametrize("plant, named", [
    ({"_SUCCESS": b""}, "_SUCCESS"),  # Hadoop's empty marker is not kubemr's summary
    ({"_SUCCESS": json.dumps({"job": "j", "committedAt": "t", "parts": 1}).encode(),
      "part-00000": b"a\t1\n", "part-00001": b"b\t1\n"}, "part-00001"),  # not the summary's
    ({"notes.txt": b"mine\n"}, "notes.txt"),
    ({".hidden": b"mine\n"}, ".hidden"),
    ({"part-0": b"mine\n"}, "part-0"),
])
def test_what_kubemr_did_not_write_is_never_replaced(tmp_path, data, plant, named):
    out = tmp_path / "out"
    out.mkdir()
    for name, body in plant.items():
        (out / name).write_bytes(body)
    with pytest.raises(StorageError, match=f"holds '{named}'"):
        run_local(wordcount(tmp_path, data), overwrite=True)
    assert tree(out) == plant


def test_parts_of_a_commit_that_did_not_finish_are_replaced_only_when_overwriting(tmp_path,
                                                                                   data):
    out = tmp_path / "out"
    out.mkdir()
    for r in range(3):  # an earlier commit stopped before its _SUCCESS
        (out / f"part-{r:05d}").write_text("stale\t1\n")
    with pytest.raises(StorageError, match="holds 'part-00000' but no _SUCCESS"):
        run_local(wordcount(tmp_path, data))
    assert len(os.listdir(out)) == 3
    run_local(wordcount(tmp_path, data), overwrite=True)
    assert sorted(os.listdir(out)) == ["_SUCCESS", "part-00000"]
    assert counts(out) == {"alpha": 1, "beta": 2}


def test_the_commit_leaves_objects_that_appear_after_planning(tmp_path, data):
    """Before, the commit deleted every object under the prefix that was not one of its parts,
    even without overwrite, so a file put there while the job ran was lost."""
    out = tmp_path / "out"
    code = WORDCOUNT + f"""
import os
def planting_mapper(offset, line):
    os.makedirs({str(out)!r}, exist_ok=True)
    with open(os.path.join({str(out)!r}, "late.txt"), "w") as f:
        f.write("written while the job ran\\n")
    yield from mapper(offset, line)
"""
    run_local(make_job(tmp_path, code, str(data) + "/", mapper="planting_mapper",
                       reducer="reducer"))
    assert sorted(os.listdir(out)) == ["_SUCCESS", "late.txt", "part-00000"]
    assert (out / "late.txt").read_text() == "written while the job ran\n"


def test_a_part_written_after_planning_by_someone_else_stops_the_commit(tmp_path, data):
    out = tmp_path / "out"
    code = WORDCOUNT + f"""
import os
def planting_mapper(offset, line):
    os.makedirs({str(out)!r}, exist_ok=True)
    with open(os.path.join({str(out)!r}, "part-00000"), "w") as f:
        f.write("not kubemr's\\n")
    yield from mapper(offset, line)
"""
    with pytest.raises(OutputInUse, match="holds 'part-00000', written there after the job"):
        run_local(make_job(tmp_path, code, str(data) + "/", mapper="planting_mapper",
                           reducer="reducer"))
    assert tree(out) == {"part-00000": b"not kubemr's\n"}


@pytest.mark.parametrize("output", [".", "~", "~/"])
def test_an_output_of_the_users_own_folder_deletes_nothing(tmp_path, data, monkeypatch,
                                                            output):
    home = tmp_path / "home"  # stands in for the user's folder: cwd and ~
    (home / "photos").mkdir(parents=True)
    (home / "photos" / "cat.jpg").write_bytes(b"\xff\xd8 cat")
    (home / ".bashrc").write_text("export PS1='$ '\n")
    (home / "part-00000").write_text("a file of the user's that happens to look like a part\n")
    monkeypatch.chdir(home)
    monkeypatch.setenv("HOME", str(home))
    before = tree(home)
    job = make_job(tmp_path, WORDCOUNT, str(data) + "/", reducer="reducer",
                   output={"uri": output})
    for overwrite in (False, True):
        with pytest.raises(StorageError, match="kubemr did not write"):
            run_local(job, overwrite=overwrite)
        assert tree(home) == before


def test_the_cli_refuses_the_current_folder_as_output_naming_what_is_there(tmp_path, data):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "thesis.tex").write_text("\\documentclass{article}\n")
    (folder / "job.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: kubemr.io/v1alpha1
        kind: MapReduceJob
        metadata: {{name: here}}
        spec:
          input: {{uri: {data}/}}
          output: {{uri: ., overwrite: true}}
          mapper: m
          code: {{inline: "def m(k, v):\\n    yield v, 1\\n"}}
        """))
    before = tree(folder)
    result = subprocess.run([sys.executable, "-m", "kubemr", "run", "job.yaml", "--local", "-q"],
                            capture_output=True, text=True, cwd=folder)
    assert result.returncode == 2, result.stderr
    assert "'job.yaml' (and 1 more objects), which kubemr did not write" in result.stderr
    assert "Traceback" not in result.stderr
    assert tree(folder) == before


# -- one job at a time: the lock -----------------------------------------------------------------

def test_two_local_jobs_racing_for_one_output_one_succeeds_the_other_names_it(tmp_path, data):
    outcomes: dict[str, object] = {}
    start = threading.Barrier(2)

    def run(name):
        job = make_job(tmp_path, WORDCOUNT, str(data) + "/", name=name, mapper="slow_mapper",
                       reducer="reducer")
        start.wait()
        try:
            outcomes[name] = run_local(job, workers=2)
        except Exception as e:
            outcomes[name] = e

    threads = [threading.Thread(target=run, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    refused = [(n, o) for n, o in outcomes.items() if isinstance(o, Exception)]
    assert len(refused) == 1, outcomes
    loser, error = refused[0]
    winner = "second" if loser == "first" else "first"
    assert isinstance(error, OutputInUse), repr(error)
    assert f"is in use by a local run of job {winner} (run " in str(error)
    assert "_KUBEMR_LOCK" in str(error)
    assert counts(tmp_path / "out") == {"alpha": 1, "beta": 2}
    assert json.loads((tmp_path / "out" / "_SUCCESS").read_text())["job"] == winner
    assert sorted(os.listdir(tmp_path / "out")) == ["_SUCCESS", "part-00000"]


def test_of_many_claims_at_once_exactly_one_wins(tmp_path):
    spec = spec_for(tmp_path / "out")
    start = threading.Barrier(8)
    results = []

    def claim(i):
        start.wait()
        try:
            results.append(commit.claim_output(spec, commit.holder(f"job-{i}", uid=f"uid-{i}")))
        except OutputInUse as e:
            results.append(e)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8, "a claim raised something other than OutputInUse"
    won = [r for r in results if isinstance(r, dict)]
    assert len(won) == 1
    lock = json.loads((tmp_path / "out" / commit.LOCK).read_text())
    assert lock["uid"] == won[0]["uid"]
    for refused in (r for r in results if not isinstance(r, dict)):
        assert f"in use by job {won[0]['job']} (uid {won[0]['uid']}" in str(refused)


def test_a_claim_is_the_same_jobs_again_and_no_one_elses(tmp_path):
    spec = spec_for(tmp_path / "out")
    first = commit.claim_output(spec, commit.holder("a", "team", "uid-a"))
    again = commit.claim_output(spec, commit.holder("a", "team", "uid-a"))  # planned again
    assert again["uid"] == first["uid"] == "uid-a"
    with pytest.raises(OutputInUse, match="in use by job team/a \\(uid uid-a"):
        commit.claim_output(spec, commit.holder("b", "team", "uid-b"))
    with pytest.raises(OutputInUse, match="in use by job team/a"):
        commit.check_output(spec)
    assert commit.check_output(spec, uid="uid-a") == []
    assert not commit.release_output(spec, lambda claim: claim["uid"] == "uid-b")
    assert commit.release_output(spec, lambda claim: claim["uid"] == "uid-a")
    assert commit.claim_output(spec, commit.holder("b", "team", "uid-b"))["uid"] == "uid-b"


def test_a_lock_whose_job_has_ended_is_taken_over_only_when_stale_says_so(tmp_path):
    spec = spec_for(tmp_path / "out")
    commit.claim_output(spec, commit.holder("gone", "team", "uid-gone"))
    with pytest.raises(OutputInUse):
        commit.claim_output(spec, commit.holder("b", "team", "uid-b"),
                            stale=lambda claim: False)
    claim = commit.claim_output(spec, commit.holder("b", "team", "uid-b"),
                                stale=lambda claim: claim["job"] == "gone")
    assert claim["uid"] == "uid-b"


def test_the_lock_is_released_after_success_and_after_failure(tmp_path, data):
    run_local(wordcount(tmp_path, data))
    assert not (tmp_path / "out" / commit.LOCK).exists()
    broken = make_job(tmp_path, "def mapper(k, v):\n    raise ValueError(v)\n", str(data) + "/",
                      maxAttempts=1, output={"uri": str(tmp_path / "out2") + "/"})
    with pytest.raises(JobFailed):
        run_local(broken)
    assert not (tmp_path / "out2").exists(), "a failed job leaves the output as it was"
    run_local(wordcount(tmp_path, data), overwrite=True)  # nothing holds the output
    assert not (tmp_path / "out" / commit.LOCK).exists()


def test_a_lock_left_by_a_killed_local_run_names_it_and_how_to_remove_it(tmp_path, data):
    out = tmp_path / "out"
    code = textwrap.dedent(f"""
        import sys
        from kubemr.engine import commit
        commit.claim_output({spec_for(out)!r}, commit.holder("killed", "", "run-1", "local"))
        sys.exit(0)  # as if killed: the lock is never released
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
    lock = out / commit.LOCK
    with pytest.raises(OutputInUse) as refused:
        run_local(wordcount(tmp_path, data))
    message = str(refused.value)
    assert "in use by a local run of job killed (run run-1 on host" in message
    assert f"delete file://{lock}" in message
    assert lock.exists()
    lock.unlink()  # as the message says
    run_local(wordcount(tmp_path, data))
    assert counts(out) == {"alpha": 1, "beta": 2}


def test_the_lock_is_skipped_as_input(tmp_path, data):
    (data / commit.LOCK).write_text(json.dumps(commit.holder("writing-here", uid="u")))
    run_local(wordcount(tmp_path, data))
    assert counts(tmp_path / "out") == {"alpha": 1, "beta": 2}
