"""Build the pipeline image on this machine and run its tasks in containers, as Argo does.

``make image-test`` runs this (as root, with podman). Steps, each printed with the
elapsed time:

1. Tools: podman, runc and debootstrap, installed with apt-get when missing.
2. Base image ``python:3.11.7-slim-bookworm``: used as is when podman already has it,
   else pulled; where no registry is reachable, a local **test double** is built and
   tagged with the official name: ``debootstrap --variant=minbase bookworm`` from the
   Debian mirror plus the runtime libraries the official image carries, and a CPython
   3.11.7 copied under /usr/local (``CNAI_IMAGE_TEST_PYTHON``, default the pyenv
   install at /root/.pyenv/versions/3.11.7) with pip from its ``ensurepip``. The
   rootfs tarball is cached (``CNAI_IMAGE_TEST_CACHE``, default
   /var/cache/cnai-image-test) and the image stays in podman's store, so later runs
   skip this step. It is labelled ``dev.cnai.test-double=true``.
   ``CNAI_IMAGE_TEST_BASE=standin`` skips the pull (at most 3 minutes otherwise).
3. The project's Dockerfile, unchanged, with ``podman build --pull=never --network
   host`` and the host's CA certificates mounted (with a pip.conf naming them).
   The torch source is the Dockerfile's ``TORCH_SOURCE`` build argument: a folder holding the
   ``torch-<pinned>+cpu`` wheel (``CNAI_IMAGE_TEST_TORCH_WHEELS``, else pip's
   ``PIP_FIND_LINKS`` folders, else /opt/wheels) is mounted at /wheels and used with
   ``--find-links``; without one, the Dockerfile's default (PyTorch's CPU index).
4. Tasks in containers of the image, exactly as Argo starts them: the chart is
   rendered with the real Helm (tests/pod.py), the compiled template's command and
   args get the runner's input file mounted at /argo/staging/script, the container
   runs as uid/gid 1000 with the env of the rendered ConfigMap, the test Secret and
   the template's own env, and the output parameters are read back from
   /tmp/hera-outputs. The ingest task must ingest the 1797 digits rows; a second
   ingest (same home) must add none; the exit handler must succeed.

Containers run with ``--runtime runc --ulimit nofile=1024:1024 --ulimit
nproc=1024:1024`` (crun refuses hybrid cgroup hierarchies; root in a container
here cannot raise rlimits). Exit 0 when everything passed, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.pod import (  # noqa: E402  (the repository root must be importable first)
    RUN_AS,
    SCRIPT_PATH,
    PodTask,
    pod_task,
    render_chart,
)

BASE_IMAGE = "docker.io/library/python:3.11.7-slim-bookworm"
"""The Dockerfile's FROM, fully qualified."""
IMAGE = "localhost/cnai-pipeline:image-test"
"""Tag of the image this script builds."""
PYTHON_VERSION = "3.11.7"
DEBIAN_SUITE = "bookworm"
STANDIN_PACKAGES = (
    "ca-certificates,netbase,tzdata,libbz2-1.0,libexpat1,libffi8,liblzma5,libncursesw6,"
    "libreadline8,libsqlite3-0,libssl3,libuuid1,zlib1g,libnsl2,libtirpc3,libgdbm6"
)
"""Runtime libraries of the official image that CPython's extension modules link to."""
PODMAN_RUN = ["--runtime", "runc"]
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
TOOLS = {"podman": "podman", "runc": "runc", "debootstrap": "debootstrap"}
"""Command -> Debian package that provides it."""

_START = time.monotonic()


def say(message: str) -> None:
    """One progress line with the elapsed time."""
    print(f"[image-test {time.monotonic() - _START:6.0f}s] {message}", flush=True)


