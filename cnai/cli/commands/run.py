"""``cnai run``: compile a project pipeline and execute the compiled YAML locally."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnai.cli.pipelineopt import add_pipeline_option, selected_pipeline

if TYPE_CHECKING:
    from cnai.argo.pipeline import Pipeline
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
        help="run a pipeline of the project locally (default: its default-pipeline)",
        description="Compile the pipeline's WorkflowTemplate (--pipeline, default: the "
        "project's default-pipeline) and execute the compiled Argo YAML on this machine "
        "(DAG, parameters, when, retries, memoization, exit handler; RayJobs on one local "
        "Ray runtime). The run is recorded under <home>/runs/<run-id>/; see `cnai runs`.",
    )
    add_pipeline_option(parser)
    add_parameter_option(parser)
    parser.add_argument(
        "--run-id", help="id for the run (default: <pipeline template name>-<random>)"
    )
    parser.add_argument(
        "--file",
        help="execute this Workflow/WorkflowTemplate YAML instead of a project pipeline",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="start every task in a fresh interpreter instead of forking a warm one",
    )
    parser.set_defaults(handler=run, render=_render)


def _render(summary: dict[str, Any]) -> str:
    from cnai.engine.summary import render

    return render(summary)


def finish(record: dict[str, Any]) -> dict[str, Any]:
    """The summary of a finished run; an error (JSON kept) when it did not succeed.

    Exit 2 when a task refused its input (it exited with the bad-input code, see
    cnai.engine.badinput), else exit 1.
    """
    from cnai.engine.summary import summarize
    from cnai.errors import CnaiError, UsageError

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

    For a project pipeline the task zygote starts as soon as the pipeline is resolved
    (its ``preload``), so that its imports run while this process compiles the template
    and reads git (see cnai.engine.zygote).
    """
    from cnai.engine.zygote import start_zygote

    pipeline = None if args.file else selected_pipeline(args, ctx)
    zygote = None if args.cold or pipeline is None else start_zygote(list(pipeline.preload))
    try:
        return _run(args, ctx, pipeline, zygote)
    finally:
        if zygote is not None:
            zygote.close()


def _run(
    args: argparse.Namespace, ctx: Context, pipeline: Pipeline | None, zygote: Any
) -> dict[str, Any]:
    from cnai.argo.platform import platform_for
    from cnai.engine.compiled import compiled_template
    from cnai.engine.limits import limits_for
    from cnai.engine.runs import parse_parameters, start_run
    from cnai.engine.spec import load_document
    from cnai.engine.view import RunView
    from cnai.errors import UsageError
    from cnai.gitinfo import git_defaults

    settings = ctx.settings
    parameters = parse_parameters(args.parameters)
    limits = limits_for(settings)
    if pipeline is None:
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
        text = compiled_template(pipeline, platform_for(settings), settings.runs_dir)
        doc = load_document(text, pipeline.name, limits)
        preload, source = list(pipeline.preload), pipeline.name
        declared = {
            str(p.get("name"))
            for p in ((doc.get("spec") or {}).get("arguments") or {}).get("parameters") or []
        }
        for key, value in git_defaults(Path.cwd(), settings.home).items():
            if key in declared:  # a pipeline without git provenance parameters gets none
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
