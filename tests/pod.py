"""What a pipeline pod gets in the cluster, derived from the real sources.

Shared by the pod-fidelity test (tests/test_pod_fidelity.py, a task process on
this machine) and the image test (scripts/image_test.py, a container of the real
image). Everything a pod sees comes from where the cluster takes it:

- the WorkflowTemplate and the settings ConfigMap from ``helm template`` of the
  chart (the real Helm in the venv, ``.venv/bin/helm``);
- the Secret from :data:`SECRET_TEST_VALUES` (the chart never creates Secrets:
  OpenTofu's modules/pipeline does; the chart only names it in values.yaml);
- the image's own ``ENV`` lines from the Dockerfile (HOME, PATH semantics, ...);
- the command line as Argo's executor builds it for a script template: the
  template's command and args plus the staged source file, whose text is the
  template's ``source`` with ``{{inputs.parameters}}`` replaced by the JSON of the
  input parameters (argo-workflows v4.1.2 workflow/common/common.go
  ``ExecutorScriptSourcePath = "/argo/staging/script"``; workflow/common/util.go
  ``replaceMap["inputs.parameters"] = json.Marshal(Inputs.Parameters)``).

Nothing here reads the developer's shell environment.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "infra" / "opentofu" / "charts" / "cnai-pipeline"
DOCKERFILE = REPO / "Dockerfile"
SCRIPT_PATH = "/argo/staging/script"
"""Where Argo's executor stages a script template's source (appended to args)."""
RUN_AS = 1000
"""uid/gid of the image's user and of the templates' securityContext."""
CODE_FOLDERS = ("cnai", "steps", "pipelines")
"""What the Dockerfile copies into /app (besides the CODE_FILES)."""
CODE_FILES = ("constraints.txt", "pyproject.toml", "README.md", "cnai.yaml")

SECRET_TEST_VALUES: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": "test-access-key",
    "AWS_SECRET_ACCESS_KEY": "test-secret-key",
    "CNAI_CATALOG__S3__ACCESS_KEY_ID": "test-access-key",
    "CNAI_CATALOG__S3__SECRET_ACCESS_KEY": "test-secret-key",
}
"""Test payload of the pipeline Secret: the keys OpenTofu's modules/pipeline writes
(infra/opentofu/modules/pipeline/main.tf, kubernetes_secret_v1.pipeline) except
CNAI_CATALOG__URI, whose Postgres catalog does not exist here (the embedded SQLite
catalog under CNAI_HOME stands in)."""


def helm_binary() -> Path:
    """The Helm the set-up installs into the venv (scripts/install_k8s_tools.py)."""
    helm = REPO / ".venv" / "bin" / "helm"
    if not helm.exists():
        found = shutil.which("helm")
        if found is None:
            raise FileNotFoundError(f"{helm}: not installed; run `make .venv/.installed`")
        return Path(found)
    return helm


def render_chart(
    values: dict[str, Any] | None = None, namespace: str = "cnai"
) -> list[dict[str, Any]]:
    """Every object ``helm template`` renders from the chart with ``values`` on top."""
    cmd = [str(helm_binary()), "template", "cnai-pipeline", str(CHART), "--namespace", namespace]
    if values:
        cmd += ["--values", "-"]
    done = subprocess.run(
        cmd,
        input=yaml.safe_dump(values or {}),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed: {done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def find_object(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The rendered object of ``kind`` named ``name``."""
    for obj in objects:
        if obj.get("kind") == kind and (obj.get("metadata") or {}).get("name") == name:
            return obj
    raise LookupError(f"the rendered chart has no {kind} {name}")


def chart_values() -> dict[str, Any]:
    """The chart's default values.yaml."""
    return dict(yaml.safe_load((CHART / "values.yaml").read_text()))


