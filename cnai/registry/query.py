"""What ``cnai models list`` and ``cnai models show`` report, read from the registry."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cnai.config import Settings
from cnai.errors import UsageError
from cnai.registry import lineage as lin
from cnai.registry import retry
from cnai.registry.lock import is_lock
from cnai.registry.tags import PROMOTED_TAG, REASON_TAG, STATUS_TAG, metrics_from_tags

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

# Version tags shown as lineage, in this order (label -> tag).
LINEAGE_FIELDS = {
    "run_id": lin.RUN_ID,
    "model_id": lin.MODEL_ID,
    "table": lin.TABLE,
    "snapshot_id": lin.SNAPSHOT_ID,
    "data_version": lin.DATA_VERSION,
    "git_sha": lin.GIT_SHA,
    "git_branch": lin.GIT_BRANCH,
    "trigger": lin.TRIGGER,
    "argo_workflow_name": lin.ARGO_WORKFLOW_NAME,
    "argo_workflow_uid": lin.ARGO_WORKFLOW_UID,
}

_NAME_FORBIDDEN = ("/", ":", "'", '"', "\\", "`")
"""Characters no registered model name holds here (MLflow refuses '/' and ':')."""
_SPEC = re.compile(r"^(?P<name>[^@]+?)(?:@(?P<alias>[^@/]+)|/(?P<version>\d+))?$")


def parse_model_spec(spec: str) -> tuple[str, str | None, str | None]:
    """``NAME``, ``NAME@ALIAS`` or ``NAME/VERSION`` -> (name, alias, version)."""
    match = _SPEC.match(spec.strip())
    if not match:
        raise UsageError(f"model {spec!r}: expected NAME, NAME@ALIAS or NAME/VERSION")
    bad = [c for c in _NAME_FORBIDDEN if c in match["name"]]
    if bad:
        raise UsageError(
            f"model {spec!r}: expected NAME, NAME@ALIAS or NAME/VERSION; a registered model "
            f"name has no {' '.join(repr(c) for c in _NAME_FORBIDDEN)} (found {bad[0]!r})"
        )
    return match["name"], match["alias"], match["version"]


def _iso(millis: int | None) -> str | None:
    if not millis:
        return None
    return datetime.fromtimestamp(millis / 1000, tz=UTC).isoformat(timespec="seconds")


class RegistryView:
    """Read-only views of registered models for the CLI."""

    def __init__(self, client: MlflowClient, store: str) -> None:
        self.client = client
        self.store = store

    @classmethod
    def open(cls, settings: Settings) -> RegistryView:
        """A view of the registry the settings point at."""
        from mlflow import MlflowClient

        from cnai.tracking import configure

        configure(settings)
        client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_registry_uri)
        return cls(client, settings.mlflow_registry_uri or settings.mlflow_tracking_uri)

    def _call(self, what: str, fn: Any) -> Any:
        return retry.call(what, fn, store=self.store)

    def list_models(self) -> dict[str, Any]:
        """Every registered model (locks hidden) with its aliases and latest version."""
        models = []
        token: str | None = None
        while True:
            page = self._call(
                "list registered models",
                lambda t=token: self.client.search_registered_models(max_results=200, page_token=t),
            )
            for model in page:
                if is_lock(model.name, dict(model.tags or {})):
                    continue
                versions = self._versions(model.name)
                latest = versions[-1] if versions else None
                models.append(
                    {
                        "name": model.name,
                        "versions": len(versions),
                        "latest_version": int(latest.version) if latest else None,
                        "aliases": {a: int(v) for a, v in sorted((model.aliases or {}).items())},
                        "updated": _iso(model.last_updated_timestamp),
                        "description": model.description or "",
                    }
                )
            token = page.token
            if not token:
                break
        return {"models": sorted(models, key=lambda m: m["name"])}

    def _versions(self, name: str) -> list[ModelVersion]:
        found = self._call(
            "search model versions",
            lambda: self.client.search_model_versions(f"name = '{name}'"),
        )
        return sorted(found, key=lambda v: int(v.version))

    def _model(self, name: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self._call(
                "read the registered model", lambda: self.client.get_registered_model(name)
            )
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
                raise UsageError(
                    f"model {name!r}: no such registered model (see `cnai models list`)"
                ) from exc
            if exc.error_code == "INVALID_PARAMETER_VALUE":
                raise UsageError(f"model {name!r}: {retry.first_line(exc)}") from exc
            raise

    def show(self, spec: str) -> dict[str, Any]:
        """One model with all its versions, or one version (``@ALIAS`` / ``/VERSION``)."""
        name, alias, version = parse_model_spec(spec)
        if is_lock(name):
            raise UsageError(f"model {name!r}: is a cnai registry lock, not a model")
        model = self._model(name)
        aliases = {a: str(v) for a, v in (model.aliases or {}).items()}
        if alias is not None:
            if alias not in aliases:
                known = ", ".join(sorted(aliases)) or "none"
                raise UsageError(f"model {spec!r}: no alias {alias!r} (aliases: {known})")
            version = aliases[alias]
        if version is not None:
            chosen = [v for v in self._versions(name) if str(v.version) == version]
            if not chosen:
                raise UsageError(f"model {spec!r}: no version {version} of {name!r}")
            return {"name": name, **self._describe(chosen[0], aliases, with_run=True)}
        return {
            "name": name,
            "description": model.description or "",
            "aliases": {a: int(v) for a, v in sorted(aliases.items())},
            "versions": [self._describe(v, aliases) for v in self._versions(name)],
        }

    def _describe(
        self, version: ModelVersion, aliases: dict[str, str], with_run: bool = False
    ) -> dict[str, Any]:
        tags = dict(version.tags or {})
        out: dict[str, Any] = {
            "version": int(version.version),
            "aliases": sorted(a for a, v in aliases.items() if v == str(version.version)),
            "created": _iso(version.creation_timestamp),
            "registration": tags.get(STATUS_TAG, "unknown"),
            "promoted": tags.get(PROMOTED_TAG) == "true",
            "reason": tags.get(REASON_TAG, ""),
            "lineage": {k: tags[t] for k, t in LINEAGE_FIELDS.items() if t in tags},
            "metrics": metrics_from_tags(tags),
            "source": version.source,
            "tags": dict(sorted(tags.items())),
        }
        if with_run and version.run_id:
            from mlflow.exceptions import MlflowException

            try:
                run = self._call("read the run", lambda: self.client.get_run(version.run_id))
                out["run_metrics"] = dict(sorted(run.data.metrics.items()))
            except MlflowException:
                out["run_metrics"] = {}
        return out
