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
    """The summary of a finished run; CnaiError (exit 1, JSON kept) when it did not succeed."""
    from cnai.errors import CnaiError
    from pipelines.local import summarize

    summary = summarize(record)
    if record["phase"] != "Succeeded":
        raise CnaiError(
            f"run {record['run_id']} {record['phase']}: {record.get('message') or 'see cnai runs'}",
            data=summary,
        )
    return summary


def run(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: compile (or read ``--file``), run, summarize."""
    from cnai.engine.runs import parse_parameters, start_run
    from cnai.engine.spec import load_document
    from cnai.engine.view import RunView
    from cnai.errors import UsageError
    from pipelines.local import compiled_template, git_defaults
    from pipelines.retrain import PRELOAD

    settings = ctx.settings
    parameters = parse_parameters(args.parameters)
    if args.file:
        path = Path(args.file)
        try:
            text = path.read_text()
        except OSError as exc:
            raise UsageError(f"--file {path}: cannot read ({exc})") from exc
        doc, preload, source = load_document(text, str(path)), [], str(path)
    else:
        doc = load_document(compiled_template(settings), "cnai-retrain")
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
    )
    return finish(record)
