"""The local engine on steps templates, workflow arguments, container ``/tmp`` and DAG
fail-fast, checked against what argo-workflows v4.1.2 does.

``EXAMPLES`` runs upstream examples vendored under tests/fixtures/argo-examples-run/
(see its README) and compares phase and outputs with Argo's. The other tests use
tiny ``python -c`` containers. Node ids are the engine's (Argo prefixes the generated
workflow name instead of the entrypoint's for the top-level nodes).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from cnai.config import load_settings
from cnai.engine.runs import start_run
from cnai.engine.view import RunView
from cnai.lint import document_problems

EXAMPLES_DIR = Path(__file__).parent / "fixtures" / "argo-examples-run"


def run_doc(home: Path, doc: dict[str, Any], params: dict[str, str] | None = None) -> dict:
    """Run one Workflow document in-process (cold processes: the tasks are tiny)."""
    settings = load_settings(home, environ={})
    return start_run(settings, doc, params or {}, view=RunView(quiet=True), warm=False)


def run_text(home: Path, text: str, params: dict[str, str] | None = None) -> dict:
    return run_doc(home, yaml.safe_load(text), params)


def nodes(record: dict) -> dict[str, dict]:
    return {t["id"]: t for t in record["tasks"]}


def py(code: str) -> str:
    """A container command running ``python -c code`` (JSON, valid YAML flow)."""
    return json.dumps(["python", "-c", code])


# ------------------------------------------------------------------ upstream examples

EXAMPLES: list[tuple[str, dict[str, str], str, dict[str, dict[str, Any]]]] = [
    # file, -p parameters, expected workflow phase, {node: expected outputs (subset)}.
    # "result" is the container's stdout (what `argo logs` shows), parameters as Argo
    # saves them (one trailing newline trimmed, workflow/executor/executor.go:781).
    (
        "steps.yaml",
        {},
        "Succeeded",
        {
            "hello-hello-hello[0].hello1": {"result": "hello1"},
            "hello-hello-hello[1].hello2a": {"result": "hello2a"},
            "hello-hello-hello[1].hello2b": {"result": "hello2b"},
        },
    ),
    ("arguments-parameters.yaml", {}, "Succeeded", {"print-message": {"result": "hello world"}}),
    (
        "arguments-parameters.yaml",
        {"message": "goodbye world"},
        "Succeeded",
        {"print-message": {"result": "goodbye world"}},
    ),
    ("memoize-simple.yaml", {}, "Succeeded", {"world-to-file": {"parameters": {"hello": "world"}}}),
    (
        "output-parameter.yaml",
        {},
        "Succeeded",
        {
            "output-parameter[0].generate-parameter": {
                "parameters": {"hello-param": "hello world"}
            },
            "output-parameter[1].consume-parameter": {"result": "hello world"},
        },
    ),
    (
        "loops.yaml",
        {},
        "Succeeded",
        {
            "loop-example[0].print-message-loop(0:hello world)": {"result": "hello world"},
            "loop-example[0].print-message-loop(1:goodbye world)": {"result": "goodbye world"},
        },
    ),
    (
        "loops-sequence.yaml",
        {},
        "Succeeded",
        {
            **{f"loops-sequence[0].sequence-count({i}:{i})": {"result": str(i)} for i in range(5)},
            **{
                f"loops-sequence[0].sequence-start-end({i}:{100 + i})": {"result": str(100 + i)}
                for i in range(6)
            },
            **{
                f"loops-sequence[0].sequence-param({i}:{200 + i})": {"result": str(200 + i)}
                for i in range(3)
            },
            **{
                f"loops-sequence[0].sequence-negative({i}:{5 - i})": {"result": str(5 - i)}
                for i in range(6)
            },
            **{
                f"loops-sequence[0].sequence-format({i}:testuser0{i})": {"result": f"testuser0{i}"}
                for i in range(5)
            },
        },
    ),
    (
        "dag-diamond.yaml",
        {},
        "Succeeded",
        {name: {"result": name} for name in "ABCD"},
    ),
    (
        "dag-diamond-steps.yaml",
        {},
        "Succeeded",
        {
            f"{name}[0].echo({i - 1}:{i})": {"result": f"{name}{i}"}
            for name in "ABCD"
            for i in (1, 2, 3)
        },
    ),
]


@pytest.mark.parametrize(
    ("file", "params", "phase", "expected"),
    EXAMPLES,
    ids=[f"{e[0]}{'-p' if e[1] else ''}" for e in EXAMPLES],
)
def test_upstream_examples_end_as_argo_would(
    tmp_home: Path, file: str, params: dict[str, str], phase: str, expected: dict
) -> None:
    record = run_doc(tmp_home, yaml.safe_load((EXAMPLES_DIR / file).read_text()), params)
    assert record["phase"] == phase, record["message"]
    ran = nodes(record)
    for node_id, outputs in expected.items():
        assert node_id in ran, sorted(ran)
        assert ran[node_id]["phase"] == "Succeeded"
        for key, value in outputs.items():
            got = ran[node_id]["outputs"].get(key)
            if key == "parameters":
                assert {k: got[k] for k in value} == value
            else:
                assert got == value


def test_fixture_readme_names_every_vendored_example() -> None:
    readme = (EXAMPLES_DIR / "README.md").read_text()
    for path in EXAMPLES_DIR.glob("*.yaml"):
        assert f"examples/{path.name}" in readme
    assert "Apache-2.0" in readme and "v4.1.2" in readme


# ------------------------------------------------------------------ steps templates

STEPS = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: steps}
spec:
  entrypoint: main
  templates:
  - name: main
    outputs:
      parameters:
      - {name: total, valueFrom: {parameter: "{{steps.add.outputs.result}}"}}
      - {name: word, valueFrom: {parameter: "{{steps.make.outputs.parameters.word}}"}}
    steps:
    - - {name: make, template: make}
      - {name: slow, template: sleep}
    - - name: add
        template: add
        arguments:
          parameters:
          - {name: a, value: "{{steps.make.outputs.parameters.n}}"}
          - {name: b, value: "{{steps.make.outputs.result}}"}
      - name: skipped
        template: add
        when: "{{steps.make.outputs.parameters.n}} > 100"
        arguments: {parameters: [{name: a, value: "1"}, {name: b, value: "1"}]}
    - - name: items
        template: echo
        arguments: {parameters: [{name: m, value: "{{item}}"}]}
        withItems: [x, y]
      - name: param
        template: echo
        arguments: {parameters: [{name: m, value: "{{item}}"}]}
        withParam: "{{steps.make.outputs.parameters.list}}"
      - name: seq
        template: echo
        arguments: {parameters: [{name: m, value: "{{item}}"}]}
        withSequence: {start: "1", count: "2", format: "n%02d"}
      - name: status
        template: echo
        arguments:
          parameters: [{name: m, value: "{{steps.add.status}}/{{steps.skipped.status}}"}]
  - name: make
    outputs:
      parameters:
      - {name: n, valueFrom: {path: /tmp/n}}
      - {name: word, valueFrom: {path: /tmp/word}}
      - {name: list, valueFrom: {path: /tmp/list}}
    container:
      image: python:3.12
      command: MAKE
  - name: sleep
    container: {image: python:3.12, command: SLEEP}
  - name: add
    inputs: {parameters: [{name: a}, {name: b}]}
    script:
      image: python:3.12
      command: [python]
      source: "print({{inputs.parameters.a}} + {{inputs.parameters.b}})"
  - name: echo
    inputs: {parameters: [{name: m}]}
    container: {image: python:3.12, command: ECHO}
"""


