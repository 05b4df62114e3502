"""``cnai run``: compile the retrain pipeline and execute the compiled YAML locally."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnai.cli.main import Context


def add_parameter_option(parser: argparse.ArgumentParser) -> None:
    """``-p key=value`` (repeatable)."""
    parser.add_argument(
        "-p",
        "--parameter",
        action="append",
        dest="parameters",
        default=[],
        metavar="KEY=VALUE",
        help="workflow parameter (repeatable)",
    )


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``run`` command."""
    parser = subparsers.add_parser(
        "run",
        parents=[common],
        help="run the retrain pipeline locally: ingest -> tune -> train -> register",
        description="Compile the cnai-retrain WorkflowTemplate and execute the compiled "
        "Argo YAML on this machine (DAG, parameters, when, retries, memoization, exit "
        "handler; RayJobs on one local Ray runtime). The run is recorded under "
        "<home>/runs/<run-id>/; see `cnai runs`.",
    )
    add_parameter_option(parser)
    parser.add_argument("--run-id", help="id for the run (default: cnai-retrain-<random>)")
    parser.add_argument(
        "--file",
        help="execute this Workflow/WorkflowTemplate YAML instead of the built-in pipeline",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="start every task in a fresh interpreter instead of forking a warm one",
    )
    parser.set_defaults(handler=run, render=_render)


def _render(summary: dict[str, Any]) -> str:
    from pipelines.local import render

    return render(summary)


def finish(record: dict[str, Any]) -> dict[str, Any]:
    """The summary of a finished run; an error (JSON kept) when it did not succeed.

    Exit 2 when a task refused its input (it exited with the bad-input code, see
    cnai.engine.badinput), else exit 1.
    """
    from cnai.errors import CnaiError, UsageError
    from pipelines.local import summarize

    summary = summarize(record)
    if record["phase"] != "Succeeded":
        message = (
            f"run {record['run_id']} {record['phase']}: {record.get('message') or 'see cnai runs'}"
        )
        if any(n.get("bad_input") for n in record.get("tasks") or []):
            raise UsageError(message, data=summary)
        raise CnaiError(message, data=summary)
    return summary


def run(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: compile (or read ``--file``), run, summarize.

    For the built-in pipeline the task zygote starts first, so that its imports run
    while this process compiles the template and reads git (see cnai.engine.zygote).
    """
    from cnai.engine.zygote import start_zygote
    from pipelines.retrain import PRELOAD

    zygote = None if args.cold or args.file else start_zygote(PRELOAD)
    try:
        return _run(args, ctx, zygote)
    finally:
        if zygote is not None:
            zygote.close()


def _run(args: argparse.Namespace, ctx: Context, zygote: Any) -> dict[str, Any]:
    from cnai.engine.limits import limits_for
    from cnai.engine.runs import parse_parameters, start_run
    from cnai.engine.spec import load_document
    from cnai.engine.view import RunView
    from cnai.errors import UsageError
    from pipelines.local import compiled_template, git_defaults
    from pipelines.retrain import PRELOAD

    settings = ctx.settings
    parameters = parse_parameters(args.parameters)
    limits = limits_for(settings)
    if args.file:
        path = Path(args.file)
        try:
            with open(path, "rb") as handle:  # bounded: --file /dev/zero must not hang
                data = handle.read(limits.max_document_bytes + 1)
            text = data.decode("utf-8")
        except OSError as exc:
            raise UsageError(f"--file {path}: cannot read ({exc})") from exc
        except UnicodeDecodeError as exc:
            raise UsageError(f"--file {path}: not UTF-8 text ({exc.reason})") from None
        doc, preload, source = load_document(text, f"--file {path}", limits), [], str(path)
    else:
        doc = load_document(compiled_template(settings), "cnai-retrain", limits)
        preload, source = PRELOAD, "cnai-retrain"
        for key, value in git_defaults(Path.cwd(), settings.home).items():
            parameters.setdefault(key, value)
    record = start_run(
        settings,
        doc,
        parameters,
        run_id=args.run_id,
        view=RunView(quiet=ctx.progress.quiet),
        preload=preload,
        warm=not args.cold,
        source=source,
        zygote=zygote,
    )
    return finish(record)
