import gzip
import json
import random

import pytest

from kubemr.engine import formats
from kubemr.engine.formats import InputReader, jsonl_line
from kubemr.engine.plan import Split, plan_splits

try:
    from kubemr.engine._lines import split_lines as compiled_split_lines
except ImportError:
    compiled_split_lines = None
NOT_COMPILED = ("kubemr.engine._lines was not compiled (a C compiler and Python's headers are "
                "needed)")

CONTENT = b"alpha\n\nbeta gamma\r\ndelta\n\n\nepsilon zeta\nlast line without newline"


def read_all(path, size, fmt="text", split_size=None):
    records = []
    for split in plan_splits([str(path)], fmt, split_size or max(size, 1)):
        records.extend(InputReader(split, fmt))
    return records


def expected_lines(content: bytes, decode=bytes.decode):
    lines, pos = [], 0
    for raw in content.split(b"\n"):
        if pos < len(content):
            lines.append((pos, decode(raw[:-1] if raw.endswith(b"\r") else raw)))
        pos += len(raw) + 1
    return lines


def test_every_split_size_reads_every_line_exactly_once(tmp_path):
    path = tmp_path / "input.txt"
    path.write_bytes(CONTENT)
    want = expected_lines(CONTENT)
    assert want[-1] == (CONTENT.rindex(b"\n") + 1, "last line without newline")
    for split_size in range(1, len(CONTENT) + 2):
        assert read_all(path, len(CONTENT), split_size=split_size) == want, split_size


def test_every_split_boundary_with_trailing_newline(tmp_path):
    content = b"a\nbb\nccc\n\ndddd\n"
    path = tmp_path / "input.txt"
    path.write_bytes(content)
    want = [(0, "a"), (2, "bb"), (5, "ccc"), (9, ""), (10, "dddd")]
    for split_size in range(1, len(content) + 1):
        assert read_all(path, len(content), split_size=split_size) == want, split_size


@pytest.fixture(params=[
    pytest.param(compiled_split_lines, id="compiled",
                 marks=pytest.mark.skipif(compiled_split_lines is None, reason=NOT_COMPILED)),
    pytest.param(formats.py_split_lines, id="python"),
])
def splitter(request, monkeypatch):
    monkeypatch.setattr(formats, "split_lines", request.param)


def test_the_line_splitter_is_compiled_in_this_install():
    """CI installs with a C compiler: the readers must not fall back to Python unnoticed."""
    assert compiled_split_lines is not None, NOT_COMPILED


@pytest.mark.skipif(compiled_split_lines is None, reason=NOT_COMPILED)
def test_the_compiled_and_python_line_splitters_agree_on_any_bytes():
    rng = random.Random(5)
    pieces = [b"a", b"Z", b" ", b"\n", b"\r", b"\r\n", b"\n\n", b"\x00", b"\xc3\xa9",
              b"\xf0\x9f\x98\x82", b"\xe2\x82", b"\xc3", b"\xff", b"\xed\xa0\x80", b"x" * 9]
    for _ in range(5_000):
        data = b"".join(rng.choices(pieces, k=rng.randint(0, 40)))
        offset = rng.randint(0, 1 << 40)
        for decode in (True, False):
            got = compiled_split_lines(data, offset, decode)
            assert got == formats.py_split_lines(data, offset, decode), (data, decode)
            assert all(type(line) is (str if decode else bytes) for line in got[0])
    with pytest.raises(TypeError):
        compiled_split_lines("text", 0, True)


def test_blocks_of_ascii_and_of_other_text_give_the_same_lines_and_offsets(tmp_path,
                                                                         monkeypatch, splitter):
    """ASCII lines are copied as they are, others decoded (invalid bytes replaced); the offsets
    count bytes either way."""
    monkeypatch.setattr(formats, "BLOCK", 16)
    content = b"".join([b"plain ascii line\r\n", b"caf\xc3\xa9 au lait\n", b"short\n" * 5,
                        b"bad \xff byte\r\n", b"\n", b"a much longer ascii line than a block\n",
                        b"\xe2\x82\xac\r\n", b"no newline at the end\r"])
    path = tmp_path / "input.txt"
    path.write_bytes(content)
    want = expected_lines(content, lambda raw: raw.decode("utf-8", errors="replace"))
    assert want[1][1] == "café au lait" and want[7][1] == "bad \ufffd byte"
    for split_size in (1, 7, 40, len(content)):
        assert read_all(path, len(content), split_size=split_size) == want, split_size


