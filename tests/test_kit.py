"""The authoring kit (cnai.argo.kit): what every pipeline's templates get from one place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from cnai.argo import kit
from cnai.argo.kit.rayjob import step_parameters
from cnai.argo.pipeline import Platform
from cnai.engine.entrypoint import call, main, output_text


def sample_step(
    table: str | None = None,
    snapshot_id: int | None = None,
    workers: int = 2,
    lr: float = 0.01,
    use_gpu: bool = False,
    name: str = "m",
    *,
    settings: Any = None,
) -> dict[str, Any]:
    """A step function as the kit sees one: typed, with defaults, settings keyword-only."""
    return {
        "table": table,
        "snapshot_id": snapshot_id,
        "workers": workers,
        "lr": lr,
        "use_gpu": use_gpu,
        "name": name,
    }


def needs_a_dict(options: dict[str, Any], count: int = 1) -> dict[str, Any]:
    """A step with an argument one shell word cannot carry."""
    return {"options": options}


REF = "tests.test_kit:sample_step"
PLATFORM = Platform(
    image="registry.example/team/img",
    tag="t1",
    service_account="sa-x",
    config_map="cm-x",
    secret="sec-x",
    run_as=4242,
)


def test_the_entrypoint_is_derived_from_the_signature() -> None:
    assert kit.entrypoint(REF, ("table", "workers")) == (
        "python -m cnai.engine.entrypoint tests.test_kit:sample_step"
        " --param table={{inputs.parameters.table}}"
        " --param workers={{inputs.parameters.workers}}"
        " --result-key {{inputs.parameters.result_key}}"
    )
    # Default: every positional-or-keyword parameter (settings is keyword-only: resolved
    # in the pod), and a callable names itself by its module and qualified name.
    words = kit.entrypoint(sample_step, params_b64="extra", result_key=False).split()
    assert words[3] == "tests.test_kit:sample_step"
    assert [w.split("=")[0] for w in words if "=" in w] == [
        "table",
        "snapshot_id",
        "workers",
        "lr",
        "use_gpu",
        "name",
    ]
    assert words[-2:] == ["--params-b64", "{{inputs.parameters.extra}}"]


def test_declared_inputs_carry_the_function_defaults_and_convert_back() -> None:
    declared = {p.name: p.default for p in step_parameters(REF)}
    assert declared == {
        "table": "",
        "snapshot_id": "",
        "workers": "2",
        "lr": "0.01",
        "use_gpu": "false",
        "name": "m",
    }
    # The entrypoint turns exactly those texts back into the function's own defaults.
    pairs = [f"{name}={text}" for name, text in declared.items()]
    assert call(REF, pairs, None) == sample_step()
    assert call(REF, ["snapshot_id=7", "use_gpu=true"], None)["snapshot_id"] == 7


def test_wrong_step_parameters_fail_at_compile_time() -> None:
    with pytest.raises(TypeError, match="no positional-or-keyword parameter 'settings'"):
        step_parameters(REF, ("settings",))
    with pytest.raises(TypeError, match="'nope'"):
        kit.rayjob_step(PLATFORM, "x", REF, ("nope",))
    with pytest.raises(TypeError, match=r"'options'.*params_b64"):
        step_parameters("tests.test_kit:needs_a_dict")
    with pytest.raises(TypeError, match="workers='count'"):
        kit.rayjob_step(PLATFORM, "x", REF, ("table",), workers="count")
    from cnai.errors import UsageError

    with pytest.raises(UsageError, match="no_such_module"):
        step_parameters("no_such_module:step")

    def local_step(table: str = "") -> dict[str, Any]:
        return {}

    with pytest.raises(TypeError, match="module-level"):
        kit.entrypoint(local_step)


def test_the_rayjob_step_declares_its_inputs_and_its_manifest() -> None:
    step = kit.rayjob_step(
        PLATFORM, "fit", REF, ("table", "workers"), params_b64="hp", workers="workers"
    )
    built = step._build_template()
    inputs = {p.name: p.default for p in built.inputs.parameters}
    assert inputs == {"table": "", "workers": "2", "hp": None, "result_key": None}
    manifest = yaml.safe_load(built.resource.manifest.replace("{{inputs.parameters.workers}}", "3"))
    assert manifest["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] == 3
    assert built.resource.success_condition == kit.RAYJOB_SUCCESS
    assert built.resource.failure_condition == kit.RAYJOB_FAILURE


def _small_pipeline(platform: Platform, bad_output: str = "", bad_param: str = "") -> Any:
    from hera.workflows import DAG

    with kit.pipeline_template(
        platform,
        "small",
        entrypoint="main",
        parameters=[{"name": "table", "value": "", "description": "t"}],
    ) as template:
        first = kit.step_container(platform, "first", REF, ("table",), outputs=("table",))
        second = kit.rayjob_step(platform, "second", REF, ("table",))
        with DAG(name="main"):
            a = first(name="a", arguments=kit.workflow_args(template, bad_param or "table"))
            a >> second(
                name="b",
                when=kit.is_true(a, "table"),
                arguments={
                    "table": kit.output(a, bad_output or "table"),
                    "result_key": "k",
                },
            )
    return template


def test_outputs_are_referenced_through_hera_checked_lookups() -> None:
    doc = _small_pipeline(PLATFORM).to_dict()
    (dag,) = [t for t in doc["spec"]["templates"] if "dag" in t]
    task = dag["dag"]["tasks"][1]
    assert task["arguments"]["parameters"][0]["value"] == "{{tasks.a.outputs.parameters.table}}"
    assert task["when"] == "{{tasks.a.outputs.parameters.table}} == true"
    first = dag["dag"]["tasks"][0]
    assert first["arguments"]["parameters"][0]["value"] == "{{workflow.parameters.table}}"
    with pytest.raises(KeyError, match="tabel"):
        _small_pipeline(PLATFORM, bad_output="tabel")
    with pytest.raises(KeyError, match="tabel"):
        _small_pipeline(PLATFORM, bad_param="tabel")


def _compiled_pipelines() -> dict[str, dict[str, Any]]:
    from pipelines.retrain import pipeline as retrain
    from pipelines.score import pipeline as score

    docs = {"small": _small_pipeline(PLATFORM).to_dict()}
    for pipeline in (retrain, score):
        text = pipeline.manifests(PLATFORM)[f"{pipeline.name}.yaml"]
        docs[pipeline.name] = yaml.safe_load(text)
    return docs


@pytest.mark.parametrize("name", ["small", "cnai-retrain", "cnai-score"])
def test_every_template_gets_the_platform_security_defaults(name: str) -> None:
    doc = _compiled_pipelines()[name]
    spec = doc["spec"]
    assert spec["serviceAccountName"] == "sa-x"
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 4242,
        "runAsGroup": 4242,
        "fsGroup": 4242,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert doc["metadata"]["labels"] == {"app.kubernetes.io/part-of": "cnai"}
    pods = 0
    for template in spec["templates"]:
        process = template.get("script") or template.get("container")
        if process is not None:
            pods += 1
            assert process["image"] == "registry.example/team/img:t1"
            assert process["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "runAsNonRoot": True,
                "capabilities": {"drop": ["ALL"]},
            }
            assert process["envFrom"] == [
                {"configMapRef": {"name": "cm-x"}},
                {"secretRef": {"name": "sec-x"}},
            ]
            assert set(process["resources"]) == {"requests", "limits"}
            assert template["retryStrategy"]["expression"] == "asInt(lastRetry.exitCode) != 2"
        if "resource" in template:
            pods += 1
            manifest = yaml.safe_load(
                template["resource"]["manifest"].replace("{{", "x").replace("}}", "x")
            )
            cluster = manifest["spec"]["rayClusterSpec"]
            for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
                pod = group["template"]["spec"]
                assert pod["serviceAccountName"] == "sa-x"
                assert pod["securityContext"]["runAsUser"] == 4242
                (container,) = pod["containers"]
                assert container["image"] == "registry.example/team/img:t1"
                assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
                assert container["envFrom"][0] == {"configMapRef": {"name": "cm-x"}}
                assert set(container["resources"]) == {"requests", "limits"}
            assert template["retryStrategy"]["limit"] == 1
    assert pods >= 2


def test_step_container_outputs_are_written_by_the_entrypoint(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    code = main([REF, "--param", "use_gpu=true", "--outputs-dir", str(out)])
    assert code == 0
    assert (out / "use_gpu").read_text() == "true"  # what an Argo `when` compares
    assert (out / "workers").read_text() == "2"
    assert (out / "table").read_text() == ""
    assert output_text({"a": [1]}) == json.dumps({"a": [1]})


def test_work_keys_are_argo_memo_keys_and_include_the_code_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cnai.engine.memo import KEY_PATTERN
    from pipelines import tasks

    key = kit.work_key("train", "dv", {"lr": 0.1}, "a/b c")
    assert KEY_PATTERN.match(key) and key == kit.work_key("train", "dv", {"lr": 0.1}, "a/b c")
    monkeypatch.setattr(tasks, "code_version", lambda: "0.1.0+aaaa")
    before = tasks.train_key("dv", "", {"lr": 0.1}, "2", "t")
    monkeypatch.setattr(tasks, "code_version", lambda: "0.1.0+bbbb")
    assert tasks.train_key("dv", "", {"lr": 0.1}, "2", "t") != before
    # The version itself digests cnai and the packages the pipeline names.
    assert kit.code_version(("steps",)) != kit.code_version(())


def test_record_on_table_sets_properties_without_a_new_snapshot(tmp_path: Path) -> None:
    import pandas as pd

    from cnai.catalog import load_table
    from cnai.config import load_settings
    from cnai.ingest import ingest
    from cnai.progress import Progress

    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(
        "dataset: {table: shop.t, features: [a], label: label, classes: [0, 1], "
        "feature_shape: [1]}\n"
    )
    source = tmp_path / "rows.parquet"
    pd.DataFrame({"a": [0.0, 1.0], "label": [0, 1]}).to_parquet(source)
    settings = load_settings(home, environ={})
    ingest(str(source), settings=settings, progress=Progress(quiet=True))
    before = load_table(settings).current_snapshot()
    kit.record_on_table(settings, "shop.t", {"cnai.pipeline.trained-key": "work-1"})
    after = load_table(settings)
    assert after.properties["cnai.pipeline.trained-key"] == "work-1"
    assert after.current_snapshot() == before
