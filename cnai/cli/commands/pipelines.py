"""``cnai pipelines``: the project's pipelines (``[tool.cnai] pipelines``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnai.cli.main import Context


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``pipelines`` command."""
    parser = subparsers.add_parser(
        "pipelines",
        parents=[common],
        help="list the project's pipelines: name, reference, template name, description",
        description="List the pipelines of the project ([tool.cnai] pipelines of the "
        "pyproject.toml in this folder or above, or of $CNAI_PROJECT). Each one is "
        "imported and checked to be a cnai.argo.pipeline.Pipeline.",
    )
    parser.set_defaults(handler=run, render=_render)


def _render(data: dict[str, Any]) -> str:
    if not data["pipelines"]:
        return "no pipelines (no project found, or its [tool.cnai] pipelines is empty)"
    rows = [("NAME", "REF", "TEMPLATE", "DESCRIPTION")]
    for p in data["pipelines"]:
        shown = p["name"] + (" (default)" if p["default"] else "")
        rows.append((shown, p["ref"], p["template"], p["description"]))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip()
        for r in rows
    )


def run(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: resolve every pipeline of the project."""
    from cnai.project import project_pipelines

    project = ctx.project
    resolved = project_pipelines(project)
    default = project.default_pipeline if project else None
    if project and default is None and len(project.pipelines) == 1:
        default = next(iter(project.pipelines))
    return {
        "project": str(project.root) if project else None,
        "default": default,
        "pipelines": [
            {
                "name": name,
                "ref": project.pipelines[name] if project else "",
                "template": pipeline.name,
                "description": pipeline.description,
                "default": name == default,
            }
            for name, pipeline in resolved.items()
        ],
    }
