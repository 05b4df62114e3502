"""Offline checks of infra/opentofu: what `tofu validate` and a review would catch.

Neither `tofu` nor the provider registries are reachable here, so every .tf file
is parsed with python-hcl2 and checked for the properties the configuration
promises: declared/used variables, module interfaces, pinned charts, encrypted
state, secrets that never reach values or state, and the URL outputs.
`fmt -check` runs with whichever of tofu/terraform is on the PATH.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TOFU = REPO / "infra" / "opentofu"
MODULES = TOFU / "modules"
CHART = TOFU / "charts" / "cnai-pipeline"

VAR_REF = re.compile(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)")
MODULE_OUTPUT_REF = re.compile(
    r"\bmodule\.([A-Za-z_][A-Za-z0-9_-]*)(?:\[[^\]]*\])?\.([A-Za-z_]\w*)"
)
SECRET_NAME = re.compile(
    r"(secret|password|passphrase|token|access_key)(?!_revision)", re.IGNORECASE
)
EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
MODULE_META_ARGS = {"source", "version", "count", "for_each", "providers", "depends_on"}


# --- parsing helpers -------------------------------------------------------


def unquote(value: Any) -> Any:
    """A literal HCL string as python-hcl2 returns it, without its quotes."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def is_expression(value: Any) -> bool:
    """Whether python-hcl2 returned ``value`` as an expression rather than a literal."""
    return isinstance(value, str) and value.startswith("${")


def strings_in(node: Any, skip_keys: frozenset[str] = frozenset()) -> Iterator[str]:
    """Every string leaf under ``node`` (expressions included)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("__") or key in skip_keys:
                continue
            yield unquote(key)
            yield from strings_in(value, skip_keys)
    elif isinstance(node, list):
        for item in node:
            yield from strings_in(item, skip_keys)


def labelled(doc: dict[str, Any], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(label, body)`` of every one-label block ``kind`` (variable, output, module)."""
    for entry in doc.get(kind, []):
        for label, body in entry.items():
            yield unquote(label), body


def resources(doc: dict[str, Any], block: str = "resource") -> Iterator[tuple[str, str, dict]]:
    """``(type, name, body)`` of every two-label block (resource, data, ephemeral)."""
    for entry in doc.get(block, []):
        for rtype, named in entry.items():
            for name, body in named.items():
                yield unquote(rtype), unquote(name), body


