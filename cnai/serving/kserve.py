"""Keeping the chart's KServe InferenceService on the registry's champion.

The InferenceService (chart template ``serving.yaml``) is named after the registered
model. Its predictor pods serve the version in the predictor annotation
``cnai.dev/champion-version`` (passed to ``cnai serve`` through the downward API).
After registering, the retrain pipeline calls :func:`sync_inference_service`: it reads
the InferenceService and patches that annotation only when it differs from the
champion, so a run that did not change the champion changes nothing in the cluster,
and a rerun after a crash completes the update. A new annotation value rolls the
predictor Deployment (KServe Standard mode, ``maxUnavailable: 0``): new pods become
ready on the new version before old ones stop.

Only two calls are needed (GET and a JSON merge PATCH of one object), with the pod's
service-account token; ``requests`` does that without adding the Kubernetes client
library to the image. Outside a cluster this is a no-op: locally, ``cnai serve``
follows the alias itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnai.errors import CnaiError

VERSION_ANNOTATION = "cnai.dev/champion-version"
"""Predictor annotation naming the version the pods serve."""
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where Kubernetes mounts a pod's token, CA bundle and namespace."""
API_PATH = "/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices/{name}"


@dataclass(frozen=True)
class KubeAccess:
    """How to reach the Kubernetes API from inside a pod."""

    api_url: str
    """``https://host:port`` of the API server."""
    token: str
    """The service account's bearer token."""
    namespace: str
    """The pod's namespace (where the InferenceService lives)."""
    verify: str | bool = True
    """CA bundle path for TLS (True: the system's)."""

    @classmethod
    def in_cluster(
        cls,
        environ: Mapping[str, str] | None = None,
        account_dir: Path = SERVICE_ACCOUNT_DIR,
    ) -> KubeAccess | None:
        """The pod's access, or None when not running in a Kubernetes pod."""
        env = os.environ if environ is None else environ
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
        token_file = account_dir / "token"
        if not host or not port or not token_file.is_file():
            return None
        shown = f"[{host}]" if ":" in host else host
        ca = account_dir / "ca.crt"
        return cls(
            api_url=f"https://{shown}:{port}",
            token=token_file.read_text().strip(),
            namespace=(account_dir / "namespace").read_text().strip(),
            verify=str(ca) if ca.is_file() else True,
        )


def sync_inference_service(
    model_name: str,
    champion_version: int | str | None,
    access: KubeAccess | None = None,
    timeout: float = 30,
) -> dict[str, Any]:
    """Point InferenceService ``model_name`` at ``champion_version`` if it is not already.

    Returns ``{"inference_service", "action", "detail"}`` where action is ``patched``,
    ``unchanged``, ``absent`` (no such InferenceService, or no permission to read it:
    serving is not enabled in the chart) or ``skipped`` (not in a cluster, or no
    champion). Other API failures raise CnaiError (the pipeline's retry handles them).
    """
    import requests

    if champion_version is None or str(champion_version) == "":
        return _outcome(model_name, "skipped", "no champion")
    access = access or KubeAccess.in_cluster()
    if access is None:
        local = "not in a Kubernetes pod (locally `cnai serve` follows the alias)"
        return _outcome(model_name, "skipped", local)
    url = access.api_url + API_PATH.format(namespace=access.namespace, name=model_name)
    headers = {"Authorization": f"Bearer {access.token}", "Accept": "application/json"}
    where = f"InferenceService {access.namespace}/{model_name}"
    try:
        found = requests.get(url, headers=headers, verify=access.verify, timeout=timeout)
    except requests.RequestException as exc:
        raise CnaiError(f"{where}: cannot reach the Kubernetes API ({exc})") from exc
    if found.status_code in (403, 404):
        why = "not found" if found.status_code == 404 else "no permission to read it"
        return _outcome(model_name, "absent", f"{where}: {why}; serving not enabled")
    if found.status_code != 200:
        raise CnaiError(f"{where}: GET answered {found.status_code}: {found.text[:200]}")
    predictor = (found.json().get("spec") or {}).get("predictor") or {}
    current = (predictor.get("annotations") or {}).get(VERSION_ANNOTATION)
    wanted = str(champion_version)
    if current == wanted:
        return _outcome(model_name, "unchanged", f"{where} already serves v{wanted}")
    patch = {"spec": {"predictor": {"annotations": {VERSION_ANNOTATION: wanted}}}}
    try:
        done = requests.patch(
            url,
            json=patch,
            headers={**headers, "Content-Type": "application/merge-patch+json"},
            verify=access.verify,
            timeout=timeout,
        )
    except requests.RequestException as exc:
        raise CnaiError(f"{where}: cannot reach the Kubernetes API ({exc})") from exc
    if done.status_code != 200:
        raise CnaiError(f"{where}: PATCH answered {done.status_code}: {done.text[:200]}")
    was = f"v{current}" if current else "the champion at pod start"
    return _outcome(model_name, "patched", f"{where}: v{wanted} (was {was})")


def _outcome(name: str, action: str, detail: str) -> dict[str, Any]:
    return {"inference_service": name, "action": action, "detail": detail}
