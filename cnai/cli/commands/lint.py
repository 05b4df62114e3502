"""``cnai lint FILE...``: offline checks of Argo Workflow/WorkflowTemplate YAML."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnai.cli.main import Context


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``lint`` command."""
    parser = subparsers.add_parser(
        "lint",
        parents=[common],
        help="check Argo YAML offline: Hera round-trip, references, DAG, schemas",
        description="Strict round-trip through Hera's models, semantic checks and the "
        "upstream Argo/KubeRay schemas (from --schemas, $CNAI_SHARED_SCHEMAS or "
        "../shared/schemas when present). Exit 2 listing every problem with its path.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML files or folders")
    parser.add_argument("--schemas", help="folder of upstream schemas (default: auto)")
    parser.set_defaults(handler=run)


def default_schemas_dir() -> Path | None:
    """$CNAI_SHARED_SCHEMAS, else ../shared/schemas next to the checkout, if present."""
    candidates = [os.environ.get("CNAI_SHARED_SCHEMAS")]
    repo = Path(__file__).resolve().parents[3]
    candidates += [
        str(repo.parent / "shared" / "schemas"),
        str(Path.cwd().parent / "shared" / "schemas"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def run(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: lint every file; UsageError (exit 2) listing the problems."""
    from cnai.errors import UsageError
    from cnai.lint import lint_text

    schemas = Path(args.schemas) if args.schemas else default_schemas_dir()
    if args.schemas and not schemas.is_dir():  # type: ignore[union-attr]
        raise UsageError(f"--schemas {args.schemas}: not a folder")
    files: list[Path] = []
    for name in args.files:
        path = Path(name)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{name}: no such file")
    problems = []
    for path in files:
        problems += lint_text(path.read_text(), str(path), schemas)
    result = {
        "files": [str(f) for f in files],
        "schemas": str(schemas) if schemas else None,
        "problems": [str(p) for p in problems],
    }
    if problems:
        listed = "\n".join(str(p) for p in problems)
        raise UsageError(f"{len(problems)} problem(s):\n{listed}", data=result)
    return result