@dataclass
class Module:
    """One OpenTofu module folder, parsed."""

    path: Path
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def blocks(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Labelled blocks of ``kind`` across the module's files."""
        for doc in self.docs.values():
            yield from labelled(doc, kind)

    def resources(self, block: str = "resource") -> Iterator[tuple[str, str, dict]]:
        """Two-label blocks across the module's files."""
        for doc in self.docs.values():
            yield from resources(doc, block)

    @property
    def variables(self) -> dict[str, dict[str, Any]]:
        """Declared input variables by name."""
        return dict(self.blocks("variable"))

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        """Declared outputs by name."""
        return dict(self.blocks("output"))

    def references(self) -> tuple[set[str], set[str]]:
        """Variables referenced outside and inside ``variable`` blocks."""
        outside: set[str] = set()
        inside: set[str] = set()
        for doc in self.docs.values():
            for kind, body in doc.items():
                target = inside if kind == "variable" else outside
                for text in strings_in(body, skip_keys=frozenset({"description"})):
                    target.update(VAR_REF.findall(text))
        return outside, inside


@cache
def load_module(path: Path) -> Module:
    """Parse every .tf file of one module folder (cached: parsing costs ~0.1 s a file)."""
    module = Module(path)
    for tf in sorted(path.glob("*.tf")):
        with tf.open() as handle:
            module.docs[tf.name] = hcl2.load(handle)
    assert module.docs, f"{path}: no .tf files"
    return module


def all_modules() -> list[Module]:
    """The root module and every child module."""
    return [load_module(TOFU), *(load_module(p) for p in sorted(MODULES.iterdir()) if p.is_dir())]


def module_ids() -> list[str]:
    """Readable test ids for all_modules()."""
    return ["root", *(p.name for p in sorted(MODULES.iterdir()) if p.is_dir())]


# --- variables and module interfaces ---------------------------------------


@pytest.mark.parametrize("module", all_modules(), ids=module_ids())
def test_every_referenced_variable_is_declared_and_every_declared_one_used(
    module: Module,
) -> None:
    declared = set(module.variables)
    outside, inside = module.references()
    assert (outside | inside) - declared == set(), "referenced but not declared"
    assert declared - outside == set(), "declared but never used (outside its own block)"


@pytest.mark.parametrize("module", all_modules(), ids=module_ids())
def test_every_variable_is_typed_and_described(module: Module) -> None:
    for name, body in module.variables.items():
        assert "type" in body, f"{module.path.name}: variable {name} has no type"
        assert unquote(body.get("description", "")).strip(), f"variable {name} has no description"


def test_root_variables_with_a_constrained_domain_are_validated() -> None:
    variables = load_module(TOFU).variables
    must_validate = {
        "state_passphrase",
        "platform_namespace",
        "pipeline_namespace",
        "cnpg_namespace",
        "object_store",
        "external_s3",
        "expose",
        "public_domain",
        "argo_server_auth_mode",
        "postgres_instances",
        "postgres_storage_size",
        "pipeline_image_tag",
        "katib_chart_path",
        "secret_revision",
    }
    unvalidated = sorted(name for name in must_validate if not variables[name].get("validation"))
    assert unvalidated == []


def module_calls() -> Iterator[tuple[Module, str, dict[str, Any]]]:
    """Every ``module`` block with its caller."""
    for caller in all_modules():
        for name, body in caller.blocks("module"):
            yield caller, name, body


def test_each_module_call_passes_only_declared_inputs_and_all_required_ones() -> None:
    calls = list(module_calls())
    assert {name for _, name, _ in calls} == {"kind_cluster", "platform", "pipeline"}
    for caller, name, body in calls:
        source = unquote(body["source"])
        assert source.startswith("./"), f"module {name}: source {source!r} is not local"
        callee = load_module((caller.path / source).resolve())
        passed = {key for key in body if not key.startswith("__")} - MODULE_META_ARGS
        declared = set(callee.variables)
        required = {v for v, spec in callee.variables.items() if "default" not in spec}
        assert passed - declared == set(), f"module {name}: undeclared inputs"
        assert required - passed == set(), f"module {name}: required inputs not passed"


def test_module_outputs_used_by_the_root_exist() -> None:
    root = load_module(TOFU)
    sources = {name: unquote(body["source"]) for name, body in root.blocks("module")}
    used: set[tuple[str, str]] = set()
    for doc in root.docs.values():
        for text in strings_in(doc):
            used.update(MODULE_OUTPUT_REF.findall(text))
    assert used, "the root module reads no module outputs"
    for module_name, output in sorted(used):
        callee = load_module((TOFU / sources[module_name]).resolve())
        assert output in callee.outputs, f"module.{module_name}.{output} is not an output"


# --- providers, encryption --------------------------------------------------


def terraform_blocks(module: Module) -> list[dict[str, Any]]:
    """Every ``terraform {}`` block of a module."""
    return [block for doc in module.docs.values() for block in doc.get("terraform", [])]


@pytest.mark.parametrize("module", all_modules(), ids=module_ids())
def test_every_provider_is_pinned_with_a_pessimistic_constraint(module: Module) -> None:
    providers: dict[str, dict[str, Any]] = {}
    for block in terraform_blocks(module):
        for entry in block.get("required_providers", []):
            providers.update({k: v for k, v in entry.items() if not k.startswith("__")})
    used_types = {rtype.split("_")[0] for rtype, _, _ in module.resources()}
    assert used_types <= set(providers), "a resource's provider is not in required_providers"
    for name, spec in providers.items():
        assert re.fullmatch(r"~> \d+\.\d+(\.\d+)?", unquote(spec["version"])), name
    root = {}
    for block in terraform_blocks(load_module(TOFU)):
        for entry in block.get("required_providers", []):
            root.update(entry)
    for name, spec in providers.items():
        assert unquote(spec["source"]) == unquote(root[name]["source"])
        assert unquote(spec["version"]) == unquote(root[name]["version"]), f"{name} differs"


def test_root_requires_opentofu_with_write_only_attributes_and_the_v3_providers() -> None:
    (block,) = terraform_blocks(load_module(TOFU))
    assert unquote(block["required_version"]) == ">= 1.11.0"
    (providers,) = block["required_providers"]
    assert unquote(providers["helm"]["version"]) == "~> 3.0"
    assert unquote(providers["kubernetes"]["version"]) == "~> 3.0"
    assert unquote(providers["kind"]["source"]) == "tehcyx/kind"


def test_state_and_plan_are_encrypted_with_a_key_from_a_sensitive_variable() -> None:
    (block,) = terraform_blocks(load_module(TOFU))
    (encryption,) = block["encryption"]
    (key_provider,) = encryption["key_provider"]
    pbkdf2 = key_provider['"pbkdf2"']
    (kp_name,) = [k for k in pbkdf2 if not k.startswith("__")]
    assert pbkdf2[kp_name]["passphrase"] == "${var.state_passphrase}"
    (method,) = encryption["method"]
    (m_name,) = [k for k in method['"aes_gcm"'] if not k.startswith("__")]
    keys = method['"aes_gcm"'][m_name]["keys"]
    assert keys == f"${{key_provider.pbkdf2.{unquote(kp_name)}}}"
    for target in ("state", "plan"):
        (spec,) = encryption[target]
        assert spec["method"] == f"${{method.aes_gcm.{unquote(m_name)}}}", target
        assert spec["enforced"] is True, f"{target}: unencrypted files must be refused"
    assert load_module(TOFU).variables["state_passphrase"]["sensitive"] is True


# --- charts -----------------------------------------------------------------


def helm_releases() -> list[tuple[Module, str, dict[str, Any]]]:
    """Every helm_release with its module."""
    return [
        (module, name, body)
        for module in all_modules()
        for rtype, name, body in module.resources()
        if rtype == "helm_release"
    ]


def test_every_helm_release_pins_its_repository_and_exact_version() -> None:
    releases = helm_releases()
    assert len(releases) >= 9
    for module, name, body in releases:
        where = f"{module.path.name}: helm_release.{name}"
        version = body.get("version")
        assert not is_expression(version), f"{where}: version must be a literal"
        assert EXACT_VERSION.match(unquote(version or "")), f"{where}: version is not exact"
        chart = body["chart"]
        if "repository" in body:
            repository = unquote(body["repository"])
            assert not is_expression(body["repository"]), f"{where}: repository is not literal"
            assert re.match(r"^(https|oci)://", repository), f"{where}: {repository!r}"
            assert re.fullmatch(r"[a-z0-9-]+", unquote(chart)), f"{where}: chart {chart!r}"
        else:
            # A chart from disk: this repo's own chart, or a checkout named by a variable.
            assert re.fullmatch(r"\$\{(local\.chart_path|var\.\w+_chart_path)\}", chart), where


def test_the_platform_installs_every_component_the_pipeline_needs() -> None:
    charts = {
        unquote(body["chart"]): unquote(body["version"])
        for module, _, body in helm_releases()
        if module.path.name == "platform"
    }
    for chart in (
        "cloudnative-pg",
        "cluster",
        "seaweedfs",
        "mlflow",
        "argo-workflows",
        "argo-events",
        "kuberay-operator",
    ):
        assert chart in charts, f"platform does not install {chart}"
    # The Argo Workflows chart's 1.x and later releases carry the v4 application line.
    assert int(charts["argo-workflows"].split(".")[0]) >= 1


def test_katib_is_optional() -> None:
    platform = load_module(MODULES / "platform")
    (katib,) = [
        body
        for rtype, name, body in platform.resources()
        if (rtype, name) == ("helm_release", "katib")
    ]
    assert katib["count"] == "${var.enable_katib ? 1 : 0}"
    assert load_module(TOFU).variables["enable_katib"]["default"] is False


def test_no_kubernetes_manifest_resources() -> None:
    # kubernetes_manifest needs the CRDs at plan time, which an empty cluster lacks.
    for module in all_modules():
        for block in ("resource", "data"):
            types = {rtype for rtype, _, _ in module.resources(block)}
            assert "kubernetes_manifest" not in types, module.path


def test_local_pipeline_chart_version_matches_its_release() -> None:
    chart_meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    (body,) = [b for m, n, b in helm_releases() if n == "pipeline"]
    assert unquote(body["version"]) == chart_meta["version"]
    pipeline = load_module(MODULES / "pipeline")
    chart_path = next(
        body["chart_path"]
        for doc in pipeline.docs.values()
        for body in doc.get("locals", [])
        if "chart_path" in body
    )
    resolved = (MODULES / "pipeline" / "../../charts/cnai-pipeline").resolve()
    assert chart_path == '"${path.module}/../../charts/cnai-pipeline"'
    assert resolved == CHART


# --- secrets -----------------------------------------------------------------


def test_every_kubernetes_secret_payload_is_write_only() -> None:
    secrets = [
        (module.path.name, name, body)
        for module in all_modules()
        for rtype, name, body in module.resources()
        if rtype in {"kubernetes_secret_v1", "kubernetes_secret"}
    ]
    assert len(secrets) >= 7
    for module_name, name, body in secrets:
        where = f"{module_name}: {name}"
        assert "data" not in body and "binary_data" not in body, f"{where}: payload in state"
        assert "data_wo" in body and "data_wo_revision" in body, where


def test_secret_shaped_inputs_and_outputs_are_sensitive() -> None:
    for module in all_modules():
        for name, body in module.variables.items():
            if SECRET_NAME.search(name):
                assert body.get("sensitive") is True, f"{module.path.name}: var {name}"
        for name, body in module.outputs.items():
            if SECRET_NAME.search(name) or "catalog_uri" in name:
                assert body.get("sensitive") is True, f"{module.path.name}: output {name}"


SECRET_KEY_NAME = re.compile(r"^(\w+Key|keyOf\w+)$")
"""Chart values that name a key inside a Secret (passwordKey = "password"), not a secret."""


def test_no_secret_literal_in_tf_files() -> None:
    for module in all_modules():
        for doc in module.docs.values():
            for key, value in _key_values(doc):
                if SECRET_KEY_NAME.match(key):
                    continue
                if SECRET_NAME.search(key) and isinstance(value, str) and value:
                    assert is_expression(value) or unquote(value) == "", (
                        f"{module.path.name}: {key} = {value}"
                    )


def test_helm_values_never_carry_secret_values() -> None:
    # Secrets reach charts only as Secret names; values are stored in the release.
    for _module, name, body in helm_releases():
        for key in ("set_sensitive", "set_wo", "set"):
            assert key not in body, f"helm_release.{name} sets {key}"
        for text in strings_in(body.get("values", [])):
            assert "random_password" not in text, name
            assert not re.search(r"var\.\w*(secret|password|token|access_key)", text), name
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for key, value in _key_values(values):
        if SECRET_NAME.search(key) and key not in {"secretNames"}:
            assert not value, f"chart values.yaml: {key} holds a value"


def test_the_pipeline_secret_carries_exactly_the_contract_keys() -> None:
    pipeline = load_module(MODULES / "pipeline")
    secrets = {name: body for rtype, name, body in pipeline.resources() if "secret" in rtype}
    assert set(secrets["pipeline"]["data_wo"]) - {"__is_block__"} == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "CNAI_CATALOG__S3__ACCESS_KEY_ID",
        "CNAI_CATALOG__S3__SECRET_ACCESS_KEY",
        "CNAI_CATALOG__URI",
    }
    names = {name: unquote(body["metadata"][0]["name"]) for name, body in secrets.items()}
    assert names == {
        "pipeline": "cnai-pipeline-secrets",
        "github_webhook": "cnai-github-webhook",
        "data_webhook": "cnai-data-webhook",
    }
    assert set(secrets["github_webhook"]["data_wo"]) - {"__is_block__"} == {"secret"}
    assert set(secrets["data_webhook"]["data_wo"]) - {"__is_block__"} == {"token"}


