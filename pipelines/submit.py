"""Create or update ``cnai-retrain`` on an Argo server and submit a Workflow from it.

Uses Hera's ``WorkflowsService`` (the Argo server's REST API): GET the template;
PUT it (with the server's ``resourceVersion``) when it exists, else POST it; then
POST ``/api/v1/workflows/{ns}/submit`` with ``resourceKind: WorkflowTemplate``.
"""

from __future__ import annotations

from typing import Any

import yaml

from cnai.errors import CnaiError, UsageError

DEFAULT_SERVER = "https://localhost:2746"
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
