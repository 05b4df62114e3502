"""Issue 18, items 11-19: the local engine under hostile and careless input.

Each test names the item it covers. Workflows are plain Argo YAML whose tasks are
real processes (``true``, ``python -c``, Hera runner scripts); nothing is mocked.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from cnai.config import load_settings
from cnai.engine.badinput import RETRY_UNLESS_BAD_INPUT
from cnai.engine.limits import parse_limits
from cnai.engine.runs import start_run
from cnai.engine.spec import load_document
from cnai.engine.view import RunView
from cnai.errors import UsageError
from cnai.lint import lint_text
from tests.conftest import REPO, run_cli


def run_yaml(home: Path, text: str, params: dict[str, str] | None = None, **kw: Any) -> dict:
    """Run a Workflow YAML in-process (cold: no zygote); returns the run record."""
    settings = load_settings(home, environ={})
    kw.setdefault("warm", False)
    return start_run(settings, yaml.safe_load(text), params or {}, view=RunView(quiet=True), **kw)


def nodes(record: dict) -> dict[str, dict]:
    return {t["id"]: t for t in record["tasks"]}


def configure(home: Path, **engine: int) -> None:
    (home / "config.yaml").write_text(yaml.safe_dump({"engine": engine}))


def py(code: str) -> str:
    return json.dumps(["python", "-c", code])


def run_folders(home: Path) -> list[Path]:
    runs = home / "runs"
    return [p for p in runs.iterdir() if not p.name.startswith(".")] if runs.is_dir() else []


# ------------------------------------------------------------------ item 11


def _alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    body = "\n".join(f"      {line}" for line in lines)
    return (
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: bomb\n"
        "  annotations:\n    bomb:\n" + body.replace("      ", "      ", 1) + "\nspec:\n"
        "  entrypoint: main\n  templates:\n  - name: main\n    container:\n"
        '      image: x\n      command: ["true"]\n'
    )


def test_yaml_alias_bomb_is_refused_fast_with_exit_2(tmp_path: Path, tmp_home: Path) -> None:
    """Item 11: a few hundred bytes of nested aliases never expand into gigabytes."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_alias_bomb())
    assert len(bomb.read_bytes()) < 1200
    start = time.perf_counter()
    result = run_cli(["run", "--file", str(bomb)], tmp_home, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "engine.max_document_nodes" in result.stderr
    assert time.perf_counter() - start < 60  # expanding it would take minutes and gigabytes
    assert run_folders(tmp_home) == []  # nothing recorded


def test_yaml_recursive_alias_deep_nesting_and_size_are_refused() -> None:
    """Item 11: recursive aliases, nesting and size are bounded too (exit 2 = UsageError)."""
    with pytest.raises(UsageError, match="recursive alias"):
        load_document("a: &x [1, *x]\n", "doc")
    deep = "a: " + "[" * 300 + "]" * 300 + "\n"
    with pytest.raises(UsageError, match=r"engine\.max_document_depth"):
        load_document(deep, "doc")
    with pytest.raises(UsageError, match=r"engine\.max_document_bytes"):
        load_document("a: 1\n" * 100, "doc", parse_limits({"max_document_bytes": 100}))
    # Aliases within the limits still work as YAML says.
    assert load_document("a: &x [1, 2]\nb: *x\n", "doc") == {"a": [1, 2], "b": [1, 2]}


# ------------------------------------------------------------------ item 12

RECURSIVE = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: recurse}
spec:
  entrypoint: main
  templates:
  - name: main
    inputs: {parameters: [{name: n, default: "0"}]}
    dag:
      tasks:
      - name: inc
        template: inc
        arguments: {parameters: [{name: n, value: "{{inputs.parameters.n}}"}]}
      - name: again
        depends: inc
        when: "{{tasks.inc.outputs.result}} < 12"
        template: main
        arguments: {parameters: [{name: n, value: "{{tasks.inc.outputs.result}}"}]}
  - name: inc
    inputs: {parameters: [{name: n}]}
    container:
      image: x
      command: [python, -c, "import sys; print(int(sys.argv[1]) + 1)", "{{inputs.parameters.n}}"]
