"""Entry point of the ``cnai`` console script.

Conventions shared by every command:

- ``--home DIR`` (env ``CNAI_HOME``, default ``./.cnai``) holds all local state;
- ``--json`` prints exactly one JSON object on stdout when done, a failure too
  (``{"error": message, "exit_code": n}``, added to the failure's own data if any);
- the project (``[tool.cnai]`` of the nearest pyproject.toml, or ``$CNAI_PROJECT``,
  see :mod:`cnai.project`) has its root put first on ``sys.path``;
- exit 0 on success, 2 on bad input or usage (one line on stderr naming the input
  and the rule broken), 1 on a runtime failure;
- progress goes to stderr: rich on a TTY, plain lines otherwise.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import json
import os
import pkgutil
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from cnai import __version__
from cnai.cli import commands
from cnai.config import Settings, check_home, load_settings, resolve_home
from cnai.errors import CnaiError, UsageError
from cnai.progress import Progress
from cnai.project import Project, activate, find_project

Handler = Callable[[argparse.Namespace, "Context"], "dict[str, Any] | None"]


@dataclass
class Context:
    """What a command handler gets besides its parsed arguments."""

    home: Path
    """The resolved home folder."""
    json: bool
    """True when the caller asked for one JSON object on stdout."""
    progress: Progress
    """Where to report progress (stderr)."""
    _settings: Settings | None = field(default=None, repr=False)
    _project: tuple[Project | None] | None = field(default=None, repr=False)

    @property
    def project(self) -> Project | None:
        """The project (``$CNAI_PROJECT`` or found above the current folder), activated."""
        if self._project is None:
            found = find_project()
            activate(found)
            self._project = (found,)
        return self._project[0]

    @property
    def settings(self) -> Settings:
        """Settings for this home, loaded on first use."""
        if self._settings is None:
            self._settings = load_settings(self.home)
        return self._settings


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser, with every command module in cnai.cli.commands registered.

    ``only`` registers just that command's module (each module is named after its
    command), so running one command does not import every other command's module.
    """
    common = _Parser(add_help=False)
    _add_global_options(common)
    parser = _Parser(prog="cnai", description="git push -> retrain -> tune -> register")
    parser.add_argument("--version", action="version", version=f"cnai {__version__}")
    _add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__))
    for name in [only] if only in names else names:
        module = importlib.import_module(f"{commands.__name__}.{name}")
        module.register(subparsers, common)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The command name in ``argv`` (the first positional after global options), if any."""
    probe = _Parser(add_help=False)  # reports errors by raising, never by printing
    probe.add_argument("--home")
    probe.add_argument("--json", action="store_true")
    probe.add_argument("command", nargs="?")
    try:
        known, _ = probe.parse_known_args(list(argv))
    except UsageError:
        return None  # the full parser reports the problem
    return str(known.command) if known.command else None


def _add_global_options(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS lets the option appear before or after the command name.
    parser.add_argument(
        "--home",
        default=argparse.SUPPRESS,
        help="folder holding all local state (env CNAI_HOME, default ./.cnai; ~/.cnai "
        "when the current folder is read-only)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print one JSON object on stdout when done",
    )


def render_human(data: dict[str, Any]) -> str:
    """Default human rendering of a command's result: one ``key: value`` per line."""
    width = max((len(k) for k in data), default=0)
    lines = []
    for key, value in data.items():
        shown = json.dumps(value) if isinstance(value, (dict, list)) else value
        lines.append(f"{key:<{width}}  {shown}")
    return "\n".join(lines)


def error_object(exc: CnaiError, message: str) -> dict[str, Any]:
    """The ``--json`` object of a failed command: the error's own data (a run summary)
    when it has some, with ``error`` and ``exit_code`` added; else just those two."""
    data = dict(exc.data) if exc.data is not None else {}
    data.setdefault("error", message)
    data.setdefault("exit_code", exc.exit_code)
    return data


def _one_line(text: str) -> str:
    """``text`` with its lines joined by spaces (blank lines dropped)."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    want_json = "--json" in args_list
    try:
        parser = build_parser(_command_in(args_list))
        args = parser.parse_args(args_list)
        if not getattr(args, "command", None):
            parser.print_help(sys.stderr)
            return 2
        want_json = bool(getattr(args, "json", False))
        flag = getattr(args, "home", None)
        home = check_home(resolve_home(flag), "--home" if flag is not None else "CNAI_HOME")
        ctx = Context(
            home=home,
            json=want_json,
            progress=Progress(),
        )
        ctx.project  # noqa: B018 - the project root goes on sys.path for every command
        handler: Handler = args.handler
        result = handler(args, ctx)
    except CnaiError as exc:
        # Runtime failures are one line even when a driver's message (SQLAlchemy,
        # psycopg2) spans several; usage errors may list several problems.
        message = str(exc) if exc.exit_code == 2 else _one_line(str(exc))
        if want_json:
            print(json.dumps(error_object(exc, message), default=str))
        print(f"cnai: error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cnai: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place unexpected errors are reported
        if os.environ.get("CNAI_DEBUG"):
            traceback.print_exc()
        print(f"cnai: error: {type(exc).__name__}: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    if result is not None:
        if want_json:
            print(json.dumps(result, default=str))
        else:
            render: Callable[[dict[str, Any]], str] = getattr(args, "render", render_human)
            print(render(result))
    return 0


def run() -> NoReturn:
    """The ``cnai`` command (console script and ``python -m cnai``): :func:`main`, then exit.

    Once the command is done and only the main thread is left, the process leaves
    with ``os._exit`` after the atexit handlers and a flush of stdout and stderr,
    skipping the interpreter's teardown of every imported module (about 0.1 s after
    a run, measured: a tenth of a no-change rerun, docs/performance.md). With any
    other thread still alive it exits the ordinary way, which waits for them.
    """
    code = main()
    if threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
