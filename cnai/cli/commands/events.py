"""``cnai events``: the local Argo Events gateway, its git hook, and a YAML check.

- ``cnai events serve``: serve the EventSources' webhooks on 127.0.0.1 and start
  ``cnai run`` for every event the Sensor accepts (see cnai/events/server.py);
- ``cnai events install-hook --repo PATH``: make ``git push`` to PATH deliver to it;
- ``cnai events flush --repo PATH``: resend deliveries that hook saved while the
  gateway was down;
- ``cnai events check``: load events/*.yaml as the gateway would and validate every
  object strictly by kind (as ``cnai lint`` does); ``--schema FILE`` also validates
  against an upstream argo-events JSON schema file.

Settings come from flags, then the ``events`` section of the config file
(``dir``, ``host``, ``port``, ``launcher``, ``params``, and the gateway's limits, see
cnai/events/limits.py and docs/limits.md), then defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnai.errors import UsageError
from cnai.events.limits import CONFIG_KEYS as LIMIT_KEYS

if TYPE_CHECKING:
    from cnai.cli.main import Context
    from cnai.events.spec import EventsSpec

CONFIG_KEYS = {"dir", "host", "port", "launcher", "params"} | LIMIT_KEYS
DEFAULT_HOST = "127.0.0.1"
FD_RESERVE = 128
"""File descriptors kept for the database, logs and runs beside the connection cap."""


def _port(text: str) -> int:
    """argparse type of ``--port``: a TCP port number, 0 for any free one."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (0-65535)") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0-65535)")
    return value


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``events`` and its subcommands."""
    parser = subparsers.add_parser(
        "events",
        parents=[common],
        help="local Argo Events gateway: webhooks -> Sensor filters -> cnai run",
        description="Serve the Argo Events webhooks of events/*.yaml locally, install a git "
        "hook that delivers pushes to them, or check the YAML.",
    )
    sub = parser.add_subparsers(dest="events_command", metavar="SUBCOMMAND", required=True)

    serve = sub.add_parser(
        "serve",
        parents=[common],
        help="serve the webhook endpoints and run the pipeline for accepted events",
        description="Serve the EventSources' webhook endpoints on one local port, apply the "
        "Sensor's filters and parameter mapping from the same YAML, and run each accepted "
        "event through the local engine in the background (one run at a time per branch). "
        "Secrets: $CNAI_GITHUB_WEBHOOK_SECRET and $CNAI_DATA_WEBHOOK_TOKEN.",
    )
    _add_events_dir(serve)
    serve.add_argument("--host", help=f"address to bind (default {DEFAULT_HOST})")
    serve.add_argument(
        "--port", type=_port, help="port (default: the GitHub EventSource's port; 0: any free)"
    )
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="start even when a webhook secret is not set, accepting unauthenticated deliveries",
    )
    serve.add_argument(
        "--launcher",
        help="command that starts a run, given -p NAME=VALUE... --run-id ID --json "
        "(default: cnai --home HOME run --pipeline NAME, NAME the project pipeline whose "
        "WorkflowTemplate the Sensor's trigger submits)",
    )
    serve.add_argument(
        "--pipeline",
        metavar="REF",
        help="evaluate the Sensor that submits this project pipeline's WorkflowTemplate "
        "(a [tool.cnai] pipelines name or module:object; default: the first Sensor by file "
        "name)",
    )
    serve.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="workflow parameter added to every run (e.g. epochs=1); repeatable",
    )
    serve.set_defaults(handler=run_serve, render=_render_serve)

    hook = sub.add_parser(
        "install-hook",
        parents=[common],
        help="install a post-receive hook so `git push` to a repository delivers to the gateway",
        description="Install a post-receive hook into a git repository (bare or not). Each "
        "push then posts a signed GitHub-shaped push payload to the gateway; the secret is "
        "read at push time from $CNAI_GITHUB_WEBHOOK_SECRET or --secret-file.",
    )
    _add_events_dir(hook)
    hook.add_argument("--repo", required=True, help="path of the git repository")
    hook.add_argument("--url", help="gateway URL (default: http://127.0.0.1:PORT/push)")
    hook.add_argument(
        "--repository",
        help="OWNER/NAME reported in payloads (default: the GitHub EventSource's repository)",
    )
    hook.add_argument("--secret-file", help="file holding the webhook secret (path is stored)")
    hook.add_argument("--force", action="store_true", help="replace an existing post-receive")
    hook.add_argument(
        "--spool-limit",
        type=int,
        default=100,
        help="deliveries kept for resending while the gateway is down (default 100)",
    )
    hook.set_defaults(handler=run_install_hook)

    flush = sub.add_parser(
        "flush",
        parents=[common],
        help="resend the push deliveries a git hook saved while the gateway was down",
        description="Resend, oldest first, the deliveries the post-receive hook of --repo "
        "saved because the gateway was unreachable or busy. The secret comes from "
        "$CNAI_GITHUB_WEBHOOK_SECRET or --secret-file. Exit 1 when some are still pending.",
    )
    flush.add_argument("--repo", required=True, help="path of the git repository")
    flush.add_argument("--secret-file", help="file holding the webhook secret")
    flush.set_defaults(handler=run_flush)

    check = sub.add_parser(
        "check",
        parents=[common],
        help="check events/*.yaml: gateway load, then strict validation by kind",
    )
    _add_events_dir(check)
    check.add_argument(
        "--schema", help="also validate against this upstream argo-events JSON schema file"
    )
    check.set_defaults(handler=run_check)


def _add_events_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events-dir", help="folder of the Argo Events YAML (default: events/)")


def _config(ctx: Context) -> dict[str, Any]:
    raw = ctx.settings.sections.get("events") or {}
    if not isinstance(raw, dict):
        raise UsageError("config events: must be a mapping")
    unknown = sorted(set(raw) - CONFIG_KEYS)
    if unknown:
        raise UsageError(f"config events.{unknown[0]}: unknown (known: {sorted(CONFIG_KEYS)})")
    return raw


def _spec(args: argparse.Namespace, config: dict[str, Any]) -> EventsSpec:
    from cnai.events.spec import load_spec

    folder = args.events_dir or config.get("dir")
    template = None
    if getattr(args, "pipeline", None):
        from cnai.project import find_project, resolve_pipeline

        template = resolve_pipeline(args.pipeline, find_project()).name
    return load_spec(Path(folder) if folder else None, template)


def _github_port(spec: EventsSpec) -> int:
    github = next((r for r in spec.routes if r.kind == "github"), None)
    return github.port if github and github.port else 12000


def _parse_params(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--param {item!r}: expected NAME=VALUE")
        out[name] = value
    return out


def _trigger_pipeline(template: str, ctx: Context) -> str:
    """The project pipeline the Sensor's trigger submits (by WorkflowTemplate name)."""
    from cnai.project import pipeline_for_template

    project = ctx.project
    name = pipeline_for_template(template, project)
    if name is None:
        where = f"the pipelines of {project.pyproject}" if project else "no project was found"
        raise UsageError(
            f"events: the Sensor's trigger submits WorkflowTemplate {template!r}, which is not "
            f"the template of any project pipeline ({where}); add it to [tool.cnai] pipelines "
            "or pass --launcher"
        )
    return name