"""


def test_lint_accepts_recursion_as_argo_does() -> None:
    """Argo's validator accepts recursion (examples/coinflip-recursive.yaml); the local
    engine bounds it (next test), so lint reports nothing, directly or indirectly."""
    assert lint_text(RECURSIVE, "r.yaml") == []
    indirect = RECURSIVE.replace("template: main\n", "template: middle\n") + (
        "  - name: middle\n    inputs: {parameters: [{name: n}]}\n    dag:\n      tasks:\n"
        "      - name: down\n        template: main\n"
        '        arguments: {parameters: [{name: n, value: "{{inputs.parameters.n}}"}]}\n'
    )
    assert lint_text(indirect, "r.yaml") == []


def test_lint_refuses_unconditional_recursion() -> None:
    """Item 12: a template that always calls itself again (nothing can leave the call out)
    never ends, so lint refuses it, directly or through another template; a call guarded
    by `when`, an empty-able loop or a non-success `depends` keeps it valid."""
    direct = RECURSIVE.replace('        when: "{{tasks.inc.outputs.result}} < 12"\n', "")
    found = lint_text(direct, "r.yaml")
    assert any("'main' calls itself unconditionally" in p.message for p in found), found
    indirect = direct.replace("template: main\n", "template: middle\n") + (
        "  - name: middle\n    inputs: {parameters: [{name: n}]}\n    dag:\n      tasks:\n"
        "      - name: down\n        template: main\n"
        '        arguments: {parameters: [{name: n, value: "{{inputs.parameters.n}}"}]}\n'
    )
    found = lint_text(indirect, "r.yaml")
    assert any("cycle" in p.message and "unconditionally" in p.message for p in found), found
    on_failure = direct.replace("depends: inc\n", "depends: inc.Failed\n")
    assert lint_text(on_failure, "r.yaml") == []


def test_engine_bounds_template_nesting(tmp_home: Path) -> None:
    """Item 12: a recursive template stops at engine.max_template_depth."""
    configure(tmp_home, max_template_depth=4)
    record = run_yaml(tmp_home, RECURSIVE)
    assert record["phase"] in ("Failed", "Error")
    assert "engine.max_template_depth" in record["message"]
    # Depth 4 stops the recursion after three levels of `inc` (unbounded: twelve).
    assert sum(1 for n in record["tasks"] if n["task"] == "inc") <= 4


def test_engine_bounds_node_count(tmp_home: Path) -> None:
    """Item 12: one run creates at most engine.max_nodes nodes, then stops with a reason."""
    configure(tmp_home, max_nodes=15)
    text = FAN.replace("ITEMS", json.dumps(list(range(40))))
    record = run_yaml(tmp_home, text)
    assert record["phase"] == "Failed"
    assert "engine.max_nodes" in record["message"]
    assert len(record["tasks"]) <= 15


# ------------------------------------------------------------------ item 13

MUTEX = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: held}
spec:
  entrypoint: work
  synchronization: {mutexes: [{name: branch-main}]}
  templates:
  - name: work
    container: {image: x, command: CODE}
"""


def test_mutex_stays_held_until_a_killed_engines_task_is_gone(
    tmp_home: Path, tmp_path: Path
) -> None:
    """Item 13: after SIGKILL of an engine, the next run never runs beside its leftover task."""
    pid_file, seen = tmp_path / "leftover.pid", tmp_path / "seen"
    sleeper = MUTEX.replace(
        "CODE",
        py(
            f"import os, time, pathlib; pathlib.Path({str(pid_file)!r}).write_text("
            "str(os.getpid())); time.sleep(120)"
        ),
    )
    script = (
        "import sys, yaml\n"
        "from cnai.config import load_settings\n"
        "from cnai.engine.runs import start_run\n"
        "from cnai.engine.view import RunView\n"
        "start_run(load_settings(sys.argv[1], environ={}), yaml.safe_load(sys.argv[2]), {},"
        " run_id='first', view=RunView(quiet=True), warm=False)\n"
    )
    engine = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_home), sleeper], cwd=REPO, start_new_session=True
    )
    leftover = 0
    try:
        deadline = time.time() + 120
        while not pid_file.exists() or not pid_file.read_text():
            assert time.time() < deadline and engine.poll() is None, "first task never started"
            time.sleep(0.05)
        leftover = int(pid_file.read_text())
        engine.send_signal(signal.SIGKILL)
        engine.wait()
        os.kill(leftover, 0)  # the task outlived its engine
        checker = MUTEX.replace(
            "CODE",
            py(
                "import pathlib, psutil\n"
                f"try:\n    state = psutil.Process({leftover}).status()\n"
                "except psutil.NoSuchProcess:\n    state = 'gone'\n"
                f"pathlib.Path({str(seen)!r}).write_text(state)"
            ),
        )
        record = run_yaml(tmp_home, checker)
        assert record["phase"] == "Succeeded", record["message"]
        assert seen.read_text() in ("gone", "zombie")  # ended (a zombie holds no files)
        first = json.loads((tmp_home / "runs" / "first" / "run.json").read_text())
        assert first["phase"] == "Error"  # the dead engine's run is marked, its task ended
    finally:
        if leftover:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(leftover, signal.SIGKILL)
        if engine.poll() is None:
            engine.kill()