def image_env(dockerfile: Path = DOCKERFILE) -> dict[str, str]:
    """The ``ENV`` settings of the Dockerfile's final stage (``KEY=VALUE`` form)."""
    env: dict[str, str] = {}
    text = dockerfile.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["FROM"]:
            env = {}
        elif words[:1] == ["ENV"]:
            for word in words[1:]:
                key, _, value = word.partition("=")
                env[key] = value
    return env


@dataclass
class PodTask:
    """One script-template task as the pod's main container starts it."""

    template: str
    """Name of the WorkflowTemplate's template."""
    argv: list[str]
    """Command and args, with the staged source path appended."""
    script: str
    """Text of the staged source file."""
    env: dict[str, str]
    """ConfigMap + Secret (envFrom, in order) then the template's own env."""
    outputs: dict[str, str] = field(default_factory=dict)
    """Output parameter name -> the container path it is read from."""


def pod_task(
    objects: list[dict[str, Any]],
    template_name: str,
    arguments: dict[str, str],
    secret_data: dict[str, str] | None = None,
    workflow: str = "cnai-retrain",
) -> PodTask:
    """The rendered WorkflowTemplate's ``template_name`` as a pod would run it.

    ``arguments`` are the task's input values; inputs without one take their
    default. The env is what the template's ``envFrom`` names, looked up in the
    rendered chart (ConfigMap) and ``secret_data`` (the Secret), then its ``env``.
    """
    wft = find_object(objects, "WorkflowTemplate", workflow)
    template = next(t for t in wft["spec"]["templates"] if t["name"] == template_name)
    script = template["script"]
    env: dict[str, str] = {}
    for source in script.get("envFrom") or []:
        if "configMapRef" in source:
            data = find_object(objects, "ConfigMap", source["configMapRef"]["name"]).get("data")
            env.update({str(k): str(v) for k, v in (data or {}).items()})
        elif "secretRef" in source:
            env.update(SECRET_TEST_VALUES if secret_data is None else secret_data)
    for item in script.get("env") or []:
        env[str(item["name"])] = str(item.get("value", ""))
    params = []
    for param in (template.get("inputs") or {}).get("parameters") or []:
        value = arguments.get(param["name"], param.get("default", param.get("value")))
        if value is None:
            raise LookupError(f"template {template_name}: no value for {param['name']}")
        params.append({**param, "value": str(value)})
    source_text = str(script.get("source", "")).replace("{{inputs.parameters}}", json.dumps(params))
    if "{{" in source_text:
        raise ValueError(f"template {template_name}: unresolved reference in {source_text!r}")
    outputs = {
        str(o["name"]): str(o["valueFrom"]["path"])
        for o in (template.get("outputs") or {}).get("parameters") or []
        if "path" in (o.get("valueFrom") or {})
    }
    argv = [*script.get("command", []), *script.get("args", []), SCRIPT_PATH]
    return PodTask(template_name, argv, source_text, env, outputs)