def run_serve(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: run the gateway until SIGINT/SIGTERM."""
    import asyncio
    import signal

    from cnai.events.limits import GatewayLimits
    from cnai.events.lock import GatewayLock
    from cnai.events.runner import default_launcher
    from cnai.events.server import GatewayConfig, missing_secrets, serve

    config = _config(ctx)
    limits = GatewayLimits.from_config(config)
    spec = _spec(args, config)
    secrets = {r.secret_env: os.environ.get(r.secret_env, "") for r in spec.routes if r.secret_env}
    missing = missing_secrets(spec, secrets)
    if missing and not args.insecure:
        raise UsageError(
            f"{missing[0]} is not set: the gateway will not accept unauthenticated webhooks "
            "(set it, or pass --insecure for a throwaway local setup)"
        )
    launcher_raw = args.launcher or config.get("launcher")
    if isinstance(launcher_raw, list):
        launcher = [str(x) for x in launcher_raw]
    elif launcher_raw:
        launcher = shlex.split(str(launcher_raw))
    else:
        launcher = default_launcher(
            ctx.home, _trigger_pipeline(spec.trigger.workflow_template, ctx)
        )
    if not launcher:
        raise UsageError("--launcher: empty command")
    params = {str(k): str(v) for k, v in (config.get("params") or {}).items()}
    params.update(_parse_params(args.param))
    host = args.host or config.get("host") or DEFAULT_HOST
    port = args.port if args.port is not None else int(config.get("port") or _github_port(spec))
    if not 0 <= port <= 65535:
        raise UsageError(f"config events.port: {port} is not a port (0-65535)")
    _raise_fd_limit(limits.max_connections)
    state_dir = ctx.home / "events"
    gateway_config = GatewayConfig(
        spec=spec,
        state_dir=state_dir,
        launcher=launcher,
        secrets=secrets,
        insecure=args.insecure,
        extra_arguments=params,
        limits=limits,
    )
    state_file = state_dir / "gateway.json"
    lock = GatewayLock(state_dir)
    lock.acquire()
    bound: dict[str, Any] = {}

    def ready(bound_host: str, bound_port: int) -> None:
        url = f"http://{bound_host}:{bound_port}"
        bound.update(url=url, port=bound_port)
        endpoints = [r.endpoint for r in spec.routes]
        state_file.write_text(
            json.dumps({"url": url, "port": bound_port, "pid": os.getpid(), "endpoints": endpoints})
        )
        if missing:
            ctx.progress.info(f"WARNING --insecure: {', '.join(missing)} not set; no auth there")
        ctx.progress.info(f"cnai events gateway listening on {url} ({', '.join(endpoints)})")
        for schedule in spec.schedules:
            ctx.progress.info(f"not scheduled locally (use cron + the data webhook): {schedule}")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(gateway_config, host, port, ready=ready, stop=stop)

    try:
        asyncio.run(main())
    except OSError as exc:
        raise UsageError(f"--port {port}: cannot listen on {host}: {exc.strerror}") from exc
    finally:
        state_file.unlink(missing_ok=True)
        lock.release()
    from cnai.events.store import EventStore

    store = EventStore(state_dir)
    counts = store.counts()
    store.close()
    return {"url": bound.get("url"), "stopped": True, "runs": counts}


def _raise_fd_limit(max_connections: int) -> None:
    """Make room for ``max_connections`` plus a reserve of file descriptors, or refuse."""
    import resource

    needed = max_connections + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise UsageError(
            f"config events.max_connections {max_connections}: needs {needed} open files, "
            f"the limit is {soft} (lower it or raise ulimit -n)"
        )


def _render_serve(data: dict[str, Any]) -> str:
    return f"gateway stopped; runs: {json.dumps(data['runs'])}"


def run_install_hook(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: write the post-receive hook."""
    from cnai.events.hook import install_hook

    config = _config(ctx)
    spec = _spec(args, config)
    github = next((r for r in spec.routes if r.kind == "github"), None)
    if github is None:
        raise UsageError(f"{spec.directory}: no GitHub EventSource to deliver pushes to")
    port = int(config.get("port") or _github_port(spec))
    url = args.url or f"http://127.0.0.1:{port}{github.endpoint}"
    repository = args.repository or spec.repository
    if not repository or "/" not in repository:
        raise UsageError("--repository: expected OWNER/NAME")
    secret_file = Path(args.secret_file) if args.secret_file else None
    if secret_file is not None and not secret_file.is_file():
        raise UsageError(f"--secret-file {secret_file}: no such file")
    hook = install_hook(
        Path(args.repo),
        url,
        repository,
        secret_file,
        force=args.force,
        spool_limit=args.spool_limit,
    )
    return {"hook": str(hook), "url": url, "repository": repository}


def run_flush(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: resend spooled push deliveries."""
    from cnai.errors import CnaiError
    from cnai.events.hook import SECRET_ENV, flush_spool

    repo = Path(args.repo)
    if not repo.exists():
        raise UsageError(f"--repo {repo}: no such folder")
    secret = os.environ.get(SECRET_ENV)
    if not secret and args.secret_file:
        try:
            secret = Path(args.secret_file).read_text().strip()
        except OSError as exc:
            raise UsageError(f"--secret-file {args.secret_file}: {exc.strerror}") from exc
    result = flush_spool(repo, secret)
    if result["left"]:
        raise CnaiError(
            f"{result['left']} deliveries still pending in {result['spool']} "
            "(gateway unreachable or busy)",
            data=result,
        )
    return result


def run_check(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: load the YAML like the gateway, then validate every object strictly."""
    from cnai.events.lint import lint_folder

    config = _config(ctx)
    spec = _spec(args, config)
    schema = Path(args.schema) if args.schema else None
    if schema is not None and not schema.is_file():
        raise UsageError(f"--schema {schema}: no such file")
    problems = lint_folder(spec.directory, schema)
    result = {
        "events_dir": str(spec.directory),
        "routes": [f"{r.method} {r.endpoint} -> {r.source}/{r.event}" for r in spec.routes],
        "dependencies": [d.name for d in spec.dependencies],
        "schema": str(schema) if schema else None,
        "problems": problems,
    }
    if problems:
        raise UsageError(f"{len(problems)} problem(s):\n" + "\n".join(problems), data=result)
    return result
