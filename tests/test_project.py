"""Projects: ``[tool.cnai]`` discovery, configuration layering, ``--pipeline``, and the
layering of the code itself (the library never imports the reference project).

The out-of-repo tests build a tiny project in a temporary folder (its own pyproject.toml,
configuration file and a 2-task Hera pipeline made of plain Script templates) and drive
it through the real ``cnai`` console entry point, so nothing of this repository's
reference project (pipelines/, steps/, cnai.yaml) is involved.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cnai.config import load_settings
from cnai.errors import UsageError
from cnai.project import find_project, resolve_pipeline, task_env
from tests.conftest import REPO

TINY_FLOW = '''
"""Two no-op tasks; the second reports what its process sees."""
from hera.workflows import DAG, Parameter, Script, WorkflowTemplate
from hera.workflows import models as m

from cnai.argo.pipeline import Pipeline

REPORT = """
import os
from cnai.config import load_settings
import tinyflow.marker  # the project's own module: the project root is on the path
settings = load_settings()
with open("/tmp/report", "w") as out:
    out.write(f"{settings.dataset.table} {settings.model_factory} {tinyflow.marker.MARK}")
"""


def build(name):
    def template(platform):
        with WorkflowTemplate(name=name, entrypoint="main") as wt:
            first = Script(name="first", image=platform.image, command=["python"],
                           source="print('first')")
            report = Script(
                name="report",
                image=platform.image,
                command=["python"],
                source=REPORT,
                outputs=[Parameter(name="report", value_from=m.ValueFrom(path="/tmp/report"))],
            )
            with DAG(name="main"):
                first(name="first") >> report(name="report")
        return wt
    return template


pipeline = Pipeline(name="tiny-flow", build=build("tiny-flow"), description="two no-op tasks")
other = Pipeline(name="other-flow", build=build("other-flow"))
not_a_pipeline = 42
'''


def make_project(root: Path, table: str | None = None, extra: str = "") -> Path:
    """A project folder outside the repository, with two pipelines and a config file."""
    (root / "tinyflow").mkdir(parents=True)
    (root / "tinyflow" / "__init__.py").write_text("")
    (root / "tinyflow" / "flow.py").write_text(TINY_FLOW)
    (root / "tinyflow" / "marker.py").write_text("MARK = 'project-module'\n")
    (root / "pyproject.toml").write_text(
        "[project]\nname = 'tiny'\n\n[tool.cnai]\n"
        'pipelines = { tiny = "tinyflow.flow:pipeline", other = "tinyflow.flow:other" }\n'
        'default-pipeline = "tiny"\nconfig = "project.yaml"\n' + extra
    )
    (root / "project.yaml").write_text(
        f"dataset:\n  table: {table or 'proj.fromproject'}\n  features: [a, b]\n"
        "  classes: [0, 1]\ntrain:\n  model_factory: tinyflow.models:net\n"
    )
    return root


def cnai(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python -m cnai ARGS`` in ``cwd`` with no CNAI_* variable of ours leaking in."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CNAI_", "MLFLOW_"))}
    return subprocess.run(
        [sys.executable, "-m", "cnai", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


# --- discovery ---------------------------------------------------------------


def test_project_is_found_walking_up_or_from_cnai_project(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    nested = project / "a" / "b"
    nested.mkdir(parents=True)
    found = find_project(nested, environ={})
    assert found is not None and found.root == project.resolve()
    assert found.pipelines == {"tiny": "tinyflow.flow:pipeline", "other": "tinyflow.flow:other"}
    assert found.default_pipeline == "tiny" and found.config == project / "project.yaml"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert find_project(elsewhere, environ={}) is None
    assert find_project(elsewhere, environ={"CNAI_PROJECT": str(project)}) == found
    # A pyproject.toml without [tool.cnai] is not cnai's: the walk goes on above it.
    (nested / "pyproject.toml").write_text("[project]\nname = 'inner'\n")
    assert find_project(nested, environ={}) == found
    with pytest.raises(UsageError, match=r"CNAI_PROJECT .*no pyproject.toml with a \[tool.cnai\]"):
        find_project(elsewhere, environ={"CNAI_PROJECT": str(elsewhere)})


def test_the_repository_is_the_reference_project() -> None:
    found = find_project(REPO, environ={})
    assert found is not None and found.root == REPO
    assert found.pipelines["retrain"] == "pipelines.retrain:pipeline"
    assert resolve_pipeline(None, found).name == "cnai-retrain"


def test_task_env_carries_project_and_config_files(tmp_path: Path) -> None:
    project = find_project(make_project(tmp_path / "proj"), environ={})
    env = task_env(project, {"CNAI_CONFIG": "rel.yaml", "PYTHONPATH": "/x"})
    assert env["CNAI_PROJECT"] == str(tmp_path / "proj")
    assert env["PYTHONPATH"] == os.pathsep.join([str(tmp_path / "proj"), "/x"])
    assert env["CNAI_CONFIG"] == str(Path("rel.yaml").resolve())


# --- configuration layering ----------------------------------------------------


def test_layering_defaults_project_home_env(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    home = tmp_path / "home"
    home.mkdir()
    env = {"CNAI_PROJECT": str(project)}
    layered = load_settings(home, environ=env)
    assert layered.dataset.table == "proj.fromproject"  # project over built-in defaults
    assert layered.dataset.features == ("a", "b")
    assert layered.model_factory == "tinyflow.models:net"
    assert layered.catalog_name == "cnai"  # nobody set it: the built-in default

    (home / "config.yaml").write_text("dataset:\n  table: home.fromhome\n")
    layered = load_settings(home, environ=env)
    assert layered.dataset.table == "home.fromhome"  # home over project, section by section
    assert layered.model_factory == "tinyflow.models:net"  # the project's train section
    # The home's dataset section is one unit: it does not inherit the project's features.
    assert layered.dataset.features == load_settings(home, environ={}).dataset.features

    named = tmp_path / "named.yaml"
    named.write_text("train:\n  model_factory: named.models:net\n")
    layered = load_settings(home, environ={**env, "CNAI_CONFIG": str(named)})
    assert layered.model_factory == "named.models:net"  # $CNAI_CONFIG replaces the home file
    assert layered.dataset.table == "proj.fromproject"

    env_wins = {**env, "CNAI_CONFIG": str(named), "CNAI_MODEL_FACTORY": "env.models:net"}
    assert load_settings(home, environ=env_wins).model_factory == "env.models:net"


def test_project_config_text_from_the_environment_replaces_the_file(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    env = {"CNAI_PROJECT": str(project), "CNAI_PROJECT_CONFIG": "dataset:\n  table: pod.table\n"}
    assert load_settings(tmp_path / "home", environ=env).dataset.table == "pod.table"
    with pytest.raises(UsageError, match=r"^\$CNAI_PROJECT_CONFIG: dataset.table"):
        load_settings(
            tmp_path / "home", environ={**env, "CNAI_PROJECT_CONFIG": "dataset: {table: 7}"}
        )
    big = {**env, "CNAI_CONFIG_MAX_BYTES": "10"}
    with pytest.raises(UsageError, match="larger than 10 bytes"):
        load_settings(tmp_path / "home", environ=big)


def test_a_bad_project_config_names_the_project_file(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    (project / "project.yaml").write_text("dataset:\n  classes: 3\n")
    with pytest.raises(UsageError, match=rf"^{project / 'project.yaml'}: dataset.classes"):
        load_settings(tmp_path / "home", environ={"CNAI_PROJECT": str(project)})


# --- [tool.cnai] checks and --pipeline, through the CLI -------------------------


@pytest.mark.parametrize(
    ("table", "rule"),
    [
        ('pipelines = { a = "x:y" }\nfoo = 1\n', "unknown key 'foo'"),
        ('pipelines = "x:y"\n', "pipelines must be a table"),
        ('pipelines = { a = "nocolon" }\n', "pipelines.a must be a 'module:object' string"),
        ('pipelines = { A_b = "x:y" }\n', "pipelines.A_b: the name must be lowercase"),
        ('pipelines = { a = "x:y" }\ndefault-pipeline = "b"\n', "default-pipeline 'b' must name"),
        ('pipelines = { a = "x:y" }\nconfig = "missing.yaml"\n', "config 'missing.yaml': file not"),
    ],
)
def test_bad_tool_cnai_values_exit_2_with_one_line(tmp_path: Path, table: str, rule: str) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.cnai]\n" + table)
    result = cnai(["--home", str(tmp_path / "home"), "pipelines", "--json"], tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and rule in lines[0] and str(tmp_path / "pyproject.toml") in lines[0]
    assert json.loads(result.stdout)["exit_code"] == 2


def test_pipelines_lists_the_project_and_unknown_refs_exit_2(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    home = ["--home", str(tmp_path / "home")]
    listed = cnai([*home, "pipelines", "--json"], project)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["pipelines"] == [
        {
            "name": "tiny",
            "ref": "tinyflow.flow:pipeline",
            "template": "tiny-flow",
            "description": "two no-op tasks",
            "default": True,
        },
        {
            "name": "other",
            "ref": "tinyflow.flow:other",
            "template": "other-flow",
            "description": "",
            "default": False,
        },
    ]
    human = cnai([*home, "pipelines"], project)
    assert "tiny (default)" in human.stdout and "other-flow" in human.stdout
    for ref, rule in [
        ("nope", "--pipeline 'nope': not a pipeline of"),
        ("tinyflow.flow:not_a_pipeline", "is a int, not a cnai.argo.pipeline.Pipeline"),
        ("tinyflow.nowhere:x", "cannot be resolved"),
    ]:
        result = cnai([*home, "compile", "--pipeline", ref], project)
        assert result.returncode == 2, (ref, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and rule in lines[0], lines
    for command in (["run"], ["submit"], ["runs", "retry", "some-run"]):
        result = cnai([*home, *command, "--pipeline", "nope", "--json"], project)
        assert result.returncode == 2, (command, result.stderr)
        assert "--pipeline 'nope': not a pipeline of" in result.stderr
        assert json.loads(result.stdout)["exit_code"] == 2


def test_a_second_pipeline_outside_the_repo_compiles_and_runs(tmp_path: Path) -> None:
    """Friction 1 too: the tasks read the dataset contract from ``$CNAI_CONFIG`` (not
    ``<home>/config.yaml``) and import the project's own modules from their sandbox."""
    project = make_project(tmp_path / "proj")
    home = ["--home", str(tmp_path / "home")]
    out = tmp_path / "out"
    compiled = cnai([*home, "compile", "--pipeline", "other", "--out", str(out)], project)
    assert compiled.returncode == 0, compiled.stderr
    doc = yaml.safe_load((out / "other-flow.yaml").read_text())
    assert doc["metadata"]["name"] == "other-flow"
    assert [t["name"] for t in doc["spec"]["templates"]] == ["first", "report", "main"]

    named = tmp_path / "elsewhere.yaml"
    named.write_text("dataset:\n  table: named.fromconfig\n  features: [x]\n")
    env = {"CNAI_CONFIG": str(named)}
    ran = cnai([*home, "run", "--pipeline", "tiny", "--json"], project, env)
    assert ran.returncode == 0, ran.stderr[-3000:]
    summary = json.loads(ran.stdout)
    assert summary["run_id"].startswith("tiny-flow-")
    assert summary["phase"] == "Succeeded" and summary["model"] is None
    tasks = {t["name"]: t for t in summary["tasks"]}
    assert tasks["report"]["outputs"]["report"] == (
        "named.fromconfig tinyflow.models:net project-module"
    )
    # The default pipeline, from a sub-folder of the project.
    sub = project / "sub"
    sub.mkdir()
    again = cnai([*home, "run", "--json"], sub)
    assert again.returncode == 0, again.stderr[-3000:]
    report = {t["name"]: t for t in json.loads(again.stdout)["tasks"]}["report"]
    assert report["outputs"]["report"] == "proj.fromproject tinyflow.models:net project-module"


