"""``cnai submit``: put the pipeline on an Argo server and start a run there."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from cnai.cli.commands.run import add_parameter_option
from cnai.cli.pipelineopt import add_pipeline_option, selected_pipeline

if TYPE_CHECKING:
    from cnai.cli.main import Context


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``submit`` command."""
    parser = subparsers.add_parser(
        "submit",
        parents=[common],
        help="create/update a pipeline's WorkflowTemplate on Argo and submit a run",
        description="Compile the pipeline (--pipeline, default: the project's "
        "default-pipeline), create or update its WorkflowTemplate "
        "through the Argo server API (Hera's WorkflowsService) and submit a Workflow from "
        "it. The token comes from ARGO_TOKEN ('Bearer ...' or the bare token). A template the "
        "cnai-pipeline Helm chart installed is kept as it is (Helm owns it).",
    )
    add_pipeline_option(parser)
    parser.add_argument(
        "--argo-server",
        help="Argo server URL (default: $ARGO_SERVER, http or https by $ARGO_SECURE when it "
        "has no scheme, else http://localhost:2746, the platform's kind NodePort)",
    )
    parser.add_argument("--namespace", help="namespace (default: $ARGO_NAMESPACE or cnai)")
    parser.add_argument(
        "--image", help="pipeline image (default: the configuration's pipeline.image)"
    )
    parser.add_argument(
        "--tag", help="pipeline image tag (default: the configuration's pipeline.tag)"
    )
    parser.add_argument(
        "--insecure-skip-verify", action="store_true", help="do not verify the server's TLS"
    )
    add_parameter_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: compile, upsert the template, submit."""
    from cnai.argo.platform import platform_for, with_image
    from cnai.argo.submit import DEFAULT_NAMESPACE, resolve_server, submit
    from cnai.engine.runs import parse_parameters

    pipeline = selected_pipeline(args, ctx)
    manifests = pipeline.manifests(with_image(platform_for(ctx.settings), args.image, args.tag))
    server = resolve_server(
        args.argo_server, os.environ.get("ARGO_SERVER"), os.environ.get("ARGO_SECURE")
    )
    with ctx.progress.status(f"submitting {pipeline.name} to {server}"):
        return submit(
            manifests[f"{pipeline.name}.yaml"],
            server,
            args.namespace or os.environ.get("ARGO_NAMESPACE") or DEFAULT_NAMESPACE,
            parse_parameters(args.parameters),
            os.environ.get("ARGO_TOKEN") or None,
            verify_ssl=not args.insecure_skip_verify,
        )
