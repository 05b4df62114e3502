"""The local engine on small Argo workflows: each Argo feature it claims to honour.

Workflows here are plain YAML (what any Argo user writes); tasks are real
processes (``python -c`` containers, inline ``python`` scripts, Hera runner
scripts). Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from cnai.argo.semantics.depends import evaluate_depends
from cnai.argo.semantics.when import evaluate_when
from cnai.config import load_settings
from cnai.engine.expr import condition_matches, substitute
from cnai.engine.runs import resubmit_run, retry_run, start_run
from cnai.engine.view import RunView
from cnai.errors import UsageError


def run_yaml(home: Path, text: str, params: dict[str, str] | None = None, **kw: Any) -> dict:
    """Run a Workflow/WorkflowTemplate YAML in-process; returns the run record."""
    settings = load_settings(home, environ={})
    return start_run(settings, yaml.safe_load(text), params or {}, view=RunView(quiet=True), **kw)


def tasks(record: dict) -> dict[str, dict]:
    return {t["id"]: t for t in record["tasks"]}


def py(code: str) -> str:
    """A container template body running ``python -c code`` (JSON-quoted for YAML)."""
    return json.dumps(["python", "-c", code])


# ------------------------------------------------------------------ expressions


def test_when_follows_govaluate_with_bare_words_as_strings() -> None:
    assert evaluate_when("heads == heads", "t")
    assert not evaluate_when("tails == heads", "t")
    assert evaluate_when("true == true && (1 < 2 || false)", "t")
    assert not evaluate_when("'true' == true", "t")  # a string is not a boolean
    assert evaluate_when("!false", "t")
    assert evaluate_when("abc =~ '^a.c$'", "t")
    with pytest.raises(UsageError, match="hint"):
        evaluate_when("a-b == c", "t")  # Argo needs quotes around such values
    with pytest.raises(UsageError, match="boolean"):
        evaluate_when("heads", "t")


def test_depends_results_and_defaults() -> None:
    phases = {"a": ["Succeeded"], "b": ["Failed"], "c": ["Skipped"], "d": ["Failed", "Failed"]}

    def lookup(name: str) -> list[str]:
        return phases[name]

    assert evaluate_depends("a && c", lookup, "t")  # bare name: Succeeded/Skipped/Daemoned
    assert not evaluate_depends("a && b", lookup, "t")
    assert evaluate_depends("a && b.Failed", lookup, "t")
    assert evaluate_depends("!b.Succeeded && d.AllFailed", lookup, "t")
    assert not evaluate_depends("d.AnySucceeded", lookup, "t")


def test_resource_conditions_and_substitution() -> None:
    obj = {"status": {"jobStatus": "FAILED", "jobDeploymentStatus": "Failed"}}
    assert condition_matches("status.jobStatus in (FAILED, STOPPED)", obj, "t")
    assert not condition_matches("status.jobStatus == SUCCEEDED", obj, "t")
    assert condition_matches("status.jobStatus != SUCCEEDED, status.jobDeploymentStatus", obj, "t")
    assert substitute("a {{ x.y }} b", {"x.y": "1"}, "t") == "a 1 b"
    with pytest.raises(UsageError, match=r"cannot resolve \{\{missing\}\}"):
        substitute("{{missing}}", {}, "t")
    with pytest.raises(UsageError, match="expression template"):
        substitute("{{=sprig.upper('a')}}", {}, "t")


# ------------------------------------------------------------------ DAG semantics

DAG = """
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: dag}
spec:
  entrypoint: main
  arguments:
    parameters:
    - {name: word, value: hello}
    - {name: mode, value: a, enum: [a, b]}
  templates:
  - name: main
    dag:
      tasks:
      - name: left
        template: sleep-echo
        arguments: {parameters: [{name: text, value: "{{workflow.parameters.word}}"}]}
      - {name: right, template: sleep-echo, arguments: {parameters: [{name: text, value: right}]}}
      - name: fan
        depends: left && right
        template: sleep-echo
        withItems: [x, y]
        arguments:
          parameters: [{name: text, value: "{{item}}-{{tasks.left.outputs.parameters.out}}"}]
      - name: fan-param
        depends: left
        template: sleep-echo
        withParam: '["p", "q", "r"]'
        arguments: {parameters: [{name: text, value: "{{item}}"}]}
      - name: skipped
        depends: left
        when: "{{tasks.left.outputs.parameters.out}} == nope"
        template: sleep-echo
        arguments: {parameters: [{name: text, value: "{{tasks.never.outputs.parameters.out}}"}]}
      - name: last
        depends: fan && skipped && fan-param
        template: sleep-echo
        arguments: {parameters: [{name: text, value: "{{tasks.fan.outputs.parameters.out}}"}]}
  - name: sleep-echo
    inputs: {parameters: [{name: text}]}
    outputs: {parameters: [{name: out, valueFrom: {path: /tmp/out/value}}]}
    script:
      image: python:3.11
      command: [python]
      # The input reaches the script through the environment (no quoting pitfalls);
      # /tmp paths live in the task's sandbox, as in its container.
      env:
      - {name: OUT, value: /tmp/out/value}
      - {name: TEXT, value: "{{inputs.parameters.text}}"}
      source: |
        import os, time
        time.sleep(1)
        text = os.environ["TEXT"]
        open(os.environ["OUT"], "w").write(text.upper())
        print("echo", text)