# --- the library never imports the reference project --------------------------


def _imports(folder: Path) -> dict[str, set[str]]:
    """Top-level packages each top-level package of ``folder``'s code imports."""
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        package = path.relative_to(REPO).parts[0]
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found.setdefault(package, set()).update(n.split(".")[0] for n in names)
    return found


def test_cnai_never_imports_the_reference_project() -> None:
    offenders = []
    for path in sorted((REPO / "cnai").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            modules = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            for module in modules:
                if module.split(".")[0] in ("pipelines", "steps"):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {module}")
    assert offenders == []


def test_no_import_cycle_between_top_level_packages() -> None:
    ours = {"cnai", "pipelines", "steps"}
    graph: dict[str, set[str]] = {name: set() for name in ours}
    for name in ours:
        graph[name] = (_imports(REPO / name).get(name, set()) & ours) - {name}
    assert graph["cnai"] == set()
    import graphlib

    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError on a cycle


# --- the events gateway finds the pipeline its Sensor triggers -----------------


def test_gateway_runs_the_project_pipeline_the_sensor_submits(tmp_path: Path) -> None:
    from cnai.events.runner import default_launcher
    from cnai.events.server import new_run_id
    from cnai.project import pipeline_for_template

    assert pipeline_for_template("cnai-retrain", find_project(REPO, environ={})) == "retrain"
    assert default_launcher(tmp_path, "retrain")[-3:] == ["run", "--pipeline", "retrain"]
    run_id = new_run_id("tiny-flow")
    assert run_id.startswith("tiny-flow-") and len(run_id) == len("tiny-flow-") + 8

    # The repository's Sensor submits cnai-retrain, which the tiny project has not.
    project = make_project(tmp_path / "proj")
    result = cnai(
        [
            "--home",
            str(tmp_path / "home"),
            "events",
            "serve",
            "--insecure",
            "--events-dir",
            str(REPO / "events"),
            "--port",
            "0",
        ],
        project,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "WorkflowTemplate 'cnai-retrain'" in lines[0], lines


def test_help_texts_state_the_configured_default_not_digits(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cnai.cli.main import main

    for command in ("ingest", "train", "tune"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "cnai.digits" not in text, command
        assert "the configuration's dataset.table" in text, command


# --- the platform's names come from the configuration, not from the engine -------


def test_env_from_and_katib_names_come_from_the_configured_platform(tmp_path: Path) -> None:
    from cnai.argo.platform import platform_for
    from cnai.engine.spec import check_supported, env_from_local
    from cnai.tuning.katib import trial_job

    project = make_project(tmp_path / "proj")
    with (project / "project.yaml").open("a") as handle:
        handle.write(
            "pipeline:\n  config_map: team-config\n  secret: team-secrets\n  run_as: 2000\n"
        )
    platform = platform_for(
        load_settings(tmp_path / "home", environ={"CNAI_PROJECT": str(project)})
    )
    assert (platform.config_map, platform.secret, platform.run_as) == (
        "team-config",
        "team-secrets",
        2000,
    )
    doc = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "w"},
        "spec": {
            "entrypoint": "t",
            "templates": [
                {
                    "name": "t",
                    "script": {
                        "image": "i",
                        "command": ["python"],
                        "source": "print(1)",
                        "envFrom": [{"configMapRef": {"name": "team-config"}}],
                    },
                }
            ],
        },
    }
    assert check_supported(doc, env_from_local(platform)) == []
    refused = check_supported(doc)  # the default Platform's names
    assert len(refused) == 1 and "'team-config' has no local equivalent" in refused[0]

    job = trial_job("img", [], platform)["spec"]["template"]["spec"]
    assert job["containers"][0]["envFrom"] == [
        {"configMapRef": {"name": "team-config"}},
        {"secretRef": {"name": "team-secrets"}},
    ]
    assert job["securityContext"]["runAsUser"] == 2000


def test_a_bad_pipeline_section_is_one_line_naming_the_key() -> None:
    from cnai.argo.platform import platform_from_section

    with pytest.raises(UsageError, match=r"unknown field pipeline.imgae"):
        platform_from_section({"imgae": "x"})
    with pytest.raises(UsageError, match=r"pipeline.run_as must be a uid"):
        platform_from_section({"run_as": "root"})


# --- the cluster gets the project's configuration ---------------------------------


def test_chart_configmap_carries_the_project_config() -> None:
    from tests.pod import render_chart

    configmap = next(o for o in render_chart() if o["kind"] == "ConfigMap")
    assert configmap["data"]["CNAI_PROJECT_CONFIG"] == (REPO / "cnai.yaml").read_text()


def test_gateway_pipeline_option_picks_the_sensor_of_that_pipeline(tmp_path: Path) -> None:
    """``--pipeline score`` evaluates the Sensor submitting cnai-score; a pipeline no
    Sensor submits is exit 2 naming it."""
    home = ["--home", str(tmp_path / "home")]
    project = make_project(tmp_path / "proj")
    events = ["events", "serve", "--insecure", "--events-dir", str(REPO / "events")]
    result = cnai([*home, *events, "--pipeline", "tiny", "--port", "0"], project)
    assert result.returncode == 2, result.stderr
    assert "expected one Sensor submitting WorkflowTemplate 'tiny-flow', found 0" in result.stderr


def test_library_use_from_a_project_folder_imports_the_project_modules(tmp_path: Path) -> None:
    """A plain script of the project (no CLI) that loads the settings can resolve the
    module references its configuration names: before, ``load_settings`` layered the
    project's cnai.yaml in but left the project off ``sys.path`` ("No module named")."""
    project = make_project(tmp_path / "proj")
    (project / "tinyflow" / "models.py").write_text("def net(input_shape, num_classes):\n    ...\n")
    script = tmp_path / "plain.py"
    script.write_text(
        "import sys, tempfile\n"
        "from cnai.config import load_settings\n"
        "from cnai.resolve import resolve_callable\n"
        "s = load_settings(tempfile.mkdtemp(), environ={})\n"
        "print(resolve_callable(s.model_factory, what='model factory').__module__)\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CNAI_", "PYTHONPATH"))}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=project, env=clean, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "tinyflow.models"
