"""``cnai runs``: list, inspect, read logs of, retry and resubmit local runs."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from cnai.cli.commands.run import add_parameter_option
from cnai.cli.pipelineopt import add_pipeline_option

if TYPE_CHECKING:
    from cnai.cli.main import Context


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``runs`` and its sub-commands."""
    parser = subparsers.add_parser(
        "runs",
        parents=[common],
        help="list, show, log, retry and resubmit local pipeline runs (like the Argo UI)",
    )
    sub = parser.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", parents=[common], help="runs, newest first")
    listing.set_defaults(handler=list_runs, render=_render_list)
    show = sub.add_parser("show", parents=[common], help="one run: parameters and tasks")
    show.add_argument("run_id")
    show.set_defaults(handler=show_run, render=_render_summary)
    logs = sub.add_parser("logs", parents=[common], help="task logs of a run")
    logs.add_argument("run_id")
    logs.add_argument("task", nargs="?", help="one task (default: all, in order)")
    logs.set_defaults(handler=run_logs, render=lambda d: d["log"])
    retry = sub.add_parser(
        "retry", parents=[common], help="rerun the failed tasks of a Failed/Error run in place"
    )
    retry.add_argument("run_id")
    add_pipeline_option(retry)
    retry.set_defaults(handler=retry_run, render=_render_summary)
    resubmit = sub.add_parser(
        "resubmit", parents=[common], help="start a new run with the same spec and parameters"
    )
    resubmit.add_argument("run_id")
    resubmit.add_argument(
        "--memoized", action="store_true", help="reuse the old run's successful tasks"
    )
    resubmit.add_argument("--run-id", dest="new_run_id", help="id for the new run")
    add_pipeline_option(resubmit)
    add_parameter_option(resubmit)
    resubmit.set_defaults(handler=resubmit_run, render=_render_summary)


def _render_summary(summary: dict[str, Any]) -> str:
    from cnai.engine.summary import render

    return render(summary)


def _preload(args: argparse.Namespace, ctx: Context) -> list[str]:
    """What the zygote imports ahead of the tasks of the run being retried/resubmitted.

    ``--pipeline`` when given; else the project pipeline whose WorkflowTemplate the run
    was started from; else nothing (preloading only saves start-up time).
    """
    from cnai.cli.pipelineopt import selected_pipeline
    from cnai.engine.runs import store_for
    from cnai.project import pipeline_for_template, resolve_pipeline

    if args.pipeline:
        return list(selected_pipeline(args, ctx).preload)
    template = str(store_for(ctx.settings).load(args.run_id).get("workflow_template") or "")
    name = pipeline_for_template(template, ctx.project) if template else None
    return list(resolve_pipeline(name, ctx.project).preload) if name else []


def _render_list(data: dict[str, Any]) -> str:
    lines = [f"{'RUN':<28} {'PHASE':<10} {'STARTED':<20} DURATION"]
    for run in data["runs"]:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["started_at"] or 0))
        duration = run["duration_seconds"]
        shown = f"{duration:.1f}s" if duration is not None else "-"
        lines.append(f"{run['run_id']:<28} {run['phase']:<10} {started:<20} {shown}")
    return "\n".join(lines)


def list_runs(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: every run of the home."""
    from cnai.engine.runs import mark_stale, store_for

    runs = []
    records, corrupt = store_for(ctx.settings).scan()
    for bad in corrupt:
        ctx.progress.info(f"cnai: warning: skipped {bad['problem']}")
    for record in records:
        record = mark_stale(ctx.settings, record)
        runs.append(
            {
                "run_id": record["run_id"],
                "phase": record["phase"],
                "started_at": record.get("started_at"),
                "duration_seconds": record.get("duration_seconds"),
                "parameters": record.get("parameters", {}),
            }
        )
    return {"runs": runs, "corrupt": corrupt}


def show_run(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: one run's summary."""
    from cnai.engine.runs import mark_stale, store_for
    from cnai.engine.summary import summarize

    record = mark_stale(ctx.settings, store_for(ctx.settings).load(args.run_id))
    return summarize(record)


def run_logs(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: log text of one or all tasks."""
    from cnai.engine.runs import task_log

    return {
        "run_id": args.run_id,
        "task": args.task,
        "log": task_log(ctx.settings, args.run_id, args.task),
    }


def retry_run(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: retry in place."""
    from cnai.cli.commands.run import finish
    from cnai.engine.runs import retry_run as retry
    from cnai.engine.view import RunView

    preload = _preload(args, ctx)
    record = retry(ctx.settings, args.run_id, view=RunView(), preload=preload)
    return finish(record)


def resubmit_run(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: a new run from the old one's spec."""
    from cnai.cli.commands.run import finish
    from cnai.engine.runs import parse_parameters
    from cnai.engine.runs import resubmit_run as resubmit
    from cnai.engine.view import RunView

    preload = _preload(args, ctx)
    record = resubmit(
        ctx.settings,
        args.run_id,
        parse_parameters(args.parameters),
        memoized=args.memoized,
        new_run_id=args.new_run_id,
        view=RunView(),
        preload=preload,
    )
    return finish(record)
