"""Create or update a pipeline's WorkflowTemplate on an Argo server; submit a run of it.

Uses Hera's ``WorkflowsService`` (the Argo server's REST API): GET the template;
PUT it (with the server's ``resourceVersion``) when it exists, else POST it; then
POST ``/api/v1/workflows/{ns}/submit`` with ``resourceKind: WorkflowTemplate``.

A template installed by the cnai-pipeline Helm chart (label
``app.kubernetes.io/managed-by: Helm``) is never overwritten: Helm owns it (its
image is the chart's ``image.repository:tag``), the run is submitted from it as it
is and the answer says ``kept``. Change such a template with ``tofu apply``.

The server URL: ``--argo-server`` or ``$ARGO_SERVER``; without a scheme (the argo
CLI's ``host:port`` form) ``$ARGO_SECURE`` decides (``false``: http, else https,
as the argo CLI does); with nothing given, ``http://localhost:2746``: the platform
installs the Argo server with ``secure: false`` and kind publishes it there.
"""

from __future__ import annotations

from typing import Any

import yaml

from cnai.errors import CnaiError, UsageError

DEFAULT_SERVER = "http://localhost:2746"
HELM_MANAGED = ("app.kubernetes.io/managed-by", "Helm")
"""The label Helm sets on every object it installs."""


def resolve_server(given: str | None, argo_server: str | None, argo_secure: str | None) -> str:
    """The Argo server URL from ``--argo-server``, ``$ARGO_SERVER`` and ``$ARGO_SECURE``."""
    server = given or argo_server or DEFAULT_SERVER
    if "://" in server:
        return server
    secure = (argo_secure or "true").strip().lower()
    if secure not in ("true", "false", "1", "0"):
        raise UsageError(f"ARGO_SECURE={argo_secure!r}: must be true or false")
    return f"{'https' if secure in ('true', '1') else 'http'}://{server}"


def helm_managed(template: Any) -> bool:
    """True for a WorkflowTemplate the cnai-pipeline chart (Helm) installed."""
    labels = (template.metadata.labels or {}) if template.metadata else {}
    return bool(labels.get(HELM_MANAGED[0]) == HELM_MANAGED[1])


DEFAULT_NAMESPACE = "cnai"


def submit(
    template_yaml: str,
    server: str,
    namespace: str,
    parameters: dict[str, str],
    token: str | None,
    verify_ssl: bool = True,
) -> dict[str, Any]:
    """Upsert the template and submit one run; returns what happened."""
    import requests
    from hera.exceptions import HeraException, NotFound
    from hera.workflows import WorkflowsService
    from hera.workflows import models as m

    if not server.startswith(("http://", "https://")):
        raise UsageError(f"--argo-server {server!r}: must start with http:// or https://")
    doc = yaml.safe_load(template_yaml)
    declared = {p["name"] for p in doc["spec"].get("arguments", {}).get("parameters", [])}
    for name in parameters:
        if name not in declared:
            raise UsageError(
                f"-p {name}: {doc['metadata']['name']} has no parameter {name!r} "
                f"(known: {', '.join(sorted(declared))})"
            )
    doc.setdefault("metadata", {})["namespace"] = namespace
    name = doc["metadata"]["name"]
    service = WorkflowsService(
        host=server.rstrip("/") + "/", token=token, namespace=namespace, verify_ssl=verify_ssl
    )
    try:
        try:
            existing = service.get_workflow_template(name)
        except NotFound:
            existing = None
        template = m.WorkflowTemplate.model_validate(doc)
        if existing is None:
            service.create_workflow_template(
                m.WorkflowTemplateCreateRequest(namespace=namespace, template=template)
            )
            action = "created"
        elif helm_managed(existing):
            action = "kept (managed by Helm)"
        else:
            template.metadata.resource_version = existing.metadata.resource_version
            service.update_workflow_template(
                name,
                m.WorkflowTemplateUpdateRequest(name=name, namespace=namespace, template=template),
            )
            action = "updated"
        workflow = service.submit_workflow(
            m.WorkflowSubmitRequest(
                namespace=namespace,
                resource_kind="WorkflowTemplate",
                resource_name=name,
                submit_options=m.SubmitOpts(
                    parameters=[f"{k}={v}" for k, v in parameters.items()] or None
                ),
            )
        )
    except HeraException as exc:
        raise CnaiError(f"argo server {server}: {exc}") from exc
    except requests.RequestException as exc:
        raise CnaiError(f"argo server {server}: cannot reach it ({exc})") from exc
    finally:
        service.close()
    workflow_name = workflow.metadata.name
    return {
        "server": server,
        "namespace": namespace,
        "template": {"name": name, "action": action},
        "workflow": workflow_name,
        "url": f"{server.rstrip('/')}/workflows/{namespace}/{workflow_name}",
    }
