"""``cnai compile``: write the pipeline's Argo manifests as YAML."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnai.cli.main import Context


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``compile`` command."""
    parser = subparsers.add_parser(
        "compile",
        parents=[common],
        help="write the cnai-retrain WorkflowTemplate (Argo YAML) compiled from Hera",
    )
    parser.add_argument("--out", help="folder to write into (default: print to stdout)")
    parser.add_argument("--image", help="pipeline image (default: ghcr.io/cnai-dev/cnai-pipeline)")
    parser.add_argument("--tag", help="pipeline image tag (default: the cnai version)")
    parser.set_defaults(handler=run, render=_render)


def _render(data: dict[str, Any]) -> str:
    if "yaml" in data:
        return str(data["yaml"]).rstrip("\n")
    return "\n".join(f"wrote {path}" for path in data["files"])


def run(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: compile and write (or print) every manifest."""
    from cnai.errors import UsageError
    from pipelines.local import pipeline_options
    from pipelines.retrain import compile_manifests

    image, tag = pipeline_options(ctx.settings)
    manifests = compile_manifests(args.image or image, args.tag or tag)
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