def _steps_yaml() -> str:
    make = (
        "import pathlib; t = pathlib.Path('/tmp'); (t / 'n').write_text('2');"
        " (t / 'word').write_text('hi'); (t / 'list').write_text('[1, 2]'); print(40)"
    )
    return (
        STEPS.replace("MAKE", py(make))
        .replace("SLEEP", py("import time; time.sleep(0.5)"))
        .replace(
            "ECHO", '["python", "-c", "import sys; print(sys.argv[1])", "{{inputs.parameters.m}}"]'
        )
    )


def test_steps_run_groups_in_order_with_outputs_items_and_when(tmp_home: Path) -> None:
    record = run_text(tmp_home, _steps_yaml())
    assert record["phase"] == "Succeeded", record["message"]
    ran = nodes(record)
    # Steps of one group run in parallel; the next group starts after the whole group.
    make, slow, add = ran["main[0].make"], ran["main[0].slow"], ran["main[1].add"]
    assert slow["started_at"] < make["finished_at"]
    assert add["started_at"] >= max(make["finished_at"], slow["finished_at"])
    assert add["outputs"]["result"] == "42"  # steps.make outputs (parameter and result)
    assert ran["main[1].skipped"]["phase"] == "Skipped"  # when 2 > 100 is false
    results = {k: v["outputs"].get("result") for k, v in ran.items() if k.startswith("main[2].")}
    assert results == {
        "main[2].items(0:x)": "x",
        "main[2].items(1:y)": "y",
        "main[2].param(0:1)": "1",
        "main[2].param(1:2)": "2",
        "main[2].seq(0:n01)": "n01",
        "main[2].seq(1:n02)": "n02",
        "main[2].status": "Succeeded/Skipped",
    }
    # The steps template's own outputs come from its steps (valueFrom.parameter).
    assert ran["main"]["outputs"]["parameters"] == {"total": "42", "word": "hi"}


