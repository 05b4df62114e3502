"""The chart's KServe InferenceService, rendered by the real Helm and checked against
KServe's CRD schema, and the register step's update of it (only when the champion changed).

The schema is a subset of KServe v0.20.0's InferenceService CRD
(tests/fixtures/kserve/, its ``$comment`` names the source file and commit). Besides
JSON-schema validation, every field the chart sets must be declared by the schema at
that place: the API server silently prunes unknown fields of a structural CRD, so a
misspelt field would otherwise vanish without an error.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cnai.serving.kserve import VERSION_ANNOTATION, KubeAccess, sync_inference_service
from tests.conftest import REPO, free_port

CHART = REPO / "infra" / "opentofu" / "charts" / "cnai-pipeline"
HELM = REPO / ".venv" / "bin" / "helm"
SCHEMA = json.loads(
    (
        REPO / "tests" / "fixtures" / "kserve" / "inferenceservice-v1beta1-subset.schema.json"
    ).read_text()
)


def helm_template(*sets: str, namespace: str = "ml-prod") -> list[dict[str, Any]]:
    """Every object ``helm template`` renders with these ``--set`` values."""
    if not HELM.is_file():
        pytest.skip(f"real Helm not installed at {HELM} (make .venv/.installed)")
    args = [str(HELM), "template", "cnai", str(CHART), "--namespace", namespace]
    for value in sets:
        args += ["--set", value]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def undeclared_fields(node: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths in ``node`` that ``schema`` does not declare (what the API server would prune)."""
    found: list[str] = []
    if isinstance(node, dict) and schema.get("type") == "object":
        properties = schema.get("properties")
        if properties is None:  # a map (labels, annotations) or preserved unknown fields
            return found
        for key, value in node.items():
            if key not in properties:
                found.append(f"{path}.{key}")
            else:
                found += undeclared_fields(value, properties[key], f"{path}.{key}")
    elif isinstance(node, list) and "items" in schema:
        for i, item in enumerate(node):
            found += undeclared_fields(item, schema["items"], f"{path}[{i}]")
    return found


def test_the_inference_service_is_off_by_default() -> None:
    kinds = {d["kind"] for d in helm_template()}
    assert "InferenceService" not in kinds


def test_the_inference_service_validates_against_kserves_schema_and_runs_as_non_root() -> None:
    import jsonschema

    docs = helm_template("serving.enabled=true", "serving.championVersion=7")
    (isvc,) = [d for d in docs if d["kind"] == "InferenceService"]
    jsonschema.Draft7Validator(SCHEMA).validate(isvc)
    assert undeclared_fields(isvc, SCHEMA) == []
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", isvc["metadata"]["name"])
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"

    predictor = isvc["spec"]["predictor"]
    assert predictor["annotations"] == {VERSION_ANNOTATION: "7"}
    assert predictor["deploymentStrategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert predictor["securityContext"]["runAsNonRoot"] is True
    (container,) = predictor["containers"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}

    # The container runs `cnai serve` with flags the real CLI accepts, on KServe's port,
    # pinned through the annotation the register step patches.
    from cnai.cli.main import build_parser

    assert container["args"][:4] == ["python", "-m", "cnai", "serve"]
    parsed = build_parser("serve").parse_args(container["args"][3:])
    assert (parsed.model, parsed.port, parsed.host) == (isvc["metadata"]["name"], 8080, "0.0.0.0")
    assert container["ports"][0]["containerPort"] == 8080
    env = {e["name"]: e for e in container["env"]}
    field = env["CNAI_SERVE_VERSION"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert field == f"metadata.annotations['{VERSION_ANNOTATION}']"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"


def test_without_a_pinned_version_the_chart_leaves_the_annotation_to_the_register_step() -> None:
    docs = helm_template("serving.enabled=true")
    (isvc,) = [d for d in docs if d["kind"] == "InferenceService"]
    assert "annotations" not in isvc["spec"]["predictor"]


def test_serving_rbac_lets_the_workflow_get_and_patch_only_its_inference_service() -> None:
    docs = helm_template("serving.enabled=true")
    assert not [d for d in docs if d["kind"] in {"ClusterRole", "ClusterRoleBinding"}]
    (role,) = [
        d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-serving")
    ]
    assert role["rules"] == [
        {
            "apiGroups": ["serving.kserve.io"],
            "resources": ["inferenceservices"],
            "resourceNames": ["digits-classifier"],
            "verbs": ["get", "patch"],
        }
    ]
    (binding,) = [
        d
        for d in docs
        if d["kind"] == "RoleBinding" and d["roleRef"]["name"] == role["metadata"]["name"]
    ]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "cnai-pipeline", "namespace": "ml-prod"}
    ]
    (account,) = [
        d for d in docs if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == "cnai-serving"
    ]
    assert account["automountServiceAccountToken"] is False


# --- the register step's update ------------------------------------------------------


class FakeKubeApi:
    """One InferenceService behind a real HTTP server on 127.0.0.1 (GET and merge PATCH)."""

    def __init__(self, annotations: dict[str, str] | None, status: int = 200) -> None:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        self.object = {"spec": {"predictor": {"annotations": annotations}}}
        self.status = status
        self.calls: list[tuple[str, str, str, Any]] = []

        async def handle(request: Request) -> JSONResponse:
            body = await request.json() if request.method == "PATCH" else None
            self.calls.append(
                (
                    request.method,
                    request.url.path,
                    request.headers.get("content-type", ""),
                    (request.headers.get("authorization"), body),
                )
            )
            if self.status != 200:
                return JSONResponse({"kind": "Status"}, self.status)
            if body is not None:
                predictor = self.object["spec"]["predictor"]
                predictor["annotations"] = {
                    **(predictor["annotations"] or {}),
                    **body["spec"]["predictor"]["annotations"],
                }
            return JSONResponse(self.object)

        path = "/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices/{name}"
        self.app = Starlette(routes=[Route(path, handle, methods=["GET", "PATCH"])])

    def access(self, port: int) -> KubeAccess:
        """Access to this fake as a pod in namespace ml-prod would have it."""
        return KubeAccess(f"http://127.0.0.1:{port}", "pod-token", "ml-prod")