"""


def _dag_yaml() -> str:
    return DAG


def test_dag_order_parallelism_items_when_and_outputs(tmp_home: Path) -> None:
    start = time.perf_counter()
    record = run_yaml(tmp_home, _dag_yaml(), {"word": "hi"})
    wall = time.perf_counter() - start
    assert record["phase"] == "Succeeded", record["message"]
    nodes = tasks(record)
    assert nodes["left"]["outputs"]["parameters"]["out"] == "HI"
    assert nodes["left"]["outputs"]["result"] == "echo hi"
    assert nodes["fan(0:x)"]["outputs"]["parameters"]["out"] == "X-HI"
    assert nodes["fan(1:y)"]["outputs"]["parameters"]["out"] == "Y-HI"
    assert {nodes[f"fan-param({i}:{v})"]["phase"] for i, v in enumerate("pqr")} == {"Succeeded"}
    assert nodes["skipped"]["phase"] == "Skipped"
    assert "evaluated false" in nodes["skipped"]["message"]
    # Aggregated outputs of a fanned-out task are a JSON list, in item order.
    assert json.loads(nodes["last"]["inputs"]["text"]) == ["X-HI", "Y-HI"]
    # left/right, then fan and fan-param, ran side by side: 6 one-second tasks,
    # 3 dependency levels, well under the 6 s a serial run needs.
    overlap = nodes["left"]["finished_at"] > nodes["right"]["started_at"]
    assert overlap and nodes["right"]["finished_at"] > nodes["left"]["started_at"]
    assert nodes["last"]["started_at"] >= nodes["fan(1:y)"]["finished_at"]
    assert wall < 6.0
    folder = tmp_home / "runs" / record["run_id"]
    assert (folder / "workflow.yaml").is_file()
    assert "echo hi" in (folder / nodes["left"]["log"]).read_text()


def test_bad_parameters_are_refused_before_running(tmp_home: Path) -> None:
    with pytest.raises(UsageError, match="must be one of a, b"):
        run_yaml(tmp_home, _dag_yaml(), {"mode": "c"})
    with pytest.raises(UsageError, match="no parameter 'nope'"):
        run_yaml(tmp_home, _dag_yaml(), {"nope": "1"})
    assert not (tmp_home / "runs").exists() or not any((tmp_home / "runs").iterdir())


def test_unsupported_fields_are_refused_with_their_path(tmp_home: Path) -> None:
    doc = yaml.safe_load(_dag_yaml())
    doc["spec"]["templates"][1]["script"]["volumeMounts"] = [{"name": "x", "mountPath": "/x"}]
    doc["spec"]["templates"][0]["dag"]["tasks"][0]["continueOn"] = {"failed": True}
    with pytest.raises(UsageError) as info:
        run_yaml(tmp_home, yaml.safe_dump(doc))
    assert "spec.templates[1].script.volumeMounts: not supported" in str(info.value)
    assert "spec.templates[0].dag.tasks[0].continueOn: not supported" in str(info.value)


# ------------------------------------------------------------------ retries, deadlines, exit

RETRY = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: retry}
spec:
  entrypoint: main
  onExit: exit
  arguments:
    parameters:
    - {name: fail_times, value: "2"}
    - {name: limit, value: "2"}
  templates:
  - name: main
    dag:
      tasks:
      - {name: flaky, template: flaky}
      - {name: slow, template: slow}
  - name: flaky
    retryStrategy:
      limit: "{{workflow.parameters.limit}}"
      retryPolicy: OnFailure
      backoff: {duration: "1", factor: 2}
    container:
      image: python:3.11
      command: COUNT
  - name: slow
    activeDeadlineSeconds: 1
    container:
      image: python:3.11
      command: SLEEP
  - name: exit
    container:
      image: python:3.11
      command: EXIT
"""