def test_a_failed_step_fails_its_group_and_no_later_group_runs(tmp_home: Path) -> None:
    text = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: steps-fail}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: bad, template: bad}
      - {name: good, template: good}
    - - {name: later, template: good}
  - name: bad
    container: {image: python:3.12, command: ["python", "-c", "raise SystemExit(3)"]}
  - name: good
    container: {image: python:3.12, command: ["python", "-c", "pass"]}
"""
    record = run_text(tmp_home, text)
    ran = nodes(record)
    assert record["phase"] == "Failed"
    assert "child 'main[0].bad' failed" in record["message"]
    assert ran["main[0].good"]["phase"] == "Succeeded"  # its group-mate still ran
    assert ran["main[0]"]["phase"] == "Failed"
    assert "main[1].later" not in ran


# ------------------------------------------------------------------ arguments and /tmp


def test_workflow_arguments_reach_the_entrypoint_inputs(tmp_home: Path) -> None:
    doc = yaml.safe_load((EXAMPLES_DIR / "arguments-parameters.yaml").read_text())
    record = run_doc(tmp_home, doc, {"message": "goodbye"})
    assert record["phase"] == "Succeeded", record["message"]
    assert nodes(record)["print-message"]["inputs"] == {"message": "goodbye"}


def test_container_writes_to_tmp_land_in_the_task_sandbox(tmp_home: Path) -> None:
    doc = yaml.safe_load((EXAMPLES_DIR / "memoize-simple.yaml").read_text())
    # A unique file name, so the host's /tmp can be checked for a stray write.
    name = f"cnai-test-{uuid.uuid4().hex}-hello.txt"
    template = doc["spec"]["templates"][0]
    template["container"]["args"] = [f"echo world > /tmp/{name}"]
    template["outputs"]["parameters"][0]["valueFrom"]["path"] = f"/tmp/{name}"
    record = run_doc(tmp_home, doc)
    assert record["phase"] == "Succeeded", record["message"]
    assert nodes(record)["world-to-file"]["outputs"]["parameters"] == {"hello": "world"}
    stray = Path("/tmp", name)
    written_to_host = stray.exists()
    stray.unlink(missing_ok=True)
    assert not written_to_host


# ------------------------------------------------------------------ DAG fail-fast / phase

DAG = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: dag-phase}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks: TASKS
  - name: ok
    container: {image: python:3.12, command: ["python", "-c", "pass"]}
  - name: slow
    container: {image: python:3.12, command: ["python", "-c", "import time; time.sleep(1)"]}
  - name: fail
    container: {image: python:3.12, command: ["python", "-c", "raise SystemExit(1)"]}
"""