# ------------------------------------------------------------------ item 14

SIMPLE = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: simple}
spec:
  entrypoint: work
  templates:
  - name: work
    container: {image: x, command: ["true"]}
"""


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("parallelism", -1, "spec.parallelism"),
        ("activeDeadlineSeconds", "abc", "spec.activeDeadlineSeconds"),
    ],
)
def test_bad_spec_values_exit_2_naming_the_field_and_record_nothing(
    tmp_home: Path, field: str, value: Any, path: str
) -> None:
    """Item 14: bad typed values are refused before anything runs or is recorded."""
    doc = yaml.safe_load(SIMPLE)
    doc["spec"][field] = value
    with pytest.raises(UsageError, match=path.replace(".", r"\.")):
        run_yaml(tmp_home, yaml.safe_dump(doc))
    assert run_folders(tmp_home) == []


def test_bad_template_values_are_refused_with_their_path(tmp_home: Path) -> None:
    """Item 14: template-level numbers and durations are checked too."""
    doc = yaml.safe_load(SIMPLE)
    doc["spec"]["templates"][0]["activeDeadlineSeconds"] = "soon"
    doc["spec"]["templates"][0]["retryStrategy"] = {"limit": -2, "backoff": {"duration": "1x"}}
    with pytest.raises(UsageError) as info:
        run_yaml(tmp_home, yaml.safe_dump(doc))
    text = str(info.value)
    assert "spec.templates[0].activeDeadlineSeconds" in text
    assert "spec.templates[0].retryStrategy.limit" in text
    assert "spec.templates[0].retryStrategy.backoff.duration" in text
    assert run_folders(tmp_home) == []


# ------------------------------------------------------------------ item 15

TASKS_MODULE = """
from hera.workflows import Output

from cnai.engine.badinput import exits_on_bad_input
from cnai.errors import UsageError


class Out(Output):
    value: str = ""


@exits_on_bad_input
def check(sha: str, counter: str) -> Out:
    import pathlib
    p = pathlib.Path(counter)
    p.write_text(p.read_text() + "x" if p.exists() else "x")
    if sha.startswith("$"):
        raise UsageError(f"parameter git_sha={sha!r}: only letters, digits and . _ - are allowed")
    if sha == "crash":
        raise RuntimeError("transient trouble")
    return Out(value=sha)
"""

BAD_INPUT = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: badinput}
spec:
  entrypoint: main
  arguments: {parameters: [{name: sha, value: abc}, {name: counter, value: ""}]}
  templates:
  - name: main
    dag:
      tasks:
      - name: check
        template: check
        arguments:
          parameters:
          - {name: sha, value: "{{workflow.parameters.sha}}"}
          - {name: counter, value: "{{workflow.parameters.counter}}"}
  - name: check
    inputs: {parameters: [{name: sha}, {name: counter}]}
    retryStrategy:
      limit: 2
      retryPolicy: OnFailure
      expression: EXPRESSION
      backoff: {duration: "3s"}
    outputs:
      parameters:
      - {name: value, valueFrom: {path: /tmp/hera-outputs/parameters/value}}
    script:
      image: x
      command: [python]
      args: [-m, hera.workflows.runner, -e, "hardeningtasks:check"]
      source: "{{inputs.parameters}}"
      env: [{name: hera__outputs_directory, value: /tmp/hera-outputs}]
"""