def _retry_yaml(counter: Path, exit_file: Path, slow: float) -> str:
    count = (
        f"import pathlib,sys; p=pathlib.Path({str(counter)!r}); n=int(p.read_text() or 0) "
        "if p.exists() else 0; p.write_text(str(n+1)); "
        "sys.exit(1 if n < {{workflow.parameters.fail_times}} else 0)"
    )
    exit_code = (
        f"import pathlib; pathlib.Path({str(exit_file)!r}).write_text("
        "'{{workflow.status}}' + '|' + '''{{workflow.failures}}''')"
    )
    return (
        RETRY.replace("COUNT", py(count))
        .replace("SLEEP", py(f"import time; time.sleep({slow})"))
        .replace("EXIT", py(exit_code))
    )


def test_retry_backoff_deadline_and_exit_handler(tmp_home: Path, tmp_path: Path) -> None:
    counter, exit_file = tmp_path / "count", tmp_path / "exit"
    start = time.perf_counter()
    record = run_yaml(tmp_home, _retry_yaml(counter, exit_file, slow=30))
    wall = time.perf_counter() - start
    nodes = tasks(record)
    assert nodes["flaky"]["phase"] == "Succeeded" and nodes["flaky"]["attempts"] == 3
    assert counter.read_text() == "3"
    assert wall >= 3.0  # backoff 1 s then 2 s between the three attempts
    assert nodes["slow"]["phase"] == "Failed"
    assert "deadline" in nodes["slow"]["message"]
    assert wall < 20  # the 30 s sleeper was killed at its 1 s deadline
    assert record["phase"] == "Failed"
    status, failures = exit_file.read_text().split("|", 1)
    assert status == "Failed"
    assert [f["displayName"] for f in json.loads(failures)] == ["slow"]
    assert nodes["onExit"]["phase"] == "Succeeded"


def test_retry_limit_exhausted_fails(tmp_home: Path, tmp_path: Path) -> None:
    counter, exit_file = tmp_path / "count", tmp_path / "exit"
    record = run_yaml(
        tmp_home, _retry_yaml(counter, exit_file, slow=0), {"fail_times": "5", "limit": "1"}
    )
    flaky = tasks(record)["flaky"]
    assert flaky["phase"] == "Failed" and flaky["attempts"] == 2
    assert "after 2 attempts" in flaky["message"]
    assert exit_file.read_text().startswith("Failed|")


# ------------------------------------------------------------------ memoize

MEMO = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: memo}
spec:
  entrypoint: main
  arguments:
    parameters: [{name: key, value: k1}, {name: age, value: 1h}]
  templates:
  - name: main
    dag:
      tasks:
      - name: heavy
        template: heavy
        arguments: {parameters: [{name: key, value: "{{workflow.parameters.key}}"}]}
  - name: heavy
    inputs: {parameters: [{name: key}]}
    memoize:
      key: "heavy-{{inputs.parameters.key}}"
      maxAge: "{{workflow.parameters.age}}"
      cache: {configMap: {name: memo-test}}
    outputs: {parameters: [{name: stamp, valueFrom: {path: /tmp/stamp}}]}
    script:
      image: python:3.11
      command: [python]
      source: |
        import time, pathlib, os
        pathlib.Path(os.getcwd(), "tmp", "stamp").write_text(str(time.time()))
"""


def test_memoize_by_evaluated_key_and_max_age(tmp_home: Path) -> None:
    text = MEMO.replace('"{{workflow.parameters.age}}"', "1h")
    first = tasks(run_yaml(tmp_home, text))["heavy"]
    second = tasks(run_yaml(tmp_home, text))["heavy"]
    other = tasks(run_yaml(tmp_home, text, {"key": "k2"}))["heavy"]
    assert not first["memoized"] and second["memoized"] and not other["memoized"]
    assert second["outputs"] == first["outputs"]
    assert other["outputs"] != first["outputs"]
    short = MEMO.replace('"{{workflow.parameters.age}}"', "1s")
    time.sleep(1.2)
    expired = tasks(run_yaml(tmp_home, short))["heavy"]
    assert not expired["memoized"]  # the entry is older than maxAge: run again
    bad = MEMO.replace('"heavy-{{inputs.parameters.key}}"', '"heavy_{{inputs.parameters.key}}"')
    failed = run_yaml(tmp_home, bad)
    # The task errs, and a DAG takes its target's phase (dag.go:140-245): Error.
    assert failed["phase"] == "Error"
    assert "invalid cache key" in tasks(failed)["heavy"]["message"]


# ------------------------------------------------------------------ mutex

MUTEX = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: mutex}
spec:
  entrypoint: work
  arguments: {parameters: [{name: branch, value: main}]}
  synchronization: {mutexes: [{name: "m-{{workflow.parameters.branch}}"}]}
  templates:
  - name: work
    container: {image: python:3.11, command: SLEEP}
"""


