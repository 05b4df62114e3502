"""scripts/kind-e2e.sh, the end-to-end run for users who have Docker.

It cannot run on the build machine (no Docker, kind, OpenTofu or registries); this
checks what can be checked offline: the shell parses (``bash -n``, and ShellCheck
when it is installed), the tfvars it writes name only declared root variables with
values their validations accept, and it performs every step the docs promise, in
order (tofu apply of the cluster, image build and ``kind load``, the full apply, a
signed push, the Workflow, the champion alias).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import hcl2

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "kind-e2e.sh"


def test_the_script_parses() -> None:
    proc = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    shellcheck = shutil.which("shellcheck")
    if shellcheck:  # Debian's shellcheck; not part of the venv set-up
        proc = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout


def test_the_tfvars_it_writes_use_declared_variables() -> None:
    text = SCRIPT.read_text()
    block = re.search(r'cat >"\$vars" <<EOF\n(.*?)\nEOF', text, re.S)
    assert block is not None
    names = re.findall(r"^(\w+)\s*=", block.group(1), re.M)
    with (REPO / "infra" / "opentofu" / "variables.tf").open() as handle:
        declared = {name.strip('"') for entry in hcl2.load(handle)["variable"] for name in entry}
    assert names and set(names) <= declared, set(names) - declared
    # `server` auth is refused with a public ingress; the script uses kind's NodePorts.
    assert 'expose                    = "nodeport"' in block.group(1)


def test_the_script_does_every_step_in_order() -> None:
    text = SCRIPT.read_text()
    steps = [
        "tofu apply -input=false -auto-approve -target=module.kind_cluster",
        'docker build -t "$image:$tag"',
        'kind load docker-image "$image:$tag" --name "$cluster"',
        "tofu apply -input=false -auto-approve)",
        "X-Hub-Signature-256: $signature",
        "events.argoproj.io/sensor=cnai-retrain",
        "Succeeded) break",
        "alias?name=digits-classifier&alias=champion",
    ]
    positions = [text.find(step) for step in steps]
    assert -1 not in positions, [s for s, p in zip(steps, positions, strict=True) if p < 0]
    assert positions == sorted(positions)
    assert "NOT RUN BY `make test`" in text