def run(cmd: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` (output streamed unless captured); raise on a non-zero exit."""
    return subprocess.run(list(cmd), check=True, text=True, **kwargs)  # type: ignore[call-overload]


def podman(
    *args: str, capture: bool = False, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``podman --runtime runc ARGS`` (``env``: added to podman's own environment)."""
    return subprocess.run(
        ["podman", *PODMAN_RUN, *args],
        check=check,
        text=True,
        capture_output=capture,
        env={**os.environ, **env} if env else None,
    )


def ensure_tools() -> None:
    """Install podman, runc and debootstrap with apt-get when one is missing."""
    missing = sorted({pkg for cmd, pkg in TOOLS.items() if shutil.which(cmd) is None})
    if not missing:
        say("tools: " + podman("--version", capture=True).stdout.strip())
        return
    if os.geteuid() != 0:
        raise SystemExit(f"image-test: {', '.join(missing)} missing; install them (needs root)")
    say(f"installing {' '.join(missing)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL)
    run(["apt-get", "install", "-y", "-qq", *missing], env=env, stdout=subprocess.DEVNULL)
    say("tools: " + podman("--version", capture=True).stdout.strip())


def ensure_base(cache: Path) -> None:
    """The base image: present, pulled, or the local stand-in (cached)."""
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        say(f"base {BASE_IMAGE}: present ({describe_base()})")
        return
    if os.environ.get("CNAI_IMAGE_TEST_BASE", "auto") != "standin":
        say(f"base {BASE_IMAGE}: pulling")
        pulled = subprocess.run(
            ["timeout", "180", "podman", "pull", "--quiet", BASE_IMAGE],
            text=True,
            capture_output=True,
            check=False,
        )
        if pulled.returncode == 0:
            say(f"base {BASE_IMAGE}: pulled")
            return
        reason = (pulled.stderr.strip().splitlines() or ["?"])[-1]
        say(f"base: no registry reachable ({reason[:160]}); building the local stand-in")
    tarball = cache / f"python-{PYTHON_VERSION}-slim-{DEBIAN_SUITE}-standin.tar"
    if not tarball.exists():
        build_standin_rootfs(cache, tarball)
    else:
        say(f"base stand-in: cached rootfs {tarball}")
    podman(
        "import",
        "--change",
        "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--change",
        "ENV LANG=C.UTF-8",
        "--change",
        f"ENV PYTHON_VERSION={PYTHON_VERSION}",
        "--change",
        "LABEL dev.cnai.test-double=true",
        "--change",
        'CMD ["python3"]',
        "--message",
        "cnai image-test stand-in for python:3.11.7-slim-bookworm",
        str(tarball),
        BASE_IMAGE,
        capture=True,
    )
    say(f"base {BASE_IMAGE}: stand-in imported ({describe_base()})")


def describe_base() -> str:
    """``official`` or ``local test double``, with the image's size."""
    info = podman(
        "image",
        "inspect",
        BASE_IMAGE,
        "--format",
        '{{index .Labels "dev.cnai.test-double"}} {{.Size}}',
        capture=True,
    ).stdout.split()
    double = bool(info) and info[0] == "true"
    size = int(info[-1]) if info and info[-1].isdigit() else 0
    return f"{'local test double' if double else 'registry image'}, {size / 1e6:.0f} MB"


def find_python() -> Path:
    """The CPython 3.11.7 installation copied into the stand-in."""
    candidates = [
        os.environ.get("CNAI_IMAGE_TEST_PYTHON", ""),
        f"/root/.pyenv/versions/{PYTHON_VERSION}",
    ]
    for prefix in filter(None, candidates):
        python = Path(prefix) / "bin" / "python3.11"
        if python.exists():
            version = run(
                [str(python), "-c", "import platform; print(platform.python_version())"],
                capture_output=True,
            ).stdout.strip()
            if version == PYTHON_VERSION:
                return Path(prefix)
    raise SystemExit(
        f"image-test: no CPython {PYTHON_VERSION} found for the base stand-in; set "
        "CNAI_IMAGE_TEST_PYTHON to its prefix (e.g. a pyenv version folder)"
    )


def build_standin_rootfs(cache: Path, tarball: Path) -> None:
    """debootstrap + CPython under /usr/local + pip, packed as ``tarball``."""
    prefix = find_python()
    mirror = os.environ.get("CNAI_IMAGE_TEST_MIRROR", "http://deb.debian.org/debian")
    cache.mkdir(parents=True, exist_ok=True)
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache))
    try:
        say(f"base stand-in: debootstrap --variant=minbase {DEBIAN_SUITE} from {mirror}")
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={STANDIN_PACKAGES}",
                DEBIAN_SUITE,
                str(rootfs),
                mirror,
            ],
            stdout=subprocess.DEVNULL,
        )
        (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
        (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(
            f"Types: deb\nURIs: {mirror}\nSuites: {DEBIAN_SUITE} {DEBIAN_SUITE}-updates\n"
            "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
            "Types: deb\nURIs: http://deb.debian.org/debian-security\n"
            f"Suites: {DEBIAN_SUITE}-security\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        )
        say(f"base stand-in: CPython {PYTHON_VERSION} from {prefix} into /usr/local")
        copy_python(prefix, rootfs / "usr" / "local")
        run(["chroot", str(rootfs), "/sbin/ldconfig"])
        run(
            ["chroot", str(rootfs), "/usr/local/bin/python3", "-m", "ensurepip", "--default-pip"],
            stdout=subprocess.DEVNULL,
        )
        for name, target in (("pip", "pip3"), ("python", "python3")):
            link = rootfs / "usr/local/bin" / name
            if not link.exists():
                link.symlink_to(target)
        run(
            [
                "chroot",
                str(rootfs),
                "/usr/local/bin/python",
                "-c",
                "import ssl, sqlite3, ctypes, lzma, bz2, zlib, uuid, readline, pip",
            ],
            stdout=subprocess.DEVNULL,
        )
        for folder in ("var/lib/apt/lists", "var/cache/apt/archives"):
            for item in (rootfs / folder).glob("*"):
                if item.is_file():
                    item.unlink()
        partial = tarball.with_suffix(".partial")
        run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."])
        partial.rename(tarball)
        say(f"base stand-in: rootfs cached as {tarball} ({tarball.stat().st_size / 1e6:.0f} MB)")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def copy_python(prefix: Path, dest: Path) -> None:
    """The interpreter, its stdlib and headers, without site-packages or the test suite."""
    bin_dir = dest / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for item in (prefix / "bin").iterdir():
        if re.match(r"^(python|pydoc|idle|2to3)", item.name):
            target = bin_dir / item.name
            if item.is_symlink():
                target.symlink_to(os.readlink(item))
            else:
                shutil.copy2(item, target)
                fix_shebang(target, prefix)
    stdlib = f"python{PYTHON_VERSION[:4]}"
    skip = shutil.ignore_patterns("__pycache__", "test", "idle_test", "tkinter", "turtledemo")
    for name in ("include", "lib"):

        def ignore(folder: str, names: list[str], name: str = name) -> set[str]:
            drop = set(skip(folder, names))
            if Path(folder) == prefix / "lib" / stdlib:
                drop.add("site-packages")
            return drop

        shutil.copytree(
            prefix / name, dest / name, symlinks=True, ignore=ignore, dirs_exist_ok=True
        )
    (dest / "lib" / stdlib / "site-packages").mkdir(exist_ok=True)


def fix_shebang(path: Path, prefix: Path) -> None:
    """Point a copied script's ``#!`` at /usr/local."""
    data = path.read_bytes()
    old = f"#!{prefix}/".encode()
    if data.startswith(old):
        path.write_bytes(b"#!/usr/local/" + data[len(old) :])


def torch_wheels() -> Path | None:
    """A folder holding the pinned torch CPU wheel, or None (use the Dockerfile's default)."""
    pinned = re.search(r"^torch==(\S+)$", (REPO / "constraints.txt").read_text(), re.M)
    version = pinned.group(1) if pinned else ""
    folders = [os.environ.get("CNAI_IMAGE_TEST_TORCH_WHEELS", "")]
    folders += os.environ.get("PIP_FIND_LINKS", "").split()
    folders.append("/opt/wheels")
    for folder in filter(None, folders):
        if any(Path(folder).glob(f"torch-{version}+cpu-*.whl")):
            return Path(folder)
    return None


def image_id() -> str:
    """The ID of this script's image, or "" when there is none."""
    found = podman("image", "inspect", IMAGE, "--format", "{{.Id}}", capture=True, check=False)
    return found.stdout.strip() if found.returncode == 0 else ""


def build_image(cache: Path) -> None:
    """``podman build`` of the project's Dockerfile on the base.

    The host's CA certificates are mounted, and a pip.conf naming their bundle
    (pip otherwise trusts only its own certifi copy, which lacks a proxy's CA);
    mounts are not part of the image.
    """
    pip_conf = cache / "pip.conf"
    pip_conf.write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
    cmd = [
        "build",
        "--pull=never",
        "--layers=false",  # no intermediate images left behind (a new build replaces the old)
        "--network",
        "host",
        *ULIMITS,
        "--volume",
        "/etc/ssl/certs:/etc/ssl/certs:ro",
        "--volume",
        f"{pip_conf}:/etc/pip.conf:ro",
        "--tag",
        IMAGE,
    ]
    wheels = torch_wheels()
    if wheels is not None:
        cmd += [
            "--volume",
            f"{wheels}:/wheels:ro",
            "--build-arg",
            "TORCH_SOURCE=--find-links /wheels",
        ]
        say(f"build: torch from the CPU wheel in {wheels}")
    else:
        say("build: torch from the Dockerfile's default source (PyTorch's CPU index)")
    say(f"build: podman {' '.join(cmd)} {REPO}")
    started = time.monotonic()
    previous = image_id()
    for attempt in (1, 2):
        built = podman(*cmd, "--file", str(REPO / "Dockerfile"), str(REPO), check=False)
        if built.returncode == 0:
            break
        if attempt == 2:
            raise SystemExit(f"image-test: podman build failed (exit {built.returncode})")
        say("build: failed; retrying once (a network hiccup reaching PyPI or the mirror)")
    if previous and previous != image_id():
        podman("rmi", previous, check=False, capture=True)  # this script's older build
    size = podman("image", "inspect", IMAGE, "--format", "{{.Size}}", capture=True).stdout.strip()
    say(f"build: {IMAGE} built in {time.monotonic() - started:.0f}s, {int(size) / 1e9:.2f} GB")


def run_task(task: PodTask, work: Path, home_volume: str) -> dict[str, str]:
    """One task in a container of the image; returns its output parameters."""
    run_dir = work / task.template
    shutil.rmtree(run_dir, ignore_errors=True)
    outputs = run_dir / "outputs"
    outputs.mkdir(parents=True)
    os.chown(outputs, RUN_AS, RUN_AS)
    script = run_dir / "script"
    script.write_text(task.script)
    script.chmod(0o444)
    # An env-file holds one line per variable; a multi-line value (the project's
    # configuration, CNAI_PROJECT_CONFIG) is passed by name from podman's environment,
    # as the kubelet passes a ConfigMap key of several lines.
    multiline = {k: v for k, v in task.env.items() if "\n" in v}
    env_file = run_dir / "env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in task.env.items() if k not in multiline))
    by_name = [arg for name in sorted(multiline) for arg in ("--env", name)]
    out_dirs = {str(Path(p).parent) for p in task.outputs.values()}
    if len(out_dirs) > 1:
        raise SystemExit(f"template {task.template}: outputs in several folders {out_dirs}")
    volumes = ["--volume", f"{script}:{SCRIPT_PATH}:ro"]
    for folder in out_dirs:
        volumes += ["--volume", f"{outputs}:{folder}"]
    home = task.env.get("CNAI_HOME")
    if home:
        volumes += ["--volume", f"{home_volume}:{home}"]
    cmd = [
        "run",
        "--rm",
        *ULIMITS,
        "--user",
        f"{RUN_AS}:{RUN_AS}",
        "--network",
        "none",
        "--security-opt",
        "no-new-privileges",
        "--cap-drop",
        "ALL",
        "--env-file",
        str(env_file),
        *by_name,
        *volumes,
        "--entrypoint",
        task.argv[0],
        IMAGE,
        *task.argv[1:],
    ]
    say(f"task {task.template}: podman {' '.join(cmd)}")
    started = time.monotonic()
    done = podman(*cmd, check=False, env=multiline)
    if done.returncode != 0:
        raise SystemExit(f"image-test: task {task.template} failed (exit {done.returncode})")
    folder = next(iter(out_dirs), "")
    values = {
        name: (outputs / Path(path).relative_to(folder)).read_text()
        for name, path in task.outputs.items()
    }
    took = time.monotonic() - started
    say(f"task {task.template}: ok in {took:.0f}s: {json.dumps(values)[:400]}")
    return values


def run_tasks(work: Path) -> None:
    """ingest (twice: the second adds nothing) and the exit handler, as Argo runs them."""
    objects = render_chart({"image": {"repository": IMAGE.rsplit(":", 1)[0], "tag": "image-test"}})
    home_volume = work / "home"
    home_volume.mkdir(parents=True, exist_ok=True)
    os.chown(home_volume, RUN_AS, RUN_AS)
    first = run_task(pod_task(objects, "ingest", {}), work, str(home_volume))
    expect(first, {"needed": "true", "changed": "true", "rows_added": "1797"}, "ingest")
    second = run_task(pod_task(objects, "ingest", {}), work, str(home_volume))
    expect(
        second,
        {"changed": "false", "rows_added": "0", "snapshot_id": first["snapshot_id"]},
        "re-ingest",
    )
    outcome = {
        "workflow_name": "image-test",
        "status": "Succeeded",
        "failures": "[]",
        "duration": "5",
        "git_sha": "",
        "git_branch": "main",
        "trigger": "manual",
    }
    run_task(pod_task(objects, "record-outcome", outcome), work, str(home_volume))


def expect(values: dict[str, str], wanted: dict[str, str], what: str) -> None:
    """Fail with the difference when an output parameter is not the expected one."""
    wrong = {k: (values.get(k), v) for k, v in wanted.items() if values.get(k) != v}
    if wrong:
        raise SystemExit(f"image-test: {what}: unexpected outputs (got, wanted): {wrong}")


def main() -> int:
    """Every step; exit status 0 when all passed."""
    if os.geteuid() != 0:
        print("image-test: run as root (podman builds and debootstrap need it)", file=sys.stderr)
        return 2
    cache = Path(os.environ.get("CNAI_IMAGE_TEST_CACHE", "/var/cache/cnai-image-test"))
    ensure_tools()
    ensure_base(cache)
    build_image(cache)
    with tempfile.TemporaryDirectory(prefix="cnai-image-test-") as work:
        os.chmod(work, 0o755)
        run_tasks(Path(work))
    say("passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