@pytest.fixture
def kube() -> Iterator[Any]:
    """Start a FakeKubeApi on a free port; yields a factory."""
    import uvicorn

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(
        annotations: dict[str, str] | None, status: int = 200
    ) -> tuple[FakeKubeApi, KubeAccess]:
        fake = FakeKubeApi(annotations, status)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(fake.app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            threading.Event().wait(0.02)
        servers.append((server, thread))
        return fake, fake.access(port)

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def test_a_new_champion_is_patched_once_and_an_unchanged_one_is_left_alone(kube: Any) -> None:
    fake, access = kube({VERSION_ANNOTATION: "1"})
    first = sync_inference_service("digits-classifier", 2, access)
    assert first["action"] == "patched" and "v2 (was v1)" in first["detail"]
    method, path, content_type, (auth, body) = fake.calls[-1]
    assert method == "PATCH"
    assert path.endswith("/namespaces/ml-prod/inferenceservices/digits-classifier")
    assert content_type == "application/merge-patch+json"
    assert auth == "Bearer pod-token"
    assert body == {"spec": {"predictor": {"annotations": {VERSION_ANNOTATION: "2"}}}}

    again = sync_inference_service("digits-classifier", 2, access)
    assert again["action"] == "unchanged"
    assert [c[0] for c in fake.calls] == ["GET", "PATCH", "GET"]


def test_no_annotation_yet_is_patched_and_absent_or_forbidden_is_not_an_error(kube: Any) -> None:
    fake, access = kube(None)
    assert sync_inference_service("digits-classifier", "3", access)["action"] == "patched"
    assert fake.object["spec"]["predictor"]["annotations"] == {VERSION_ANNOTATION: "3"}
    for status in (404, 403):
        _, missing = kube(None, status)
        assert sync_inference_service("digits-classifier", 3, missing)["action"] == "absent"


def test_api_failures_raise_so_the_pipeline_retries(kube: Any) -> None:
    from cnai.errors import CnaiError

    _, access = kube(None, 500)
    with pytest.raises(CnaiError, match="GET answered 500"):
        sync_inference_service("digits-classifier", 3, access)


def test_outside_a_cluster_or_without_a_champion_nothing_is_done(tmp_path: Path) -> None:
    assert KubeAccess.in_cluster({}, tmp_path) is None
    assert sync_inference_service("m", 3, None)["action"] == "skipped"
    assert sync_inference_service("m", None, None)["action"] == "skipped"
    (tmp_path / "token").write_text("tok\n")
    (tmp_path / "namespace").write_text("ml-prod")
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    access = KubeAccess.in_cluster(env, tmp_path)
    assert access == KubeAccess("https://10.0.0.1:443", "tok", "ml-prod", True)


def test_the_register_task_follows_the_champion_it_reports(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import cnai.registry.register
    from pipelines import tasks

    seen: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        cnai.registry.register,
        "register",
        lambda *a, **k: {
            "model_name": "digits-classifier",
            "version": 4,
            "promoted": False,
            "champion_version": 2,
            "reason": "worse",
        },
    )
    monkeypatch.setattr(tasks, "record_on_table", lambda *a, **k: None)
    monkeypatch.setattr(
        "cnai.serving.kserve.sync_inference_service",
        lambda name, version: seen.append((name, version)) or {"action": "unchanged"},
    )
    out = tasks.register_model("run1", "digits-classifier", "key", "cnai.digits")
    assert out.champion_version == "2"
    assert seen == [("digits-classifier", 2)]
    captured = capsys.readouterr()
    assert '"serving": {"action": "unchanged"}' in captured.err
    assert "serving" not in captured.out  # stdout is the task's Argo result


# --- OpenTofu ---------------------------------------------------------------------------


def test_kserve_is_optional_pinned_and_in_standard_mode() -> None:
    from tests.test_infra import MODULES, TOFU, load_module, unquote

    platform = load_module(MODULES / "platform")
    releases = {
        name: body
        for rtype, name, body in platform.resources()
        if rtype == "helm_release" and name in {"cert_manager", "kserve_crd", "kserve"}
    }
    assert set(releases) == {"cert_manager", "kserve_crd", "kserve"}
    for body in releases.values():
        assert body["count"] == "${var.enable_kserve ? 1 : 0}"
    assert load_module(TOFU).variables["enable_kserve"]["default"] is False
    # The chart pin and the CRD schema the tests validate against are the same release.
    kserve_version = unquote(releases["kserve"]["version"])
    assert unquote(releases["kserve_crd"]["version"]) == kserve_version
    assert f"at tag v{kserve_version} " in SCHEMA["$comment"]
    (values,) = releases["kserve"]["values"]
    assert 'deploymentMode = "Standard"' in values
    assert "disableIngressCreation = true" in values
    assert releases["kserve"]["depends_on"] == ["${helm_release.kserve_crd}"]
    assert releases["kserve_crd"]["depends_on"] == ["${helm_release.cert_manager}"]