@pytest.mark.parametrize("block", [16, 64, 1 << 18])
def test_lines_with_characters_of_every_width_keep_their_byte_offsets(tmp_path, monkeypatch,
                                                                     block, splitter):
    """Valid UTF-8 is decoded then split, and each line's offset counts the bytes of its
    non-ASCII characters: around block and split boundaries, with CRs, a real U+FFFD and an
    invalid byte here and there."""
    monkeypatch.setattr(formats, "BLOCK", block)
    rng = random.Random(block)
    pieces = ["word", " ", "é", "€", "😀", "中文", "\ufffd", "\r", "x" * 20]
    lines = ["".join(rng.choices(pieces, k=rng.randint(0, 8))).encode() for _ in range(300)]
    lines[::37] = [line + b"\xff" for line in lines[::37]]  # invalid: replaced on reading
    content = b"\n".join(lines)
    path = tmp_path / "input.txt"
    path.write_bytes(content)
    want = expected_lines(content, lambda raw: raw.decode("utf-8", errors="replace"))
    for split_size in (5, 97, 1000, len(content)):
        assert read_all(path, len(content), split_size=split_size) == want, split_size


def test_empty_file_gives_no_records(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    assert read_all(path, 0) == []


def test_jsonl_skips_blank_lines_and_reports_bad_json(tmp_path):
    path = tmp_path / "input.jsonl"
    path.write_text('{"a": 1}\n\n[1, "x"]\n"text"\n')
    values = [v for _, v in read_all(path, path.stat().st_size, "jsonl", split_size=5)]
    assert values == [{"a": 1}, [1, "x"], "text"]
    path.write_text('{"a": 1}\nnot json\n')
    with pytest.raises(Exception, match=r"input\.jsonl at byte 9: not a JSON value"):
        read_all(path, path.stat().st_size, "jsonl")


def test_gzip_is_read_whole_not_split(tmp_path):
    path = tmp_path / "input.txt.gz"
    path.write_bytes(gzip.compress(CONTENT))
    splits = plan_splits([str(path)], "text", 4)
    assert len(splits) == 1
    assert list(InputReader(splits[0], "text")) == expected_lines(CONTENT)


def test_whole_file_key_is_the_name_under_the_input_prefix(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("héllo\nworld")
    (tmp_path / "docs" / "_SUCCESS").write_text("")
    (tmp_path / "docs" / ".hidden").write_text("")
    splits = plan_splits([str(tmp_path / "docs") + "/"], "whole-file", 1)
    assert [list(InputReader(s, "whole-file")) for s in splits] == [[("a.txt", "héllo\nworld")]]


def test_glob_and_missing_input(tmp_path):
    for name in ("a.txt", "b.txt", "c.log"):
        (tmp_path / name).write_text("x\n")
    [split] = plan_splits([str(tmp_path / "*.txt")], "text", 100)
    assert [p.uri.rsplit("/", 1)[1] for p in split.parts] == ["a.txt", "b.txt"]
    with pytest.raises(Exception, match="matches no files"):
        plan_splits([str(tmp_path / "*.csv")], "text", 100)


def test_split_plan_covers_file_in_split_size_pieces(tmp_path):
    path = tmp_path / "input.txt"
    path.write_bytes(b"x" * 250)
    splits = plan_splits([str(path)], "text", 100)
    assert [[(p.start, p.end) for p in s.parts] for s in splits] == [[(0, 100)], [(100, 200)],
                                                                     [(200, 250)]]
    assert all(isinstance(s, Split) for s in splits)
    path.write_bytes(b"x" * 205)
    splits = plan_splits([str(path)], "text", 100)
    assert [[(p.start, p.end) for p in s.parts] for s in splits] == [[(0, 100)], [(100, 205)]]


def test_jsonl_output_round_trips_awkward_strings():
    key, value = "tab\there\nnewline ü 日本", {"v": ["\t", "\n", "é"]}
    assert json.loads(jsonl_line(key, value)) == [key, value]
    assert jsonl_line(key, value).count("\n") == 1
