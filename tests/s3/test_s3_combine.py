"""Splits packed from many small objects in MinIO: read ahead in threads, exactly."""

import uuid

import pytest

from kubemr.engine.formats import InputReader
from kubemr.engine.plan import plan_splits
from kubemr.errors import StorageError
from kubemr.storage import store_for

pytestmark = pytest.mark.s3


@pytest.fixture
def bucket(minio):
    return f"s3://test-{uuid.uuid4().hex[:12]}"


def test_a_packed_split_of_small_objects_reads_each_exactly_once(bucket):
    store = store_for(bucket + "/")
    want_text, want_files = [], []
    for i in range(120):
        content = "".join(f"object {i} line {j}\n" for j in range(i % 5)) + f"last {i}"
        store.write_bytes(f"{bucket}/in/doc-{i:03d}.txt", content.encode())
        offset = 0
        for line in content.split("\n"):
            want_text.append((offset, line))
            offset += len(line) + 1
        want_files.append((f"doc-{i:03d}.txt", content))
    store.write_bytes(f"{bucket}/in/empty.txt", b"")
    want_files.append(("empty.txt", ""))
    [split] = plan_splits([f"{bucket}/in/"], "text", 1 << 20)
    assert len(split.parts) == 121
    reader = InputReader(split, "text")
    assert list(reader) == want_text
    assert reader.bytes_read == sum(p.size for p in split.parts)
    [split] = plan_splits([f"{bucket}/in/"], "whole-file", 1 << 20)
    assert list(InputReader(split, "whole-file")) == want_files


def test_an_object_gone_since_planning_is_a_storage_error(bucket):
    store = store_for(bucket + "/")
    for i in range(40):
        store.write_bytes(f"{bucket}/in/{i:02d}.txt", b"x\n")
    [split] = plan_splits([f"{bucket}/in/"], "text", 1 << 20)
    store.delete(f"{bucket}/in/30.txt")
    reader = iter(InputReader(split, "text"))
    assert [next(reader) for _ in range(30)] == [(0, "x")] * 30
    with pytest.raises(StorageError, match="no such object"):
        next(reader)
