"""The cnai-pipeline Helm chart: its copies of `cnai compile` output and events/,
least-privilege RBAC, and the names the other halves of the contract rely on."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cnai.chart import (
    CHART_DIR,
    ChartSourceMissingError,
    chart_drift,
    compiled_manifests,
    event_specs,
    sync_chart,
)

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / CHART_DIR
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def fake_repo(tmp_path: Path, events: dict[str, str]) -> Path:
    """A repository root with an events/ folder and an empty copy of the chart's folders."""
    (tmp_path / "events").mkdir(parents=True)
    for name, text in events.items():
        (tmp_path / "events" / name).write_text(text)
    (tmp_path / CHART_DIR / "files" / "workflows").mkdir(parents=True)
    (tmp_path / CHART_DIR / "files" / "events").mkdir(parents=True)
    return tmp_path


# --- sync and drift ----------------------------------------------------------


def test_sync_writes_copies_and_drift_reports_every_kind_of_difference(tmp_path: Path) -> None:
    compiled = {"workflowtemplate.yaml": "kind: WorkflowTemplate\n"}
    repo = fake_repo(tmp_path, {"sensor.yaml": "kind: Sensor\n", "README.md": "not a spec"})

    def source() -> dict[str, str]:
        return dict(compiled)

    assert sorted(chart_drift(repo, source)) == [
        f"{CHART_DIR}/files/events/sensor.yaml: missing",
        f"{CHART_DIR}/files/workflows/workflowtemplate.yaml: missing",
    ]
    assert sorted(sync_chart(repo, source)) == [
        "files/events/sensor.yaml",
        "files/workflows/workflowtemplate.yaml",
    ]
    assert chart_drift(repo, source) == []
    assert (repo / CHART_DIR / "files/events/sensor.yaml").read_text() == "kind: Sensor\n"

    (repo / "events" / "sensor.yaml").write_text("kind: Sensor\nspec: {}\n")
    compiled["other.yaml"] = "kind: ConfigMap\n"
    del compiled["workflowtemplate.yaml"]
    assert chart_drift(repo, source) == [
        f"{CHART_DIR}/files/events/sensor.yaml: differs from its source",
        f"{CHART_DIR}/files/workflows/other.yaml: missing",
        f"{CHART_DIR}/files/workflows/workflowtemplate.yaml: stale (its source no longer exists)",
    ]
    sync_chart(repo, source)
    assert chart_drift(repo, source) == []
    assert not (repo / CHART_DIR / "files/workflows/workflowtemplate.yaml").exists()
    # A second sync has nothing to do.
    assert sync_chart(repo, source) == []


def test_missing_sources_are_reported_not_ignored(tmp_path: Path) -> None:
    repo = fake_repo(tmp_path, {})
    with pytest.raises(ChartSourceMissingError, match=re.escape("no *.yaml event specs")):
        chart_drift(repo, dict)
    with pytest.raises(ValueError, match="bare"):
        sync_chart(fake_repo(tmp_path / "b", {"a.yaml": "x"}), lambda: {"../a.yaml": "x"})