@pytest.mark.parametrize("warm", [True, False], ids=["zygote", "fresh"])
def test_bad_input_in_a_task_fails_at_once_with_its_reason(
    tmp_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warm: bool
) -> None:
    """Item 15: a parameter a task rejects is not retried and the run says why."""
    (tmp_path / "hardeningtasks.py").write_text(TASKS_MODULE)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{REPO}")
    counter = tmp_path / "count"
    text = BAD_INPUT.replace("EXPRESSION", json.dumps(RETRY_UNLESS_BAD_INPUT))
    record = run_yaml(tmp_home, text, {"sha": "$(id)", "counter": str(counter)}, warm=warm)
    check = nodes(record)["check"]  # one attempt: no 3 s backoff, no retry
    assert counter.read_text() == "x" and check["attempts"] == 1
    assert check["phase"] == "Failed" and check["bad_input"] and check["exit_code"] == 2
    assert "git_sha='$(id)': only letters" in check["message"]
    assert record["phase"] == "Failed"
    assert "git_sha='$(id)': only letters" in record["message"]
    assert "exit code 2" in record["message"]


def test_runtime_failures_are_still_retried_under_the_same_expression(
    tmp_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 15: the expression only stops bad input; exit 1 is retried up to the limit."""
    (tmp_path / "hardeningtasks.py").write_text(TASKS_MODULE)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{REPO}")
    counter = tmp_path / "count"
    text = BAD_INPUT.replace("EXPRESSION", json.dumps(RETRY_UNLESS_BAD_INPUT)).replace(
        '"3s"', '"0.1s"'
    )
    record = run_yaml(tmp_home, text, {"sha": "crash", "counter": str(counter)})
    check = nodes(record)["check"]
    assert counter.read_text() == "xxx" and check["attempts"] == 3
    assert check["exit_code"] == 1 and not check.get("bad_input")
    ok = run_yaml(tmp_home, text, {"sha": "abc123", "counter": str(counter)})
    assert ok["phase"] == "Succeeded" and nodes(ok)["check"]["outputs"]["parameters"] == {
        "value": "abc123"
    }


def test_compiled_pipeline_never_retries_bad_input() -> None:
    """Item 15: every retried script task of cnai-retrain carries the bad-input expression."""
    from pipelines.retrain import compile_manifests

    doc = yaml.safe_load(compile_manifests()["cnai-retrain.yaml"])
    scripts = [t for t in doc["spec"]["templates"] if "script" in t]
    assert scripts
    for template in scripts:
        assert template["retryStrategy"]["expression"] == RETRY_UNLESS_BAD_INPUT, template["name"]


def test_cli_run_with_a_hostile_parameter_exits_2_at_once(tmp_home: Path, tmp_path: Path) -> None:
    """Item 15: ``cnai run --file`` with a parameter a task refuses: exit 2 and the reason."""
    (tmp_path / "hardeningtasks.py").write_text(TASKS_MODULE)
    wf = tmp_path / "wf.yaml"
    wf.write_text(BAD_INPUT.replace("EXPRESSION", json.dumps(RETRY_UNLESS_BAD_INPUT)))
    counter = tmp_path / "count"
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    args = ["--json", "run", "--file", str(wf), "-p", "sha=$(id)", "-p", f"counter={counter}"]
    result = run_cli(args, tmp_home, env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "git_sha='$(id)'" in result.stderr.splitlines()[-1]
    assert result.json()["phase"] == "Failed"
    assert counter.read_text() == "x"


# ------------------------------------------------------------------ item 16

FAN = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: fan}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: fan, template: noop, withItems: ITEMS}
  - name: noop
    container: {image: x, command: ["true"]}
"""


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (12_000, 12_000))


def test_a_record_write_failure_is_one_error_line_and_leaves_no_temp_file(
    tmp_home: Path, tmp_path: Path
) -> None:
    """Item 16: a full disk / file size limit mid-run: one error line, no tracebacks."""
    wf = tmp_path / "fan.yaml"
    wf.write_text(FAN.replace("ITEMS", json.dumps(list(range(60)))))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNAI_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "cnai", "--home", str(tmp_home), "run", "--cold", "--file", str(wf)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        preexec_fn=_limit_file_size,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("cnai: error")]
    assert len(errors) == 1 and "cannot write run record" in errors[0], proc.stderr[-2000:]
    assert not list((tmp_home / "runs").glob("*/*.tmp"))


# ------------------------------------------------------------------ item 17


