"""``cnai lint`` agrees with Argo's validator (argo-workflows v4.1.2 validate.go).

Mistakes Argo rejects and lint used to let through, removed v4 fields named as removed,
and the vendored upstream examples (tests/fixtures/argo-examples/) accepted with zero
findings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cnai.lint import lint_text

EXAMPLES = Path(__file__).parent / "fixtures" / "argo-examples"

STEPS = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: s-}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: a
        template: echo
        arguments: {parameters: [{name: msg, value: hi}]}
    - - name: b
        template: echo
        arguments: {parameters: [{name: msg, value: "{{steps.a.outputs.result}}"}]}
  - name: echo
    inputs: {parameters: [{name: msg}]}
    container: {image: alpine, command: [echo, "{{inputs.parameters.msg}}"]}
"""

DAG = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: d-}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - name: a
        template: echo
        arguments: {parameters: [{name: msg, value: hi}]}
      - name: b
        template: echo
        depends: a
        arguments: {parameters: [{name: msg, value: "{{tasks.a.outputs.result}}"}]}
  - name: echo
    inputs: {parameters: [{name: msg}]}
    container: {image: alpine, command: [echo, "{{inputs.parameters.msg}}"]}
"""


def _messages(text: str) -> list[str]:
    return [f"{p.path}: {p.message}" for p in lint_text(text, "t.yaml")]


def test_the_valid_baselines_pass() -> None:
    """The two documents the mistakes below are made in are valid as written."""
    assert _messages(STEPS) == []
    assert _messages(DAG) == []


def test_duplicate_task_names_are_refused() -> None:
    """validate.go:1350-1391 (validateWorkflowFieldNames): task names are unique."""
    found = _messages(DAG.replace("      - name: b\n", "      - name: a\n"))
    assert any("tasks[1].name: 'a' is not unique" in m for m in found), found


def test_duplicate_step_names_are_refused() -> None:
    """validate.go:1074-1076: step names are unique within a steps template."""
    found = _messages(STEPS.replace("    - - name: b\n", "    - - name: a\n"))
    assert any("steps[1][0].name: 'a' is not unique" in m for m in found), found


def test_duplicate_template_names_are_refused() -> None:
    """validate.go:186-190: spec.templates names are unique."""
    found = _messages(DAG.replace("  - name: echo\n", "  - name: main\n"))
    assert any("spec.templates[1].name: 'main' is not unique" in m for m in found), found


def test_undefined_template_in_steps_is_refused() -> None:
    """validate.go:642-679 (validateTemplateHolder): a step's template exists."""
    call = "        template: echo\n        arguments: {parameters: [{name: msg, value: hi}]}"
    found = _messages(STEPS.replace(call, "        template: nope", 1))
    assert any("steps[0][0].template: template 'nope' does not exist" in m for m in found), found


@pytest.mark.parametrize("policy", ["Sometimes", "always"])
def test_unknown_retry_policy_is_refused(policy: str) -> None:
    """validate.go:689-693: retryPolicy is Always, OnError, OnFailure or OnTransientError."""
    text = DAG.replace(
        "  - name: echo\n", f"  - name: echo\n    retryStrategy: {{retryPolicy: {policy}}}\n"
    )
    found = _messages(text)
    assert any(
        f"retryStrategy.retryPolicy: '{policy}' is not a valid RetryPolicy" in m for m in found
    ), found
    assert _messages(text.replace(policy, "OnFailure")) == []


def test_required_input_left_unset_is_refused() -> None:
    """workflow/common/util.go:189: an input without value/default must be supplied."""
    found = _messages(
        DAG.replace("        arguments: {parameters: [{name: msg, value: hi}]}\n", "")
    )
    assert any(
        "tasks[0].arguments: inputs.parameters.msg of template 'echo' was not supplied" in m
        for m in found
    ), found
    steps = STEPS.replace("        arguments: {parameters: [{name: msg, value: hi}]}\n", "")
    assert any("steps[0][0].arguments: inputs.parameters.msg" in m for m in _messages(steps))
    defaulted = steps.replace("inputs: {parameters: [{name: msg}]}",
                              "inputs: {parameters: [{name: msg, default: x}]}")  # fmt: skip
    assert _messages(defaulted) == []


def test_entrypoint_inputs_come_from_workflow_arguments() -> None:
    """The entrypoint's unset inputs must be in spec.arguments (a Workflow)."""
    text = STEPS.replace("  entrypoint: main\n", "  entrypoint: echo\n")
    found = _messages(text)
    assert any("spec.arguments: inputs.parameters.msg" in m for m in found), found
    supplied = text.replace(
        "  entrypoint: echo\n",
        "  entrypoint: echo\n  arguments: {parameters: [{name: msg, value: x}]}\n",
    )
    assert _messages(supplied) == []


CRON = """\
apiVersion: argoproj.io/v1alpha1
kind: CronWorkflow
metadata: {name: c}
spec:
  schedules: ["* * * * *"]
  workflowSpec:
    entrypoint: a
    templates:
    - name: a
      container: {image: alpine}
"""


@pytest.mark.parametrize(
    ("old", "new", "path", "instead"),
    [
        ('  schedules: ["* * * * *"]', '  schedule: "* * * * *"', "spec.schedule",
         "spec.schedules"),
        ("    entrypoint: a\n", "    entrypoint: a\n    synchronization: {mutex: {name: m}}\n",
         "spec.workflowSpec.synchronization.mutex", "synchronization.mutexes"),
        ("    entrypoint: a\n",
         "    entrypoint: a\n    synchronization:\n"
         "      semaphore: {configMapKeyRef: {name: s, key: k}}\n",
         "spec.workflowSpec.synchronization.semaphore", "synchronization.semaphores"),
        ("      container:",
         "      memoize: {key: k, maxAge: 1h, cache: {configMap: {name: c, key: x}}}\n"
         "      container:",
         "spec.workflowSpec.templates[0].memoize.cache.configMap.key",
         "memoize.cache.configMap.name only"),
    ],
)  # fmt: skip
def test_removed_v4_fields_are_named_as_removed(
    old: str, new: str, path: str, instead: str
) -> None:
    """Fields Argo v4 removed read "removed in Argo v4, use ...", not "unknown field"."""
    assert _messages(CRON) == []
    found = _messages(CRON.replace(old, new))
    assert any(m.startswith(f"{path}: removed in Argo v4, use {instead}") for m in found), found


@pytest.mark.parametrize(
    "example",
    sorted(p.name for p in EXAMPLES.glob("*.yaml")),
)
def test_vendored_upstream_examples_have_no_findings(example: str) -> None:
    """Every vendored valid Argo v4.1.2 example passes lint with zero findings."""
    assert _messages((EXAMPLES / example).read_text()) == []


def test_suite_script_counts_rejected_files(tmp_path: Path) -> None:
    """scripts/lint_upstream_suites.py lints a git ref's examples and counts rejections."""
    import json
    import subprocess
    import sys

    repo = tmp_path / "suite"
    (repo / "examples").mkdir(parents=True)
    (repo / "examples" / "good.yaml").write_text(STEPS)
    (repo / "examples" / "bad.yaml").write_text(DAG.replace("template: echo", "template: no", 1))
    (repo / "examples" / "other.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    script = Path(__file__).parents[1] / "scripts" / "lint_upstream_suites.py"
    out = subprocess.run(
        [sys.executable, str(script), str(repo / ".git"), "HEAD", "examples/"],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
    ).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary == {"files": 2, "rejected": 1, "rejected_paths": ["examples/bad.yaml"]}
