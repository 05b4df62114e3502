"""The warm task launcher: what it imports ahead, and when.

Early modules load before the first fork; later modules only once the engine asks
(a run that ends after its first task never imports them). Tasks are real forked
processes that report what their interpreter has imported.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from cnai.config import load_settings
from cnai.engine.runs import start_run
from cnai.engine.view import RunView
from cnai.engine.zygote import Zygote, split_preload, task_base_env

PROBE = """
import sys
print(json.dumps({m: m in sys.modules for m in sys.argv[1:]}))
""".replace("import sys", "import json, sys")


@pytest.fixture
def probe_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on PYTHONPATH with ``zprobe`` (prints which modules are imported) and
    two marker modules nothing else imports."""
    (tmp_path / "zprobe.py").write_text(PROBE)
    (tmp_path / "zearly.py").write_text("")
    (tmp_path / "zlater.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return tmp_path


def _imported(zygote: Zygote, folder: Path, *modules: str) -> dict[str, bool]:
    """Fork one probe task; which of ``modules`` its interpreter had imported."""
    out, err = folder / "out.txt", folder / "err.txt"
    out.unlink(missing_ok=True)
    child = zygote.spawn(["-m", "zprobe", *modules], task_base_env(), folder, out, err)
    assert child.wait(60) == 0, err.read_text()
    return dict(json.loads(out.read_text()))


def test_split_preload() -> None:
    assert split_preload(["a", "b"]) == (["a", "b"], [])
    assert split_preload(["a", "--", "b", ""]) == (["a"], ["b"])
    assert split_preload(["--", "b"]) == ([], ["b"])


def test_later_modules_load_only_when_asked(probe_path: Path) -> None:
    zygote = Zygote(["zearly", "--", "zlater"], task_base_env(), probe_path)
    try:
        for _ in range(3):  # idle time alone never loads them
            assert _imported(zygote, probe_path, "zearly", "zlater") == {
                "zearly": True,
                "zlater": False,
            }
            time.sleep(0.2)
        zygote.load_later()
        deadline = time.time() + 60
        while not _imported(zygote, probe_path, "zlater")["zlater"]:
            assert time.time() < deadline, "zlater never loaded"
            time.sleep(0.1)
    finally:
        zygote.close()
    assert not zygote.alive


def test_modules_added_later_load_before_the_next_fork(probe_path: Path) -> None:
    zygote = Zygote([], task_base_env(), probe_path)
    try:
        assert _imported(zygote, probe_path, "zearly") == {"zearly": False}
        zygote.load(["zearly", "--", "zlater"])
        assert _imported(zygote, probe_path, "zearly", "zlater") == {
            "zearly": True,
            "zlater": False,
        }
    finally:
        zygote.close()


RUN = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: plan}
spec:
  entrypoint: main
  onExit: probe
  arguments: {parameters: [{name: needed, value: "false"}]}
  templates:
  - name: main
    dag:
      tasks:
      - {name: plan, template: probe}
      - {name: work, template: probe, depends: plan, when: "{{workflow.parameters.needed}} == true"}
  - name: probe
    container: {image: x, command: [python], args: [-m, zprobe, zearly, zlater]}
"""


def _run(home: Path, needed: str) -> dict[str, dict[str, bool]]:
    settings = load_settings(home, environ={})
    record = start_run(
        settings,
        yaml.safe_load(RUN),
        {"needed": needed},
        view=RunView(quiet=True),
        preload=["zearly", "--", "zlater"],
    )
    assert record["phase"] == "Succeeded", record["message"]
    return {
        n["id"]: json.loads(n["outputs"]["result"])
        for n in record["tasks"]
        if n["phase"] == "Succeeded"
    }


def test_a_run_that_stops_after_its_first_task_never_loads_the_later_modules(
    tmp_home: Path, probe_path: Path
) -> None:
    seen = _run(tmp_home, "false")
    assert set(seen) == {"plan", "onExit"}  # "work" was skipped by its when
    assert seen["plan"] == {"zearly": True, "zlater": False}
    assert seen["onExit"] == {"zearly": True, "zlater": False}


def test_a_second_task_starts_loading_the_later_modules(tmp_home: Path, probe_path: Path) -> None:
    seen = _run(tmp_home, "true")
    assert seen["plan"] == {"zearly": True, "zlater": False}
    assert seen["work"]["zearly"]
    # The zygote imports the (empty) module while "work" runs, long before the engine
    # notices "work" ended (it polls every 50 ms) and forks the exit handler.
    assert seen["onExit"] == {"zearly": True, "zlater": True}


def test_a_workflow_without_python_module_tasks_starts_no_zygote(
    tmp_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cnai.engine.engine as engine_module
    from cnai.engine.runs import forks_warm

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a zygote was started")

    monkeypatch.setattr(engine_module, "Zygote", refuse)
    doc = yaml.safe_load(RUN.replace("args: [-m, zprobe, zearly, zlater]", 'args: [-c, "pass"]'))
    assert not forks_warm(doc)
    assert forks_warm(yaml.safe_load(RUN))
    record = start_run(load_settings(tmp_home, environ={}), doc, {}, view=RunView(quiet=True))
    assert record["phase"] == "Succeeded", record["message"]


def test_a_task_exit_is_reported_by_waiting_on_it(probe_path: Path) -> None:
    import subprocess
    import sys

    from cnai.engine.executors import _exit_within

    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    assert _exit_within(proc, 60) == 3
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert _exit_within(sleeper, 0.01) is None  # still running: None, no exception
    finally:
        sleeper.kill()
        sleeper.wait()
    zygote = Zygote([], task_base_env(), probe_path)
    try:
        out, err = probe_path / "o.txt", probe_path / "e.txt"
        child = zygote.spawn(["-m", "zprobe"], task_base_env(), probe_path, out, err)
        assert _exit_within(child, 60) == 0
    finally:
        zygote.close()
