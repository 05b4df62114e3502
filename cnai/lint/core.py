"""Kubernetes core kinds (ConfigMap, Secret, Role, Service, Ingress, Deployment...).

Validated strictly against the Kubernetes JSON schemas that PyPI's
``kubernetes-validate`` ships (``v1.35.0-local-strict``: the Kubernetes 1.35 API, the
version of the pinned kubectl, with ``additionalProperties: false``). Its file layout
and reference scheme are used as the library defines them; the validator is built
here because the library's ``validate()`` stops at the first error and re-reads the
1.5 MB definitions file for every document. Validators are cached per kind.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from cnai.lint.validation import drop_nulls, schema_problems

K8S_VERSION = "1.35.0"
"""The Kubernetes schema version (kubectl 1.35, installed by scripts/install_k8s_tools.py)."""
SCHEMA_DIR = f"kubernetes-json-schema/v{K8S_VERSION}-local-strict"
"""kubernetes-validate's folder of strict schemas for that version."""


class SchemaNotFoundError(LookupError):
    """kubernetes-validate ships no schema for this apiVersion and kind."""


def _read(name: str) -> Any:
    import importlib_resources

    ref = importlib_resources.files("kubernetes_validate").joinpath(f"{SCHEMA_DIR}/{name}")
    try:
        return json.loads(ref.read_text())
    except FileNotFoundError as exc:
        raise SchemaNotFoundError(name) from exc


@lru_cache(maxsize=1)
def registry() -> Any:
    """A ``referencing`` registry holding kubernetes-validate's 1.35 definitions."""
    from referencing import Registry, Resource

    return Resource.from_contents(_read("_definitions.json")) @ Registry()


def schema_file(api_version: str, kind: str) -> str:
    """kubernetes-validate's file name for a kind (``rbac.authorization.k8s.io/v1`` ->
    ``role-rbac-v1.json``), following its own naming rule."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"{kind.lower()}-{group_version}.json"


@lru_cache(maxsize=64)
def _validator(api_version: str, kind: str) -> Any:
    import jsonschema

    schema = _read(schema_file(api_version, kind))
    return jsonschema.Draft202012Validator(schema, registry=registry())


def has_schema(api_version: str, kind: str) -> bool:
    """Whether Kubernetes 1.35 defines ``kind`` in ``api_version``."""
    try:
        _validator(api_version, kind)
    except SchemaNotFoundError:
        return False
    return True


def core_problems(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, problem) of a core Kubernetes object; SchemaNotFoundError for other kinds."""
    validator = _validator(str(doc.get("apiVersion")), str(doc.get("kind")))
    return schema_problems(validator, drop_nulls(doc))


@lru_cache(maxsize=32)
def _definition_validator(name: str) -> Any:
    import jsonschema

    ref = {"$ref": f"https://kubernetes.io/api/_definitions.json#/$defs/{name}"}
    return jsonschema.Draft202012Validator(ref, registry=registry())


def definition_problems(instance: Any, name: str, prefix: str = "") -> list[tuple[str, str]]:
    """(path, problem) of ``instance`` against one Kubernetes definition
    (``io.k8s.api.core.v1.PodSpec``), strictly."""
    return schema_problems(_definition_validator(name), drop_nulls(instance), prefix)