def test_check_command_exits_1_with_one_line_per_difference(tmp_path: Path) -> None:
    repo = fake_repo(tmp_path, {})
    proc = subprocess.run(
        [sys.executable, "-m", "cnai.chart", "check", "--repo", str(repo)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("cnai.chart: ")
    assert len(proc.stderr.strip().splitlines()) == 1


def real_compiled() -> dict[str, str]:
    """The real `cnai compile` output, or a skip naming what is missing."""
    try:
        return compiled_manifests()
    except ChartSourceMissingError as exc:
        pytest.skip(f"not in this checkout yet: {exc}")


def real_events() -> dict[str, str]:
    """The real events/ specs, or a skip naming what is missing."""
    try:
        return event_specs(REPO)
    except ChartSourceMissingError as exc:
        pytest.skip(f"not in this checkout yet: {exc}")


def test_chart_copies_match_cnai_compile_and_events() -> None:
    real_events()
    real_compiled()
    drift = chart_drift(REPO)
    assert drift == [], "run `python -m cnai.chart sync`:\n" + "\n".join(drift)


# --- cross-team contract -----------------------------------------------------


def documents(texts: dict[str, str]) -> list[dict[str, Any]]:
    """Every YAML document in ``texts``."""
    return [doc for text in texts.values() for doc in yaml.safe_load_all(text) if doc]


def test_compiled_workflows_use_the_names_the_chart_and_tofu_create() -> None:
    compiled = real_compiled()
    docs = documents(compiled)
    templates = [d for d in docs if d.get("kind") == "WorkflowTemplate"]
    assert [t["metadata"]["name"] for t in templates] == ["cnai-retrain", "cnai-score"]
    text = "\n".join(compiled.values())
    assert VALUES["serviceAccounts"]["workflow"] in text
    assert VALUES["configMapName"] in text
    assert VALUES["secretNames"]["pipeline"] in text
    repo = VALUES["image"]["repository"]
    images = re.findall(r"image:\s*['\"]?([^\s'\"]+)", text)
    assert images and all(image.startswith(repo) for image in images), images
    for doc in docs:
        kind = doc.get("kind")
        assert kind not in {"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Secret"}, (
            f"compile output defines a {kind}, which the chart already owns"
        )


def test_event_specs_use_the_names_the_chart_and_tofu_create() -> None:
    events = real_events()
    text = "\n".join(events.values())
    by_kind = {d["kind"]: d for d in documents(events)}
    assert {"EventBus", "EventSource", "Sensor"} <= set(by_kind)
    assert "serviceAccountName: cnai-events-sensor" in text
    for hook, key in (("githubWebhook", "secret"), ("dataWebhook", "token")):
        assert re.search(rf"name:\s*{VALUES['secretNames'][hook]}\s", text), hook
        assert re.search(rf"key:\s*{key}\s", text), key
    for hook in ("github", "data"):
        spec = VALUES["webhooks"][hook]
        assert re.search(rf"endpoint:\s*['\"]?{re.escape(spec['path'])}['\"]?\s", text), hook
        assert re.search(rf"port:\s*['\"]?{spec['port']}['\"]?\s", text), hook


# --- RBAC ---------------------------------------------------------------------


def rules_of(docs: list[dict[str, Any]], role: str) -> set[tuple[str, str, str]]:
    """``(apiGroup, resource, verb)`` triples the Role grants."""
    (found,) = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == role]
    return {
        (group, resource, verb)
        for rule in found["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


# The chart's own Roles are rendered by the real Helm and checked against the
# RBAC contract table in tests/test_cluster_rbac.py.


def test_sensor_identity_shipped_with_the_events_is_least_privilege() -> None:
    events = real_events()
    docs = documents(events)
    sensor_sa = "cnai-events-sensor"
    sensors = [d for d in docs if d["kind"] == "Sensor"]
    assert sorted(s["metadata"]["name"] for s in sensors) == ["cnai-retrain", "cnai-score"]
    for sensor in sensors:
        assert sensor["spec"]["template"]["serviceAccountName"] == sensor_sa
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"] == [sensor_sa]
    assert not [d for d in docs if d["kind"] in {"ClusterRole", "ClusterRoleBinding"}]
    granted = rules_of(docs, sensor_sa)
    assert ("argoproj.io", "workflows", "create") in granted
    # What the v1.9 argoWorkflow trigger calls (tests/test_cluster_rbac.py has the sources).
    assert granted == {
        ("argoproj.io", "workflows", "create"),
        ("argoproj.io", "workflows", "list"),
        ("argoproj.io", "workflowtemplates", "get"),
    }


def go_rewrites() -> list[tuple[str, str]]:
    """The (pattern, replacement) pairs of the chart's inNamespace helper, as Python regexes."""
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    block = helpers[helpers.index('define "cnai-pipeline.inNamespace"') :]
    block = block[: block.index("{{- end -}}")]
    pairs = re.findall(
        r'regexReplaceAll \(printf "((?:[^"\\]|\\.)*)" \$from\) \$text '
        r'\(printf "((?:[^"\\]|\\.)*)" \$to\)',
        block,
    )
    assert len(pairs) == 2, block

    def go_string(literal: str) -> str:
        return literal.encode().decode("unicode_escape")

    return [(go_string(p), go_string(r)) for p, r in pairs]


@pytest.mark.parametrize("target", ["cnai", "ml-prod"])
def test_copied_manifests_move_into_the_release_namespace(target: str) -> None:
    copies = dict(real_events())
    with contextlib.suppress(ChartSourceMissingError):  # events alone still exercise it
        copies.update(compiled_manifests())
    source = VALUES["sourceNamespace"]
    for name, text in copies.items():
        for pattern, replacement in go_rewrites():
            python_pattern = pattern % re.escape(source)
            python_replacement = (
                (replacement % target).replace("${1}", "\\g<1>").replace("${2}", "\\g<2>")
            )
            text = re.sub(python_pattern, python_replacement, text)
        assert f".{source}.svc" not in text or source == target, name
        for doc in yaml.safe_load_all(text):
            for key, value in _namespaces(doc):
                assert value == target, f"{name}: {key} still {value!r}"


def _namespaces(node: Any, key: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "namespace" and isinstance(v, str):
                found.append((f"{key}.{k}", v))
            else:
                found.extend(_namespaces(v, f"{key}.{k}"))
    elif isinstance(node, list):
        for item in node:
            found.extend(_namespaces(item, key))
    return found


def test_chart_values_hold_no_secret_and_the_configmap_refuses_one() -> None:
    template = (CHART / "templates" / "configmap.yaml").read_text()
    guard = re.search(r'regexMatch "([^"]+)" \$key', template)
    assert guard is not None
    pattern = re.compile(guard.group(1))
    assert set(VALUES["config"]) == {"CNAI_HOME"}  # the pods' writable scratch home
    assert not any(pattern.search(key) for key in VALUES["config"])
    for secret in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "CNAI_CATALOG__URI"):
        assert pattern.search(secret), secret
    for setting in ("CNAI_MLFLOW_TRACKING_URI", "CNAI_CATALOG__WAREHOUSE", "CNAI_CHECKPOINT_ROOT"):
        assert not pattern.search(setting), setting
