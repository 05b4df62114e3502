"""``cnai lint [FILE...] [--chart DIR [--set K=V]...]``: strict offline checks by kind."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnai.cli.main import Context
    from cnai.lint import Problem


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``lint`` command."""
    parser = subparsers.add_parser(
        "lint",
        parents=[common],
        help="check Kubernetes/Argo YAML or a rendered Helm chart offline, strictly by kind",
        description="Validate every object by kind against schemas the project installs: "
        "Argo Workflows/Events kinds against strict schemas derived from Hera's models "
        "(plus references, DAG and memoize checks for workflows), RayJob against cnai's "
        "KubeRay v1.7 subset, other kinds against Kubernetes 1.35 (kubernetes-validate, "
        "strict). --chart renders a chart with the real helm first. Unknown fields are "
        "errors. Exit 2 listing every problem with its file and field path.",
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="YAML files or folders")
    parser.add_argument("--chart", help="Helm chart folder to render with `helm template`")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="chart value for --chart (repeatable, as helm's --set)",
    )
    parser.add_argument(
        "--values",
        action="append",
        default=[],
        metavar="FILE",
        help="values file for --chart (repeatable, as helm's --values)",
    )
    parser.add_argument("--namespace", help="release namespace for --chart")
    parser.add_argument(
        "--schemas",
        help="also validate against the upstream schema files in this folder "
        "(argo-workflows-v4.1.schema.json, argo-events-v1.9.schema.json, "
        "kuberay-v1.7-rayjob-crd.yaml): a cross-check, off by default",
    )
    parser.set_defaults(handler=run)


def _files(names: list[str]) -> list[Path]:
    from cnai.errors import UsageError

    files: list[Path] = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{name}: no such file")
    return files


def _chart_problems(args: argparse.Namespace, schemas: Path | None) -> tuple[int, list[Problem]]:
    import yaml

    from cnai.lint import Problem, lint_document
    from cnai.lint.helm import render

    chart = Path(args.chart)
    objects = render(chart, args.sets, [Path(v) for v in args.values], args.namespace)
    problems: list[Problem] = []
    for item in objects:
        doc = item.doc
        name = (doc.get("metadata") or {}).get("name") if isinstance(doc, dict) else None
        label = f"{chart}: {item.template}"
        if isinstance(doc, dict):
            label += f" {doc.get('kind')}/{name}"
        if isinstance(doc, yaml.YAMLError):
            problems.append(Problem(label, "(yaml)", f"not valid YAML: {doc}"))
            continue
        problems += lint_document(doc, label, schemas)
    return len(objects), problems


def run(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler: lint every file and the rendered chart; UsageError (exit 2) listing problems."""
    from cnai.errors import CnaiError, UsageError
    from cnai.lint import lint_text

    if not args.files and not args.chart:
        raise UsageError("lint: give YAML files/folders, --chart DIR, or both")
    if (args.sets or args.values or args.namespace) and not args.chart:
        raise UsageError("--set/--values/--namespace: only apply with --chart DIR")
    schemas = Path(args.schemas) if args.schemas else None
    if schemas is not None and not schemas.is_dir():
        raise UsageError(f"--schemas {args.schemas}: not a folder")
    files = _files(args.files)
    problems = []
    for path in files:
        problems += lint_text(path.read_text(), str(path), schemas)
    result: dict[str, Any] = {
        "files": [str(f) for f in files],
        "chart": args.chart,
        "chart_objects": 0,
        "schemas": str(schemas) if schemas else None,
    }
    if args.chart:
        try:
            result["chart_objects"], chart_problems = _chart_problems(args, schemas)
        except CnaiError as exc:  # helm missing (exit 1) or the chart does not render (2)
            raise type(exc)(str(exc), data={**result, "error": str(exc)}) from exc
        problems += chart_problems
    result["problems"] = [str(p) for p in problems]
    if problems:
        listed = "\n".join(str(p) for p in problems)
        raise UsageError(f"{len(problems)} problem(s):\n{listed}", data=result)
    return result
