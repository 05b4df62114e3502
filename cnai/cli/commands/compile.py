"""``cnai compile``: write a project pipeline's Argo manifests as YAML."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnai.cli.pipelineopt import add_pipeline_option, selected_pipeline

if TYPE_CHECKING:
    from cnai.cli.main import Context


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``compile`` command."""
    parser = subparsers.add_parser(
        "compile",
        parents=[common],
        help="write a pipeline's WorkflowTemplate (Argo YAML) compiled from Hera",
    )
    add_pipeline_option(parser)
    parser.add_argument("--out", help="folder to write into (default: print to stdout)")
    parser.add_argument(
        "--image", help="pipeline image (default: the configuration's pipeline.image)"
    )
    parser.add_argument(
        "--tag", help="pipeline image tag (default: the configuration's pipeline.tag)"
    )
    parser.set_defaults(handler=run, render=_render)


def _render(data: dict[str, Any]) -> str:
    if "yaml" in data:
        return str(data["yaml"]).rstrip("\n")
    return "\n".join(f"wrote {path}" for path in data["files"])


def run(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: compile and write (or print) every manifest."""
    from cnai.argo.platform import platform_for, with_image
    from cnai.errors import UsageError

    pipeline = selected_pipeline(args, ctx)
    manifests = pipeline.manifests(with_image(platform_for(ctx.settings), args.image, args.tag))
    if not args.out:
        return {"yaml": "---\n".join(manifests.values()), "files": []}
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in manifests.items():
        (out / name).write_text(text)
        written.append(str(out / name))
    return {"files": written}
