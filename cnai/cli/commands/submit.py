"""``cnai submit``: put the pipeline on an Argo server and start a run there."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from cnai.cli.commands.run import add_parameter_option

if TYPE_CHECKING:
    from cnai.cli.main import Context


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``submit`` command."""
    parser = subparsers.add_parser(
        "submit",
        parents=[common],
        help="create/update the cnai-retrain WorkflowTemplate on Argo and submit a run",
        description="Compile the pipeline, create or update WorkflowTemplate cnai-retrain "
        "through the Argo server API (Hera's WorkflowsService) and submit a Workflow from "
        "it. The token comes from ARGO_TOKEN ('Bearer ...' or the bare token). A template the "
        "cnai-pipeline Helm chart installed is kept as it is (Helm owns it).",
    )
    parser.add_argument(
        "--argo-server",
        help="Argo server URL (default: $ARGO_SERVER, http or https by $ARGO_SECURE when it "
        "has no scheme, else http://localhost:2746, the platform's kind NodePort)",
    )
    parser.add_argument("--namespace", help="namespace (default: $ARGO_NAMESPACE or cnai)")
    parser.add_argument("--image", help="pipeline image (default: the compiled default)")
    parser.add_argument("--tag", help="pipeline image tag")
    parser.add_argument(
        "--insecure-skip-verify", action="store_true", help="do not verify the server's TLS"
    )
    add_parameter_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: compile, upsert the template, submit."""
    from cnai.engine.runs import parse_parameters
    from pipelines.local import pipeline_options
    from pipelines.retrain import TEMPLATE_NAME, compile_manifests
    from pipelines.submit import DEFAULT_NAMESPACE, resolve_server, submit

    image, tag = pipeline_options(ctx.settings)
    manifests = compile_manifests(args.image or image, args.tag or tag)
    server = resolve_server(
        args.argo_server, os.environ.get("ARGO_SERVER"), os.environ.get("ARGO_SECURE")
    )
    with ctx.progress.status(f"submitting {TEMPLATE_NAME} to {server}"):
        return submit(
            manifests[f"{TEMPLATE_NAME}.yaml"],
            server,
            args.namespace or os.environ.get("ARGO_NAMESPACE") or DEFAULT_NAMESPACE,
            parse_parameters(args.parameters),
            os.environ.get("ARGO_TOKEN") or None,
            verify_ssl=not args.insecure_skip_verify,
        )
