"""The S3 backend and whole jobs against a real MinIO server (hack/minio.sh)."""

import os
import subprocess
import sys
import uuid
from collections import Counter

import pytest

from kubemr.errors import StorageError
from kubemr.runtime.local import run_local
from kubemr.storage import store_for
from tests.conftest import make_job

pytestmark = pytest.mark.s3


@pytest.fixture
def bucket(minio):
    return f"s3://test-{uuid.uuid4().hex[:12]}"


def test_write_read_range_list_copy_delete(bucket):
    store = store_for(bucket + "/")
    store.write_bytes(f"{bucket}/dir/a", b"0123456789")
    store.write_bytes(f"{bucket}/dir/b", b"hello")
    store.write_bytes(f"{bucket}/other", b"x")
    assert store.read_bytes(f"{bucket}/dir/a") == b"0123456789"
    with store.open_range(f"{bucket}/dir/a", 3, 7) as stream:
        assert stream.read() == b"3456"
    with store.open_range(f"{bucket}/dir/a", 8) as stream:
        assert stream.read() == b"89"
    assert [(o.uri, o.size) for o in store.list(f"{bucket}/dir/")] == [
        (f"{bucket}/dir/a", 10), (f"{bucket}/dir/b", 5)]
    store.copy(f"{bucket}/dir/b", f"{bucket}/copied")
    assert store.read_bytes(f"{bucket}/copied") == b"hello"
    assert store.exists(f"{bucket}/copied")
    store.delete_prefix(f"{bucket}/dir/")
    assert store.list(f"{bucket}/dir/") == []
    assert not store.exists(f"{bucket}/dir/a")
    with pytest.raises(StorageError, match="no such object"):
        store.read_bytes(f"{bucket}/dir/a")


def test_large_upload_goes_multipart_and_reads_back(bucket, tmp_path):
    path = tmp_path / "big"
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(40):
            f.write(block)
    store = store_for(bucket + "/")
    store.upload_file(f"{bucket}/big", str(path))
    assert store.list(f"{bucket}/big")[0].size == 40 << 20
    with store.open_range(f"{bucket}/big", (39 << 20) + 5, (39 << 20) + 10) as stream:
        assert stream.read() == block[5:10]


def test_wrong_credentials_are_named_without_the_secret(minio, monkeypatch):
    code = (
        "import os\n"
        "from kubemr.storage import store_for\n"
        "store_for('s3://anything/').list('s3://anything/')\n"
    )
    env = dict(os.environ, KUBEMR_S3_SECRET_KEY="not-the-secret-xyz")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True)
    assert result.returncode != 0
    assert "check the credentials" in result.stderr
    assert "not-the-secret-xyz" not in result.stderr


def test_wordcount_from_s3_to_s3_matches_a_sequential_run(bucket, tmp_path):
    store = store_for(bucket + "/")
    text = "".join(f"line {i} of the {'big ' * (i % 5)}input\n" for i in range(5000))
    store.write_bytes(f"{bucket}/in/part-a.txt", text.encode())
    store.write_bytes(f"{bucket}/in/part-b.txt", text[:777].encode())
    code = ("def mapper(k, line):\n    for w in line.split():\n        yield w, 1\n"
            "def reducer(w, ones):\n    yield w, sum(ones)\n")
    job = make_job(tmp_path, code, f"{bucket}/in/", reducer="reducer", combiner="reducer",
                   reducers=3, input={"splitSize": 20_000},
                   output={"uri": f"{bucket}/out/", "format": "jsonl"},
                   intermediate={"uri": f"{bucket}/tmp/"})
    result = run_local(job)
    assert result.maps > 5
    parts = sorted(o.uri for o in store.list(f"{bucket}/out/"))
    assert parts == [f"{bucket}/out/{n}" for n in
                     ("_SUCCESS", "part-00000", "part-00001", "part-00002")]
    import json

    got = Counter()
    for uri in parts[1:]:
        for line in store.read_bytes(uri).decode().splitlines():
            word, n = json.loads(line)
            got[word] += n
    assert got == Counter((text + text[:777]).split())
    assert store.list(f"{bucket}/tmp/") == []


def test_attempt_logs_go_to_the_store_and_back(bucket, tmp_path):
    from kubemr.errors import JobFailed
    from kubemr.runtime.logs import attempt_log_uri, stored_attempts

    (tmp_path / "in.txt").write_text("one line\n")
    code = ("import subprocess\n"
            "def mapper(k, v):\n"
            "    print('mapping', v)\n"
            "    subprocess.run(['sh', '-c', 'echo from a subprocess >&2'])\n"
            "    raise ValueError('no map today')\n")
    job = make_job(tmp_path, code, str(tmp_path / "in.txt"), maxAttempts=2, backoffSeconds=0)
    with pytest.raises(JobFailed, match=f"every attempt's log is in {bucket}/logs/test-"):
        run_local(job, logs=f"{bucket}/logs")
    (prefix,) = {o.uri.rsplit("/", 2)[0] for o in store_for(bucket + "/").list(f"{bucket}/logs/")
                 if o.uri.endswith(".log")}  # beside the run's record, _run.json
    assert sorted(stored_attempts(prefix, "map", 0)) == [1, 2]
    text = store_for(prefix).read_bytes(attempt_log_uri(prefix, "map", 0, 2)).decode()
    assert "mapping one line" in text and "from a subprocess" in text
    assert "ValueError: no map today" in text


def test_a_conditional_write_refuses_a_second_claim(bucket):
    """The output lock rests on MinIO honouring If-None-Match: * (a 412 for the second)."""
    import threading

    store = store_for(bucket + "/")
    assert store.write_bytes_if_absent(f"{bucket}/out/_KUBEMR_LOCK", b"first")
    assert not store.write_bytes_if_absent(f"{bucket}/out/_KUBEMR_LOCK", b"second")
    assert store.read_bytes(f"{bucket}/out/_KUBEMR_LOCK") == b"first"
    store.delete(f"{bucket}/out/_KUBEMR_LOCK")
    assert store.write_bytes_if_absent(f"{bucket}/out/_KUBEMR_LOCK", b"third")

    start, won = threading.Barrier(8), []

    def claim(i):
        start.wait()
        won.append((i, store.write_bytes_if_absent(f"{bucket}/race", str(i).encode())))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [i for i, ok in won if ok]
    assert len(winners) == 1
    assert store.read_bytes(f"{bucket}/race") == str(winners[0]).encode()


def test_a_second_job_on_an_s3_output_is_refused_naming_the_holder(bucket):
    from kubemr.engine import commit
    from kubemr.errors import OutputInUse

    store = store_for(bucket + "/")
    store.write_bytes(f"{bucket}/out/keep/x", b"not kubemr's")
    spec = {"output": {"uri": f"{bucket}/out/", "overwrite": True}, "reducers": 1}
    with pytest.raises(StorageError, match="holds 'keep/x'"):
        commit.claim_output(spec, commit.holder("a", "team", "uid-a"))
    assert [o.uri for o in store.list(f"{bucket}/out/")] == [f"{bucket}/out/keep/x"]
    store.delete(f"{bucket}/out/keep/x")
    commit.claim_output(spec, commit.holder("a", "team", "uid-a"))
    with pytest.raises(OutputInUse, match=f"in use by job team/a \\(uid uid-a.*delete "
                                          f"{bucket}/out/_KUBEMR_LOCK"):
        commit.claim_output(spec, commit.holder("b", "team", "uid-b"))
    assert commit.release_output(spec, lambda claim: claim["uid"] == "uid-a")
    assert store.list(f"{bucket}/out/") == []
