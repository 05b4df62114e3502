"""``cnai lint``: the compiled pipeline passes; typical mistakes are caught with their path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from cnai.lint import lint_document
from cnai.lint.derived import argo_problems
from pipelines.retrain import TEMPLATE_NAME, compile_manifests
from pipelines.score import pipeline as score_pipeline
from tests.conftest import run_cli

PIPELINES = {
    "cnai-retrain": lambda: compile_manifests()[f"{TEMPLATE_NAME}.yaml"],
    "cnai-score": lambda: score_pipeline.manifests()["cnai-score.yaml"],
}
"""Every pipeline of the reference project: each is validated the same way."""


def cli(args: list[str], home: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the cnai CLI in this process (same code path as the console script)."""
    from cnai.cli.main import main

    capsys.readouterr()
    code = main(["--home", str(home), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def compiled() -> dict[str, Any]:
    return yaml.safe_load(compile_manifests()[f"{TEMPLATE_NAME}.yaml"])


def _paths(doc: dict[str, Any], schemas: Path | None = None) -> list[str]:
    return [f"{p.path}: {p.message}" for p in lint_document(doc, "t.yaml", schemas)]


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_compiled_template_validates_against_the_installed_strict_argo_schema(name: str) -> None:
    """No upstream copy needed: the schema is derived from the installed Hera models."""
    compiled = yaml.safe_load(PIPELINES[name]())
    assert argo_problems(compiled) == []
    assert _paths(compiled) == []
    # The schema really is applied: a wrong type anywhere is reported with its path.
    broken = copy.deepcopy(compiled)
    broken["spec"]["activeDeadlineSeconds"] = "soon"
    assert [p for p, _ in argo_problems(broken)] == ["spec.activeDeadlineSeconds"]


def test_compiled_template_passes_lint_from_the_cli(tmp_path: Path, tmp_home: Path) -> None:
    result = run_cli(["compile", "--out", str(tmp_path / "out")], tmp_home)
    assert result.returncode == 0, result.stderr
    written = tmp_path / "out" / f"{TEMPLATE_NAME}.yaml"
    lint = run_cli(["--json", "lint", str(written)], tmp_home)
    assert lint.returncode == 0, lint.stderr
    assert lint.json()["problems"] == []


def test_typos_and_dangling_references_exit_2_with_every_path(
    compiled: dict[str, Any], tmp_path: Path, tmp_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = copy.deepcopy(compiled)
    templates = bad["spec"]["templates"]
    templates[0]["retryStategy"] = templates[0].pop("retryStrategy")  # typo
    dag = next(t for t in templates if "dag" in t)
    dag["dag"]["tasks"][1]["arguments"]["parameters"][0]["value"] = (
        "{{tasks.ingest.outputs.parameters.nope}}"
    )
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    code, _, stderr = cli(["lint", str(path)], tmp_home, capsys)
    assert code == 2
    assert f"{path}: spec.templates[0].retryStategy: unknown field" in stderr
    assert (
        "dag.tasks[1].arguments.parameters[0].value: "
        "{{tasks.ingest.outputs.parameters.nope}} does not resolve" in stderr
    )


def test_semantic_checks(compiled: dict[str, Any]) -> None:
    doc = copy.deepcopy(compiled)
    templates = doc["spec"]["templates"]
    dag = next(t for t in templates if "dag" in t)["dag"]["tasks"]
    dag[0]["depends"] = "register"  # ingest <- register <- ... <- ingest
    dag[1]["template"] = "tuen"
    tune = next(t for t in templates if t["name"] == "tune")
    tune["memoize"]["key"] = "tune_{{inputs.parameters.result_key}}"
    tune["memoize"]["maxAge"] = "a while"
    train = next(t for t in templates if t["name"] == "train")
    train["resource"]["manifest"] = train["resource"]["manifest"].replace(
        "minReplicas: 1", "minReplicas: lots"
    )
    dag[2]["when"] = "{{tasks.ingest.outputs.parameters.needed}} == a-b"
    doc["spec"]["onExit"] = "missing-handler"
    found = "\n".join(_paths(doc))
    assert "dependency cycle" in found
    assert "template 'tuen' does not exist" in found
    assert "memoize.key: does not match Argo's cache key rule" in found
    assert "memoize.maxAge" in found
    assert "workerGroupSpecs[0].minReplicas" in found and "RayJob schema" in found
    assert "when:" in found and "hint" in found
    assert "spec.onExit: template 'missing-handler' does not exist" in found


def test_using_outputs_without_depending_is_reported(compiled: dict[str, Any]) -> None:
    doc = copy.deepcopy(compiled)
    dag = next(t for t in doc["spec"]["templates"] if "dag" in t)["dag"]["tasks"]
    register = next(t for t in dag if t["name"] == "register")
    register["depends"] = "ingest"
    found = "\n".join(_paths(doc))
    assert "uses outputs of task 'train-result' without depending on it" in found


def test_not_a_workflow_and_bad_yaml(
    tmp_path: Path, tmp_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.yaml").write_text("kind: ConfigMap\n")
    (tmp_path / "b.yaml").write_text("kind: [\n")
    (tmp_path / "c.yaml").write_text("apiVersion: example.com/v1\nkind: Widget\n")
    code, _, stderr = cli(["lint", str(tmp_path)], tmp_home, capsys)
    assert code == 2
    assert "a.yaml: apiVersion: required for ConfigMap" in stderr
    assert "b.yaml: (yaml): not valid YAML" in stderr
    assert "c.yaml: kind: no schema for example.com/v1 Widget" in stderr
    code, _, stderr = cli(["lint", str(tmp_path / "nope.yaml")], tmp_home, capsys)
    assert code == 2 and "no such file" in stderr


def test_when_lint_follows_govaluate(compiled: dict[str, Any]) -> None:
    """One evaluator (issue 14): lint flags what govaluate rejects, not what it accepts."""
    doc = copy.deepcopy(compiled)
    dag = next(t for t in doc["spec"]["templates"] if "dag" in t)["dag"]["tasks"]
    needed = "{{tasks.ingest.outputs.parameters.needed}}"
    dag[2]["when"] = f"{needed} in (yes, true) && -1 < 0"  # 'in' and prefix '-': valid Argo
    assert not [p for p in _paths(doc) if ".when" in p]
    dag[2]["when"] = f"{needed} =~ '[[:alpha:]]'"  # valid Argo; only `cnai run` refuses it
    assert not [p for p in _paths(doc) if ".when" in p]
    dag[2]["when"] = f"{needed} =~ '(?=x)'"  # RE2 has no look-ahead: Argo fails
    assert [p for p in _paths(doc) if ".when" in p and "Unable to compile regexp" in p]