def test_corrupt_records_are_skipped_by_list_and_named_by_show(tmp_home: Path) -> None:
    """Item 17: one malformed run.json never breaks the others."""
    good = run_yaml(tmp_home, SIMPLE)
    for run_id, text in (("bad-list", "[1, 2]"), ("bad-cut", '{"run_id": "bad-cut", "pha')):
        (tmp_home / "runs" / run_id).mkdir()
        (tmp_home / "runs" / run_id / "run.json").write_text(text)
    listed = run_cli(["--json", "runs", "list"], tmp_home)
    assert listed.returncode == 0, listed.stderr
    data = listed.json()
    assert [r["run_id"] for r in data["runs"]] == [good["run_id"]]
    assert sorted(c["run_id"] for c in data["corrupt"]) == ["bad-cut", "bad-list"]
    assert "corrupt record" in listed.stderr
    shown = run_cli(["runs", "show", "bad-cut"], tmp_home)
    assert shown.returncode == 1
    assert shown.stderr.strip().splitlines() == [
        line for line in shown.stderr.strip().splitlines() if line.startswith("cnai: error")
    ]
    assert "corrupt record" in shown.stderr and "not JSON" in shown.stderr
    assert "JSONDecodeError" not in shown.stderr


# ------------------------------------------------------------------ item 18


def test_fan_out_uses_a_bounded_worker_pool(tmp_home: Path) -> None:
    """Item 18: withItems of many items never starts one thread per item."""
    configure(tmp_home, max_workers=4)
    text = FAN.replace("ITEMS", json.dumps(list(range(80))))
    baseline = threading.active_count()
    peak, stop = [baseline], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak.append(threading.active_count())
            time.sleep(0.002)

    monitor = threading.Thread(target=sample, daemon=True)
    monitor.start()
    try:
        record = run_yaml(tmp_home, text)
    finally:
        stop.set()
        monitor.join()
    assert record["phase"] == "Succeeded", record["message"]
    assert sum(1 for n in record["tasks"] if n["phase"] == "Succeeded") == 80
    # monitor + one DAG worker + at most 4 item workers (+1 slack for a finishing thread)
    assert max(peak) - baseline <= 1 + 1 + 4 + 1, max(peak) - baseline


def test_engine_limits_are_checked_settings() -> None:
    """Items 11, 12, 18: limits are positive integers; anything else names the field."""
    assert parse_limits({"max_workers": 8}).max_workers == 8
    with pytest.raises(UsageError, match=r"engine\.max_workers must be a positive integer"):
        parse_limits({"max_workers": 0})
    with pytest.raises(UsageError, match=r"unknown field engine\.max_threads"):
        parse_limits({"max_threads": 3})


# ------------------------------------------------------------------ item 19


def test_runs_show_of_a_killed_run_shows_no_none(tmp_home: Path) -> None:
    """Item 19: a run whose engine died renders its phase and duration cleanly."""
    record = run_yaml(tmp_home, SIMPLE)
    dead = subprocess.Popen(["true"])
    dead.wait()
    path = tmp_home / "runs" / record["run_id"] / "run.json"
    data = json.loads(path.read_text())
    data.update(
        phase="Running",
        finished_at=None,
        duration_seconds=None,
        engine_pid=dead.pid,
        engine_started=time.time(),
    )
    path.write_text(json.dumps(data))
    shown = run_cli(["runs", "show", record["run_id"]], tmp_home)
    assert shown.returncode == 0, shown.stderr
    first = shown.stdout.splitlines()[0]
    assert "None" not in shown.stdout
    assert first.startswith(f"run {record['run_id']}: Error in ") and first.endswith("s")


# ------------------------------------------------------------------ item 16/17 (memo cache)

MEMO = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: memo}
spec:
  entrypoint: heavy
  templates:
  - name: heavy
    memoize:
      key: heavy-k1
      maxAge: 1h
      cache: {configMap: {name: memo-test}}
    container: {image: x, command: ["true"]}
"""


def test_a_malformed_memo_entry_is_a_miss_not_a_crash(tmp_home: Path) -> None:
    """Items 16/17: a damaged memoization cache entry never fails the task that reads it."""
    memo = tmp_home / "runs" / ".memo"
    memo.mkdir(parents=True)
    (memo / "memo-test.json").write_text(json.dumps({"heavy-k1": {"outputs": {}}}))
    record = run_yaml(tmp_home, MEMO)
    assert record["phase"] == "Succeeded", record["message"]
    assert not nodes(record)["heavy"]["memoized"]
    again = run_yaml(tmp_home, MEMO)  # the run rewrote the entry: now a real hit
    assert nodes(again)["heavy"]["memoized"]
    assert not list(memo.glob("*.tmp"))