def copy_code(dest: Path) -> Path:
    """A copy of what the Dockerfile puts in /app, owned by root and read-only."""
    dest.mkdir(parents=True)
    for name in CODE_FILES:
        shutil.copy2(REPO / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in CODE_FOLDERS:
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    for root, dirs, files in os.walk(dest):
        for name in files:
            os.chmod(Path(root) / name, 0o444)
        for name in dirs:
            os.chmod(Path(root) / name, 0o555)
    os.chmod(dest, 0o555)
    return dest


@dataclass
class SandboxResult:
    """What a task left behind in :func:`run_sandboxed`."""

    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    """Output parameter name -> the text of its file (missing files are left out)."""


def run_sandboxed(
    task: PodTask, work: Path, python_bin: Path, timeout: float = 300
) -> SandboxResult:
    """Run ``task`` on this machine the way the image runs it (needs root).

    In a private mount namespace (``unshare --mount``): a fresh tmpfs ``/tmp`` (the
    container's, where Hera writes its outputs), a tmpfs ``/home`` holding
    ``$HOME`` (from the Dockerfile's ENV, owned by uid 1000, as ``useradd
    --create-home`` leaves it) and a root-owned, read-only copy of the code as the
    working directory (as ``WORKDIR /app`` + ``COPY`` leave /app); then ``setpriv``
    drops to uid/gid 1000 with no supplementary groups and runs the task's command
    line with exactly the Dockerfile's ENV, ``PATH`` naming ``python_bin`` (the
    image's interpreter here)
    and the task's env. The staged source file lives at ``<sandbox>/argo/staging/
    script`` instead of /argo/staging/script (this machine's / is not ours to change).
    """
    work.mkdir(parents=True, exist_ok=True)
    code = copy_code(work / "code")
    out = work / "out"
    out.mkdir()
    env = {
        **image_env(),
        "PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin",
        **task.env,
    }
    config = {
        "argv": task.argv,
        "script": task.script,
        "env": env,
        "code": str(code),
        "out": str(out),
        "outputs": task.outputs,
        "timeout": timeout,
        "interpreter": os.path.realpath(python_bin / "python"),
    }
    config_path = work / "sandbox.json"
    config_path.write_text(json.dumps(config))
    cmd = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        str(python_bin / "python"),
        "-m",
        "tests.pod",
        str(config_path),
    ]
    done = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout + 60, check=False
    )
    if not (out / "rc").exists():
        raise RuntimeError(f"sandbox set-up failed: {done.stdout}{done.stderr}")
    outputs = {p.name: p.read_text() for p in (out / "outputs").glob("*") if p.is_file()}
    return SandboxResult(
        int((out / "rc").read_text()),
        (out / "stdout").read_text(),
        (out / "stderr").read_text(),
        outputs,
    )


def _sandbox_main(config_path: str) -> None:
    """Inside the private mount namespace, as root: mount, drop privileges, run."""
    config = json.loads(Path(config_path).read_text())
    env: dict[str, str] = config["env"]
    home = Path(env["HOME"])
    sandbox = Path("/home/.cnai-pod")

    def mount(*args: str) -> None:
        subprocess.run(["mount", *args], check=True)

    # The interpreter may live in a folder uid 1000 cannot enter (pyenv under /root,
    # mode 0700): show only its subtree in a world-readable tmpfs over that folder.
    real = Path(config["interpreter"])
    for folder in real.parents:
        if folder != Path("/") and not os.stat(folder).st_mode & 0o001:
            child = folder / real.relative_to(folder).parts[0]
            stash = Path(tempfile.mkdtemp(prefix="cnai-pod-"))
            mount("--bind", str(child), str(stash))
            mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(folder))
            child.mkdir()
            mount("--move", str(stash), str(child))
            stash.rmdir()
            break
    mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/home")
    home.mkdir(parents=True)
    os.chown(home, RUN_AS, RUN_AS)
    app, out = sandbox / "app", sandbox / "out"
    for folder in (app, out, sandbox / "argo" / "staging"):
        folder.mkdir(parents=True)
    mount("--bind", config["code"], str(app))
    mount("--bind", config["out"], str(out))
    script = sandbox / "argo" / "staging" / "script"
    script.write_text(config["script"])
    script.chmod(0o444)
    mount("-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/tmp")
    argv = list(config["argv"])
    if argv[-1] == SCRIPT_PATH:
        argv[-1] = str(script)
    drop = ["setpriv", f"--reuid={RUN_AS}", f"--regid={RUN_AS}", "--clear-groups", "--"]
    with open(out / "stdout", "w") as stdout, open(out / "stderr", "w") as stderr:
        try:
            code = subprocess.run(
                [*drop, *argv],
                cwd=app,
                env=env,
                stdout=stdout,
                stderr=stderr,
                timeout=config["timeout"],
                check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            code = 124
    (out / "outputs").mkdir()
    for name, path in config["outputs"].items():
        if Path(path).is_file():
            shutil.copyfile(path, out / "outputs" / name)
    (out / "rc").write_text(str(code))


if __name__ == "__main__":
    import sys

    _sandbox_main(sys.argv[1])
