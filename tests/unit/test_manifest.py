"""Bad input gets one line naming the problem, and the CLI exits non-zero without a traceback."""

import subprocess
import sys
import textwrap

import pytest

from kubemr.engine.usercode import load_functions
from kubemr.errors import ManifestError, UserCodeError
from kubemr.spec.manifest import parse_manifest

GOOD = {
    "apiVersion": "kubemr.io/v1alpha1",
    "kind": "MapReduceJob",
    "metadata": {"name": "wc"},
    "spec": {
        "input": {"uri": "s3://data/in/"},
        "output": {"uri": "s3://data/out/"},
        "mapper": "mapper",
        "code": {"inline": "def mapper(k, v):\n    yield v, 1\n"},
    },
}


def with_spec(**changes):
    doc = {**GOOD, "spec": {**GOOD["spec"], **changes}}
    return {k: v for k, v in doc.items()}


def test_defaults_are_filled_from_the_crd_schema():
    job = parse_manifest(GOOD)
    assert job.spec["reducers"] == 1
    assert job.spec["maxAttempts"] == 4
    assert job.spec["input"] == {"uris": ["s3://data/in/"], "format": "text",
                                 "splitSize": 64 << 20}
    assert job.spec["output"]["format"] == "text"
    assert job.spec["sortValues"] is False and "valueKey" not in job.spec


@pytest.mark.parametrize("doc, message", [
    (with_spec(mapperr="x"), "spec: unknown field 'mapperr' (did you mean 'mapper'?)"),
    (with_spec(reducers=0), "spec.reducers: 0 is below the minimum 1"),
    (with_spec(reducers="2"), "spec.reducers: expected integer, got str"),
    (with_spec(input={"uri": "x", "format": "csv"}), "spec.input.format: 'csv' is not one of"),
    (with_spec(input={"uri": "x", "fromat": "text"}), "did you mean 'format'"),
    (with_spec(input={"uri": "a", "uris": ["b"]}), "give exactly one of uri and uris"),
    (with_spec(output={}), "spec.output.uri: required field is missing"),
    (with_spec(sortValues="yes"), "spec.sortValues: expected boolean, got str"),
    (with_spec(sortvalues=True), "did you mean 'sortValues'"),
    ({**GOOD, "kind": "Job"}, "kind must be MapReduceJob"),
    ({**GOOD, "metadata": {}}, "metadata.name is required"),
])
def test_bad_manifests_name_the_field(doc, message):
    with pytest.raises(ManifestError) as e:
        parse_manifest(doc)
    assert message in str(e.value)


def test_missing_mapper_is_named():
    spec = dict(GOOD["spec"])
    del spec["mapper"]
    with pytest.raises(ManifestError, match="spec.mapper: required field is missing"):
        parse_manifest({**GOOD, "spec": spec})


@pytest.mark.parametrize("spec, message", [
    ({"mapper": "nosuch.module:fn"}, "spec.mapper: cannot import 'nosuch.module'"),
    ({"mapper": "json:nosuch"}, "spec.mapper: module 'json' has no 'nosuch'"),
    ({"mapper": "missing", "code": {"inline": "x = 1"}}, "code.inline has no 'missing'"),
    ({"mapper": "m", "code": {"inline": "def m(k, v)\n  pass"}},
     "spec.code.inline: syntax error at line 1"),
    ({"mapper": "m", "code": {"inline": "import nosuchlib\ndef m(k, v): pass"}},
     "running the code raised ModuleNotFoundError"),
    ({"mapper": "m", "code": {"inline": "def m(line): pass"}},
     "spec.mapper: m must accept (key, value)"),
    ({"mapper": "operator:add", "reducer": "operator:concat"}, None),
])
def test_user_code_problems_are_named(spec, message):
    if message is None:
        load_functions(spec)
        return
    with pytest.raises(UserCodeError) as e:
        load_functions(spec)
    assert message in str(e.value)


def run_cli(tmp_path, manifest: str):
    path = tmp_path / "job.yaml"
    path.write_text(textwrap.dedent(manifest))
    return subprocess.run([sys.executable, "-m", "kubemr", "run", str(path), "--local", "-q"],
                          capture_output=True, text=True, cwd=tmp_path)


@pytest.mark.parametrize("body, message", [
    ("spec:\n  input: {uri: in/}\n  output: {uri: out/}\n  mapper: m\n  reducerz: 2\n",
     "spec: unknown field 'reducerz' (did you mean 'reducer'"),
    ("spec:\n  input: {uri: nothing-here/}\n  output: {uri: out/}\n  mapper: operator:add\n",
     "input nothing-here/ matches no files"),
    ("spec:\n  input: {uri: in/}\n  output: {uri: out/}\n  mapper: m\n"
     "  code: {inline: 'def m(k, v) pass'}\n", "syntax error at line 1"),
    ("spec: [unclosed\n", "not valid YAML"),
])
def test_cli_prints_one_line_and_exits_2(tmp_path, body, message):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("x\n")
    header = "apiVersion: kubemr.io/v1alpha1\nkind: MapReduceJob\nmetadata: {name: j}\n"
    result = run_cli(tmp_path, header + body)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_job_failure_exits_1_with_the_users_error(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("x\n")
    result = run_cli(tmp_path, """\
        apiVersion: kubemr.io/v1alpha1
        kind: MapReduceJob
        metadata: {name: j}
        spec:
          input: {uri: in/}
          output: {uri: out/}
          mapper: m
          maxAttempts: 2
          code:
            inline: |
              def m(k, v):
                  return {}["missing key"]
        """)
    assert result.returncode == 1
    assert "failed on all 2 attempts" in result.stderr
    assert "KeyError: 'missing key'" in result.stderr
    assert not (tmp_path / "out").exists()
