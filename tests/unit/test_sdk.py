"""The SDK with the local runner: cloudpickled functions of every kind, pipelines, versions."""

import os
import pickle
import subprocess
import sys
import textwrap
from collections import Counter

import pytest

import kubemr
from kubemr.client.sdk import Pipeline, Step, bundle_functions
from kubemr.errors import JobFailed


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("a b c a\nb a d\n\nc a\n")
    return path


def test_a_lambda_closing_over_a_local_variable(tmp_path, text):
    weight = 10
    job = kubemr.submit(lambda _, line: [(w, weight) for w in line.split()],
                        lambda w, vs: [(w, sum(vs))], input=str(text),
                        output=str(tmp_path / "out"), reducers=2, local=True)
    assert dict(job.results()) == {"a": 40, "b": 20, "c": 20, "d": 10}
    assert job.counters()["kubemr"]["map_input_records"] == 4


def test_functions_from_main_and_from_a_local_module(tmp_path, text):
    (tmp_path / "helpers_for_kubemr_test.py").write_text("def shout(w):\n    return w.upper()\n")
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""
        import kubemr
        from helpers_for_kubemr_test import shout

        def mapper(_, line):
            for w in line.split():
                yield shout(w), 1

        def reducer(w, ones):
            yield w, sum(ones)

        if __name__ == "__main__":
            job = kubemr.submit(mapper, reducer, input={str(text)!r},
                                output={str(tmp_path / "out")!r}, local=True)
            print(sorted(job.results()))
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                            text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[('A', 4), ('B', 2), ('C', 2), ('D', 1)]"


def test_sorted_values_with_a_value_key_lambda(tmp_path, text):
    job = kubemr.submit(lambda offset, line: [(w, offset) for w in line.split()],
                        lambda w, offsets: [(w, list(offsets))], input=str(text),
                        output=str(tmp_path / "out"), value_key=lambda offset: -offset,
                        sortValues=True, reducers=2, local=True)
    assert dict(job.results()) == {"a": [15, 8, 0, 0], "b": [8, 0], "c": [15, 0], "d": [8]}


def test_a_two_step_pipeline(tmp_path, text):
    class MostCommonCount(Pipeline):
        def steps(self):
            return [
                Step(mapper=lambda _, line: [(w, 1) for w in line.split()],
                     reducer=lambda w, ones: [(w, sum(ones))], reducers=2),
                Step(mapper=lambda w, n: [(n, w)],
                     reducer=lambda n, words: [(n, sorted(words))]),
            ]

    job = MostCommonCount().run(str(text), str(tmp_path / "out"), local=True)
    assert list(job.results()) == [(1, ["d"]), (2, ["b", "c"]), (4, ["a"])]


def test_a_bundle_from_another_python_is_refused_with_a_clear_message(tmp_path, text):
    bundle = pickle.loads(bundle_functions({"mapper": lambda k, v: [(v, 1)]}))
    bundle["python"] = "3.7.1"
    code = tmp_path / "code.pkl"
    code.write_bytes(pickle.dumps(bundle))
    job = kubemr.parse_manifest({
        "apiVersion": "kubemr.io/v1alpha1", "kind": "MapReduceJob", "metadata": {"name": "old"},
        "spec": {"input": {"uri": str(text)}, "output": {"uri": str(tmp_path / "out")},
                 "mapper": "mapper", "code": {"pickle": "file://" + str(code)}}})
    with pytest.raises(kubemr.UserCodeError, match=r"made with Python 3\.7 and cloudpickle"):
        kubemr.run_local(job)


def test_user_errors_in_submitted_functions_fail_the_job(tmp_path, text):
    def broken(_, line):
        raise KeyError("no such column")

    with pytest.raises(JobFailed, match="KeyError: 'no such column'"):
        kubemr.submit(broken, input=str(text), output=str(tmp_path / "out"), local=True,
                      maxAttempts=1)
    assert Counter(os.listdir(tmp_path)) == Counter(["in.txt"])


def test_cli_submits_a_job_class_by_import_path(tmp_path, text):
    (tmp_path / "myjobs.py").write_text(textwrap.dedent("""
        class WordCount:
            def setup(self):
                self.seen = 0

            def mapper(self, _, line):
                for word in line.split():
                    yield word, 1

            def reducer(self, word, ones):
                yield word, sum(ones)
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]))
    result = subprocess.run(
        [sys.executable, "-m", "kubemr", "submit", "myjobs:WordCount", "--local", "--input",
         str(text), "--output-uri", str(tmp_path / "out"), "--reducers", "2"],
        capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert dict(kubemr.read_output(str(tmp_path / "out"), "jsonl")) == {
        "a": 4, "b": 2, "c": 2, "d": 1}
