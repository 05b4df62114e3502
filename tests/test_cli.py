"""CLI conventions shared by every command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnai.cli.main import main
from tests.conftest import run_cli


def test_unknown_command_is_usage_error(tmp_home: Path) -> None:
    result = run_cli(["no-such-command"], tmp_home)
    assert result.returncode == 2
    assert "no-such-command" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_help_lists_ingest(capsys: object) -> None:
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "ingest" in out


def test_bad_config_section_names_the_key(tmp_home: Path) -> None:
    (tmp_home / "config.yaml").write_text("catalgo: {}\n")
    result = run_cli(["ingest", "--json"], tmp_home)
    assert result.returncode == 2
    assert "catalgo" in result.stderr
    assert json.loads(result.stdout)["exit_code"] == 2  # --json: an object on failure too


def test_missing_option_value_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--home" in lines[0]


FAST_EXIT = """
import atexit, sys, threading, time
marker = sys.argv.pop(1)
atexit.register(lambda: open(marker, "w").write("ran"))


def late_write():
    time.sleep(0.3)
    open(marker + ".thread", "w").write("done")


if sys.argv[1] == "--with-thread":
    sys.argv.pop(1)
    threading.Thread(target=late_write).start()
from cnai.cli.main import run
run()
"""


@pytest.mark.parametrize("thread", [False, True], ids=["main-thread-only", "thread-alive"])
@pytest.mark.parametrize("argv", [["pipelines", "--json"], ["no-such-command"]])
def test_the_command_exits_with_its_code_output_and_exit_handlers(
    tmp_home: Path, argv: list[str], thread: bool
) -> None:
    """Leaving without the interpreter's teardown keeps what a caller relies on: the exit
    code, everything written to stdout and stderr through a pipe, atexit handlers run;
    a thread still working is waited for."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    marker = tmp_home / "atexit"
    cmd = [sys.executable, "-c", FAST_EXIT, str(marker), *(["--with-thread"] if thread else [])]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNAI_", "MLFLOW_"))}
    done = subprocess.run(
        [*cmd, "--home", str(tmp_home), *argv], cwd=REPO, env=env, capture_output=True, text=True
    )
    expected = run_cli([*argv], tmp_home)
    assert (done.returncode, done.stdout, done.stderr) == (
        expected.returncode,
        expected.stdout,
        expected.stderr,
    )
    assert done.stdout.strip() or done.stderr.strip()
    assert marker.read_text() == "ran"
    assert (tmp_home / "atexit.thread").exists() == thread