def _key_values(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("__"):
                continue
            yield unquote(key), value
            yield from _key_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from _key_values(item)


# --- outputs, exposure -------------------------------------------------------


def test_outputs_for_the_urls_and_namespaces_exist() -> None:
    outputs = load_module(TOFU).outputs
    for name in ("argo_ui_url", "mlflow_url", "github_webhook_url", "data_webhook_url"):
        assert name in outputs, name
        assert "var.expose" in outputs[name]["value"], f"{name} ignores the exposure mode"
    assert "namespaces" in outputs
    for secret in ("github_webhook_secret", "data_webhook_token"):
        assert outputs[secret]["sensitive"] is True


def test_every_exposure_mode_yields_each_url_and_kind_publishes_every_nodeport() -> None:
    root = load_module(TOFU)
    locals_ = {
        k: v for doc in root.docs.values() for b in doc.get("locals", []) for k, v in b.items()
    }
    urls = locals_["urls"]
    modes = set(unquote(m) for m in urls) - {"__is_block__"}
    allowed = root.variables["expose"]["validation"][0]["condition"]
    assert modes == set(re.findall(r'"(\w+)"', allowed))
    for mode in modes:
        assert set(urls[mode]) - {"__is_block__"} == {"argo", "mlflow", "github", "data"}
    node_ports = {k: v for k, v in locals_["node_ports"].items() if not k.startswith("__")}
    host_ports = {k: v for k, v in locals_["host_ports"].items() if not k.startswith("__")}
    assert set(node_ports) == set(host_ports)
    assert all(30000 <= port <= 32767 for port in node_ports.values())
    assert len(set(host_ports.values())) == len(host_ports)


def test_webhook_paths_and_ports_agree_between_outputs_and_chart() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())["webhooks"]
    root = load_module(TOFU)
    urls_text = " ".join(
        strings_in([b for doc in root.docs.values() for b in doc.get("locals", [])])
    )
    for hook in ("github", "data"):
        spec = values[hook]
        assert f":{spec['port']}{spec['path']}" in urls_text
        assert f"{spec['eventSource']}-webhook-svc" in urls_text


# --- formatting --------------------------------------------------------------


def test_fmt_check_recursive() -> None:
    binary = shutil.which("tofu") or shutil.which("terraform")
    if binary is None:
        pytest.skip("neither tofu nor terraform is on the PATH")
    proc = subprocess.run(
        [binary, "fmt", "-check", "-recursive", "-diff", str(TOFU)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
