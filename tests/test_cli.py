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