def _dag(tasks: list[dict[str, Any]], **dag: Any) -> dict[str, Any]:
    doc = yaml.safe_load(DAG.replace("TASKS", "[]"))
    doc["spec"]["templates"][0]["dag"] = {"tasks": tasks, **dag}
    return doc


def test_dag_phase_comes_from_its_target_tasks(tmp_home: Path) -> None:
    # A's failure is handled by B, but C (a target) is omitted below A and inherits
    # A's Failed: the DAG fails (dag.go:140-245); handled failures alone do not.
    doc = _dag(
        [
            {"name": "A", "template": "fail"},
            {"name": "B", "template": "ok", "depends": "A.Failed"},
            {"name": "C", "template": "ok", "depends": "A"},
        ]
    )
    record = run_doc(tmp_home, doc)
    ran = nodes(record)
    assert ran["B"]["phase"] == "Succeeded" and ran["C"]["phase"] == "Omitted"
    assert record["phase"] == "Failed"
    handled = _dag(
        [
            {"name": "A", "template": "fail"},
            {"name": "B", "template": "ok", "depends": "A.Failed"},
        ]
    )
    assert run_doc(tmp_home, handled)["phase"] == "Succeeded"


def test_dag_fail_fast_stops_scheduling_unless_disabled(tmp_home: Path) -> None:
    tasks = [
        {"name": "A", "template": "fail"},
        {"name": "X", "template": "slow"},
        {"name": "Y", "template": "ok", "depends": "X"},
    ]
    fast = nodes(run_doc(tmp_home, _dag(tasks)))
    assert fast["X"]["phase"] == "Succeeded"  # already running: it finishes
    assert fast["Y"]["phase"] == "Omitted"  # never scheduled once the DAG failed
    record = run_doc(tmp_home, _dag(tasks, failFast=False))
    assert nodes(record)["Y"]["phase"] == "Succeeded"
    assert record["phase"] == "Failed"


def test_an_errored_target_makes_the_workflow_error(tmp_home: Path) -> None:
    doc = _dag([{"name": "A", "template": "missing-template"}])
    record = run_doc(tmp_home, doc)
    assert record["phase"] == "Error"  # operator.go:567-568, the root node's phase


# ------------------------------------------------------------------ lint agrees


@pytest.mark.parametrize("file", sorted(p.name for p in EXAMPLES_DIR.glob("*.yaml")))
def test_lint_accepts_the_upstream_examples_the_engine_runs(file: str) -> None:
    doc = yaml.safe_load((EXAMPLES_DIR / file).read_text())
    assert document_problems(doc) == []


def test_lint_scopes_steps_variables_to_earlier_groups() -> None:
    assert document_problems(yaml.safe_load(_steps_yaml())) == []
    doc = yaml.safe_load(_steps_yaml())
    groups = doc["spec"]["templates"][0]["steps"]
    groups[0].append({"name": "early", "template": "sleep", "when": "{{steps.add.status}}"})
    groups[1].append({"name": "ghost", "template": "no-such-template"})
    problems = dict(document_problems(doc))
    assert (
        "{{steps.add.status}} does not resolve here"
        in problems["spec.templates[0].steps[0][2].when"]
    )
    assert "does not exist" in problems["spec.templates[0].steps[1][2].template"]


def test_an_errored_exit_handler_makes_a_succeeded_workflow_error(tmp_home: Path) -> None:
    doc = _dag([{"name": "A", "template": "ok"}])
    doc["spec"]["onExit"] = "exit"
    doc["spec"]["templates"].append(
        {"name": "exit", "dag": {"tasks": [{"name": "x", "template": "gone"}]}}
    )
    record = run_doc(tmp_home, doc)
    assert record["phase"] == "Error"  # operator.go:552-561
    assert record["message"].startswith("exit handler failed")
