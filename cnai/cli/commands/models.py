"""``cnai models``: list registered models and show versions, aliases, tags and metrics."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnai.cli.main import Context


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``models list`` and ``models show``."""
    parser = subparsers.add_parser(
        "models",
        parents=[common],
        help="list registered models; show versions, aliases, lineage tags and metrics",
        description="Read the MLflow model registry.",
    )
    actions = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", parents=[common], help="every registered model with its aliases"
    )
    listing.set_defaults(handler=run_list, render=render_list)
    show = actions.add_parser(
        "show",
        parents=[common],
        help="one model's versions, or one version (NAME@ALIAS or NAME/VERSION)",
    )
    show.add_argument("model", metavar="NAME[@ALIAS|/VERSION]")
    show.set_defaults(handler=run_show, render=render_show)


def _view(ctx: Context) -> Any:
    from cnai.registry.query import RegistryView

    return RegistryView.open(ctx.settings)


def run_list(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler of ``models list``."""
    from cnai.registry.retry import mlflow_http_policy

    with mlflow_http_policy():
        result: dict[str, Any] = _view(ctx).list_models()
    return result


def run_show(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """Handler of ``models show``."""
    from cnai.registry.retry import mlflow_http_policy

    with mlflow_http_policy():
        result: dict[str, Any] = _view(ctx).show(args.model)
    return result


def _aliases(aliases: dict[str, int] | list[str]) -> str:
    if isinstance(aliases, dict):
        return ", ".join(f"{a}=v{v}" for a, v in aliases.items()) or "-"
    return ", ".join(aliases) or "-"


def render_list(result: dict[str, Any]) -> str:
    """One line per model."""
    models = result["models"]
    if not models:
        return "no registered models (run `cnai register --run-id ID`)"
    width = max(len(m["name"]) for m in models)
    lines = [f"{'NAME':<{width}}  VERSIONS  LATEST  ALIASES"]
    for m in models:
        latest = f"v{m['latest_version']}" if m["latest_version"] else "-"
        lines.append(
            f"{m['name']:<{width}}  {m['versions']:>8}  {latest:>6}  {_aliases(m['aliases'])}"
        )
    return "\n".join(lines)


def _version_lines(v: dict[str, Any]) -> list[str]:
    metrics = "  ".join(f"{k}={val:.4g}" for k, val in v["metrics"].items()) or "-"
    lines = [
        f"v{v['version']}  aliases: {_aliases(v['aliases'])}  created: {v['created']}"
        f"  registration: {v['registration']}",
        f"  gate: {'promoted' if v['promoted'] else 'not promoted'} - {v['reason'] or '-'}",
        f"  metrics: {metrics}",
    ]
    for key, value in v["lineage"].items():
        lines.append(f"  {key}: {value}")
    return lines


def render_show(result: dict[str, Any]) -> str:
    """A model's versions, or one version with all its tags."""
    if "versions" in result:
        lines = [f"{result['name']}  aliases: {_aliases(result['aliases'])}"]
        for version in reversed(result["versions"]):
            lines += _version_lines(version)
        return "\n".join(lines)
    lines = [f"{result['name']} " + _version_lines(result)[0], *_version_lines(result)[1:]]
    lines.append(f"  source: {result['source']}")
    card = result["tags"].get("cnai.model_card")
    if card:
        lines.append(f"  model card: {card} (artifact of run {result['lineage'].get('run_id')})")
    run_metrics = {k: round(v, 4) for k, v in result.get("run_metrics", {}).items() if "/" not in k}
    if run_metrics:
        lines.append(f"  run metrics: {json.dumps(run_metrics)}")
    other = {k: v for k, v in result["tags"].items() if not k.startswith("cnai.")}
    if other:
        lines.append(f"  other tags: {json.dumps(other)}")
    return "\n".join(lines)
