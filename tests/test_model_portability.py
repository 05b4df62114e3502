"""A logged model loads where the project that trained it is not importable.

The model is pickled by reference to its classes; a project's own model class (the
factory's module, as ``steps.models`` is for the reference project) must travel with
the model, or ``mlflow models serve`` and any other consumer outside the project fail
with ``ModuleNotFoundError`` (found by ``benchmarks/serve.py`` after the model
factory moved from the library into the reference project).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cnai.config import DatasetSpec

pytestmark = pytest.mark.slow

NET = """
import torch


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
            self.lin.bias.zero_()

    def forward(self, x):
        return self.lin(x.reshape(len(x), -1))
"""

LOAD = """
import json, sys
import mlflow, pandas as pd
try:
    import acme_models  # noqa: F401
    sys.exit("the project is importable here: the test proves nothing")
except ModuleNotFoundError:
    pass
model = mlflow.pyfunc.load_model(sys.argv[1])
frame = pd.DataFrame({"a": [5.0, 0.0], "b": [0.0, 5.0], "c": [1.0, 1.0]})
print(json.dumps([str(v) for v in model.predict(frame)]))
"""


def _project(root: Path) -> None:
    package = root / "acme_models"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(textwrap.dedent(NET))


def test_a_model_of_project_code_loads_in_a_process_without_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from cnai.model_io import log_model, project_code_paths

    _project(tmp_path / "project")
    monkeypatch.syspath_prepend(str(tmp_path / "project"))
    import acme_models.nets

    try:
        module = acme_models.nets.Tiny()
        assert project_code_paths(module) == [str((tmp_path / "project/acme_models").resolve())]
        spec = DatasetSpec(table="t.rows", features=("a", "b", "c"), classes=("x", "y"))
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(uri)
        try:
            experiment = mlflow.create_experiment(
                "portability", artifact_location=(tmp_path / "artifacts").as_uri()
            )
            with mlflow.start_run(experiment_id=experiment) as run:
                log_model(module, spec, np.zeros((2, 3), np.float32))
        finally:
            mlflow.set_tracking_uri(previous)
    finally:
        for name in [n for n in sys.modules if n.partition(".")[0] == "acme_models"]:
            del sys.modules[name]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CNAI_PROJECT")}
    env["MLFLOW_TRACKING_URI"] = uri
    done = subprocess.run(
        [sys.executable, "-c", LOAD, f"runs:/{run.info.run_id}/model"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["x", "y"]


def test_library_and_installed_classes_are_not_shipped() -> None:
    from cnai.model_io import project_code_paths
    from cnai.models import mlp

    assert project_code_paths(mlp((1, 4), 3)) == []


def test_a_class_of_the_running_script_is_not_shipped(tmp_path: Path) -> None:
    """cloudpickle stores a class defined in ``__main__`` by value; the script itself is
    not copied into the model."""
    script = tmp_path / "train_here.py"
    script.write_text(
        "import torch\n"
        "from cnai.model_io import project_code_paths\n"
        "class Net(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return x\n"
        "print(project_code_paths(Net()))\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.strip() == "[]"