def test_runs_for_the_same_mutex_queue(tmp_home: Path) -> None:
    text = MUTEX.replace("SLEEP", py("import time; time.sleep(1.5)"))
    records: list[dict] = []
    threads = [
        threading.Thread(target=lambda: records.append(run_yaml(tmp_home, text))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spans = sorted((t["started_at"], t["finished_at"]) for r in records for t in r["tasks"])
    assert len(spans) == 2 and all(r["phase"] == "Succeeded" for r in records)
    assert spans[1][0] >= spans[0][1] - 0.05  # the second waited for the first


# ------------------------------------------------------------------ Hera runner, warm and cold

RUNNER_MODULE = """
from hera.workflows import Output


class Out(Output):
    doubled: int = 0
    pid: int = 0


def double(n: int, label: str = "x") -> Out:
    import os
    print("label", label)
    return Out(doubled=2 * n, pid=os.getpid())
"""

RUNNER = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: runner}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: a, template: double, arguments: {parameters: [{name: n, value: "21"}]}}
      - name: b
        template: double
        depends: a
        arguments: {parameters: [{name: n, value: "{{tasks.a.outputs.parameters.doubled}}"}]}
  - name: double
    inputs: {parameters: [{name: n}, {name: label, default: "it's \\"quoted\\""}]}
    outputs:
      parameters:
      - {name: doubled, valueFrom: {path: /tmp/hera-outputs/parameters/doubled}}
      - {name: pid, valueFrom: {path: /tmp/hera-outputs/parameters/pid}}
    script:
      image: x
      command: [python]
      args: [-m, hera.workflows.runner, -e, "enginetasks:double"]
      source: "{{inputs.parameters}}"
      env: [{name: hera__outputs_directory, value: /tmp/hera-outputs}]
"""


@pytest.mark.parametrize("warm", [True, False], ids=["zygote", "fresh"])
def test_hera_runner_scripts_warm_and_cold(
    tmp_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warm: bool
) -> None:
    (tmp_path / "enginetasks.py").write_text(RUNNER_MODULE)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    record = run_yaml(tmp_home, RUNNER, warm=warm)
    assert record["phase"] == "Succeeded", record["message"]
    nodes = tasks(record)
    assert nodes["a"]["outputs"]["parameters"]["doubled"] == "42"
    assert nodes["b"]["outputs"]["parameters"]["doubled"] == "84"
    # Every task is its own process, never the engine nor the zygote.
    pids = {nodes[n]["outputs"]["parameters"]["pid"] for n in ("a", "b")}
    assert len(pids) == 2 and str(os.getpid()) not in pids
    log = (tmp_home / "runs" / record["run_id"] / nodes["a"]["log"]).read_text()
    assert 'label it\'s "quoted"' in log


# ------------------------------------------------------------------ retry in place / resubmit

FLAKY_CHAIN = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: chain}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: first, template: first}
      - {name: second, template: second, depends: first}
  - name: first
    container: {image: x, command: FIRST}
  - name: second
    container: {image: x, command: SECOND}
"""


def test_retry_reruns_only_failed_tasks_and_resubmit_memoized(
    tmp_home: Path, tmp_path: Path
) -> None:
    runs, flag = tmp_path / "first-runs", tmp_path / "ok"
    text = FLAKY_CHAIN.replace(
        "FIRST",
        py(
            f"import pathlib; p=pathlib.Path({str(runs)!r}); p.write_text(p.read_text()+'x' "
            "if p.exists() else 'x')"
        ),
    ).replace(
        "SECOND",
        py(f"import pathlib,sys; sys.exit(0 if pathlib.Path({str(flag)!r}).exists() else 3)"),
    )
    failed = run_yaml(tmp_home, text)
    assert failed["phase"] == "Failed" and tasks(failed)["second"]["phase"] == "Failed"
    settings = load_settings(tmp_home, environ={})
    with pytest.raises(UsageError, match="no such run"):
        retry_run(settings, "no-such-run")
    flag.write_text("1")
    retried = retry_run(settings, failed["run_id"], view=RunView(quiet=True))
    assert retried["run_id"] == failed["run_id"] and retried["phase"] == "Succeeded"
    assert runs.read_text() == "x"  # first was not run again
    assert retried["retries"] == 1
    with pytest.raises(UsageError, match="only Failed or Error runs"):
        retry_run(settings, failed["run_id"], view=RunView(quiet=True))
    again = resubmit_run(settings, failed["run_id"], {}, memoized=True, view=RunView(quiet=True))
    assert again["run_id"] != failed["run_id"] and again["phase"] == "Succeeded"
    assert all(t["memoized"] for t in again["tasks"])
    assert runs.read_text() == "x"
    fresh = resubmit_run(settings, failed["run_id"], {}, view=RunView(quiet=True))
    assert not any(t["memoized"] for t in fresh["tasks"])
    assert runs.read_text() == "xx"
