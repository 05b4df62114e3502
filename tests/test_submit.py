"""``cnai submit`` against a replayed Argo server exchange on 127.0.0.1.

The exchange (tests/fixtures/argo/submit-exchanges.json) is written by hand from
the Argo server's REST API; a real HTTP server replays it in order and records
every request that differs from what the fixture expects. What a live Argo would
do beyond these responses (admission, the controller running the Workflow) is not
exercised here; docs/pipeline.md says so.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CliResult


def run_cli(args: list[str], home: Path, env: dict[str, str] | None = None) -> CliResult:
    """The cnai CLI in this process (the HTTP exchange is what is under test)."""
    import contextlib
    import io
    import os

    from cnai.cli.main import main

    saved = os.environ.pop("ARGO_TOKEN", None)
    os.environ.update(env or {})
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["--home", str(home), *args])
    finally:
        os.environ.pop("ARGO_TOKEN", None)
        if saved is not None:
            os.environ["ARGO_TOKEN"] = saved
    return CliResult(code, out.getvalue(), err.getvalue())


FIXTURE = Path(__file__).parent / "fixtures" / "argo" / "submit-exchanges.json"


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _contains(actual[k], v) for k, v in expected.items()
        )
    return bool(actual == expected)


class Replay:
    """A real HTTP server answering a scripted exchange, in order."""

    def __init__(self, exchanges: list[dict[str, Any]]) -> None:
        self.exchanges = list(exchanges)
        self.problems: list[str] = []
        self.seen: list[dict[str, Any]] = []
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                payload = json.loads(body) if body else None
                path = self.path.split("?", 1)[0]
                replay.seen.append({"method": self.command, "path": path, "json": payload})
                if not replay.exchanges:
                    replay.problems.append(f"unexpected {self.command} {path}")
                    self._reply(500, {"code": 13, "message": "no more recorded exchanges"})
                    return
                step = replay.exchanges.pop(0)
                want = step["request"]
                if (self.command, path) != (want["method"], want["path"]):
                    replay.problems.append(
                        f"expected {want['method']} {want['path']}, got {self.command} {path}"
                    )
                if want.get("authorization") != self.headers.get("Authorization"):
                    replay.problems.append(f"authorization {self.headers.get('Authorization')!r}")
                if "json" in want and not _contains(payload, want["json"]):
                    replay.problems.append(f"{self.command} {path}: body lacks {want['json']}")
                self._reply(step["response"]["status"], step["response"]["json"])

            def _reply(self, status: int, data: Any) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = _handle  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Replay:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def exchanges() -> dict[str, list[dict[str, Any]]]:
    return json.loads(FIXTURE.read_text())


def test_submit_creates_the_template_then_submits(
    tmp_home: Path, exchanges: dict[str, Any]
) -> None:
    with Replay(exchanges["create"]) as server:
        result = run_cli(
            [
                "--json",
                "submit",
                "--argo-server",
                server.url,
                "--namespace",
                "cnai",
                "-p",
                "git_sha=0a1b2c3",
                "-p",
                "trigger=push",
            ],
            tmp_home,
            env={"ARGO_TOKEN": "test-token"},
        )
    assert result.returncode == 0, result.stderr
    assert server.problems == [] and server.exchanges == []
    out = result.json()
    assert out["template"] == {"name": "cnai-retrain", "action": "created"}
    assert out["workflow"] == "cnai-retrain-x7k2p"
    # What went over the wire is the compiled template, valid against the strict
    # Argo v4.1 schema cnai lint installs.
    from cnai.lint.derived import argo_problems

    sent = server.seen[1]["json"]["template"]
    assert argo_problems(sent) == []
    assert sent["spec"]["templates"] and sent["metadata"]["namespace"] == "cnai"


def test_submit_updates_an_existing_template(tmp_home: Path, exchanges: dict[str, Any]) -> None:
    with Replay(exchanges["update"]) as server:
        result = run_cli(
            ["--json", "submit", "--argo-server", server.url, "--namespace", "cnai"],
            tmp_home,
            env={"ARGO_TOKEN": "Bearer test-token"},
        )
    assert result.returncode == 0, result.stderr
    assert server.problems == [] and server.exchanges == []
    assert result.json()["template"]["action"] == "updated"


def test_submit_reports_a_rejected_token(tmp_home: Path, exchanges: dict[str, Any]) -> None:
    with Replay(exchanges["unauthorized"]) as server:
        result = run_cli(
            ["submit", "--argo-server", server.url, "--namespace", "cnai"],
            tmp_home,
            env={"ARGO_TOKEN": "wrong-token"},
        )
    assert result.returncode == 1
    assert "401" in result.stderr and "token not valid" in result.stderr
    assert server.problems == []


def test_submit_refuses_unknown_parameters_before_calling(tmp_home: Path) -> None:
    result = run_cli(["submit", "--argo-server", "http://127.0.0.1:9", "-p", "nope=1"], tmp_home)
    assert result.returncode == 2
    assert "no parameter 'nope'" in result.stderr


def test_submit_reports_an_unreachable_server(tmp_home: Path) -> None:
    result = run_cli(["submit", "--argo-server", "http://127.0.0.1:9"], tmp_home)
    assert result.returncode == 1
    assert "cannot reach" in result.stderr


def test_submit_keeps_a_helm_managed_template(tmp_home: Path, exchanges: dict[str, Any]) -> None:
    """The chart's cnai-retrain (label managed-by: Helm, image image.repository:tag) is
    never overwritten with the compiled default image: the run is submitted from it."""
    get, _put, post = exchanges["update"]
    get = json.loads(json.dumps(get))
    get["response"]["json"]["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "Helm"}
    with Replay([get, post]) as server:
        result = run_cli(
            ["--json", "submit", "--argo-server", server.url, "--namespace", "cnai"],
            tmp_home,
            env={"ARGO_TOKEN": "Bearer test-token"},
        )
    assert result.returncode == 0, result.stderr
    assert server.problems == [] and server.exchanges == []
    assert [s["method"] for s in server.seen] == ["GET", "POST"]
    assert result.json()["template"]["action"] == "kept (managed by Helm)"


def test_submit_honours_argo_secure_false_for_a_host_port_server(
    tmp_home: Path, exchanges: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The platform's Argo server speaks plain HTTP (`secure: false`); like the argo CLI,
    ARGO_SERVER=host:port with ARGO_SECURE=false means http://host:port."""
    with Replay(exchanges["update"]) as server:
        monkeypatch.setenv("ARGO_SERVER", server.url.removeprefix("http://"))
        monkeypatch.setenv("ARGO_SECURE", "false")
        result = run_cli(
            ["--json", "submit", "--namespace", "cnai"],
            tmp_home,
            env={"ARGO_TOKEN": "Bearer test-token"},
        )
    assert result.returncode == 0, result.stderr
    assert result.json()["server"] == server.url


def test_submit_server_defaults_follow_the_platform_and_the_argo_cli() -> None:
    from cnai.argo.submit import resolve_server
    from cnai.errors import UsageError

    assert resolve_server(None, None, None) == "http://localhost:2746"
    assert resolve_server(None, "argo:2746", None) == "https://argo:2746"
    assert resolve_server(None, "argo:2746", "false") == "http://argo:2746"
    assert resolve_server("https://a:1", "argo:2746", "false") == "https://a:1"
    with pytest.raises(UsageError, match="ARGO_SECURE"):
        resolve_server(None, "argo:2746", "maybe")
