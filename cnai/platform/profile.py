"""``cnai platform up|down|status``: start, stop and describe the home's local platform.

State lives in ``<home>/platform/state.json``: where the PostgreSQL cluster is, which OS
user runs it, and the ``mlflow server``'s pid and port. ``up`` is idempotent (it starts
only what is not running); ``down`` stops exactly what ``up`` started and puts the
home's config file back as it was before the first ``up``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import yaml

from cnai.errors import CnaiError
from cnai.platform import mlflow_server
from cnai.platform.postgres import PostgresCluster, find_bin_dir, server_user, user_can_write

DATABASES = ("iceberg", "mlflow")
"""Databases ``up`` creates: the Iceberg SQL catalog's and MLflow's backend store."""
CATALOG_NAME = "cnai"
"""PyIceberg catalog name the platform config sets."""
ARTIFACT_ROOT = "mlflow-artifacts:/cnai"
"""Artifact root of experiments cnai creates: proxied by the server to its folder."""
INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found: install them (Debian/Ubuntu: "
    "apt-get install postgresql-15; macOS: brew install postgresql@15) or set "
    "CNAI_POSTGRES_BIN to their folder"
)


def platform_dir(home: Path) -> Path:
    """``<home>/platform``: state, passfile, MLflow artifacts and logs."""
    return home / "platform"


def _state_path(home: Path) -> Path:
    return platform_dir(home) / "state.json"


def _config_path(home: Path) -> Path:
    return home / "config.yaml"


def _backup_path(home: Path) -> Path:
    return platform_dir(home) / "config.before.yaml"


def read_state(home: Path) -> dict[str, Any]:
    """The saved state, or ``{}`` when ``up`` never ran here."""
    path = _state_path(home)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CnaiError(f"{path}: unreadable platform state: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _write_state(home: Path, state: dict[str, Any]) -> None:
    path = _state_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    tmp.replace(path)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cluster_for(home: Path, state: dict[str, Any] | None = None) -> PostgresCluster | None:
    """The home's PostgreSQL cluster as recorded by ``up``, or None."""
    state = read_state(home) if state is None else state
    if not state.get("postgres_root"):
        return None
    return PostgresCluster(
        root=Path(state["postgres_root"]),
        bin_dir=Path(state["postgres_bin"]),
        passfile=platform_dir(home) / "pgpass",
        user=state.get("postgres_user"),
    )


def _choose_postgres_root(home: Path, user: str | None) -> Path:
    """``<home>/platform/postgres``, or a folder under the temp dir when the server's
    user cannot reach the home (root's home folders are often closed to others)."""
    preferred = platform_dir(home) / "postgres"
    if user is None:
        return preferred
    preferred.mkdir(parents=True, exist_ok=True)
    import pwd

    entry = pwd.getpwnam(user)
    os.chown(preferred, entry.pw_uid, entry.pw_gid)
    if user_can_write(user, preferred):
        return preferred
    preferred.rmdir()
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"cnai-platform-{digest}" / "postgres"


def up(home: Path) -> dict[str, Any]:
    """Start PostgreSQL and ``mlflow server`` for ``home`` and point its config at them."""
    state = read_state(home)
    bin_dir = Path(state["postgres_bin"]) if state.get("postgres_bin") else find_bin_dir()
    if bin_dir is None or not (bin_dir / "pg_ctl").is_file():
        raise CnaiError(INSTALL_HINT)
    if not state.get("postgres_root"):
        user = server_user()
        state.update(
            postgres_root=str(_choose_postgres_root(home, user)),
            postgres_bin=str(bin_dir),
            postgres_user=user,
        )
    cluster = cluster_for(home, state)
    assert cluster is not None
    if cluster.user is not None:
        cluster.root.parent.mkdir(parents=True, exist_ok=True)
    cluster.init()
    if not cluster.running():
        cluster.start(free_port())
    cluster.wait_ready()
    for name in DATABASES:
        cluster.ensure_database(name)
    _create_catalog_tables(home, cluster)
    _write_state(home, state)

    uri = f"http://127.0.0.1:{state.get('mlflow_port')}"
    pid = state.get("mlflow_pid")
    if not (mlflow_server.alive(pid) and mlflow_server.healthy(uri)):
        mlflow_server.stop(pid)  # a hung or half-dead one from before
        port = free_port()
        log = platform_dir(home) / "mlflow-server.log"
        pid = mlflow_server.start(
            cluster.uri("mlflow"), platform_dir(home) / "mlflow-artifacts", port, log
        )
        state.update(mlflow_pid=pid, mlflow_port=port)
        _write_state(home, state)
        uri = f"http://127.0.0.1:{port}"
        mlflow_server.wait_healthy(uri, pid, log)

    _write_config(home, cluster, uri, state)
    _write_state(home, state)
    return status(home)


def _create_catalog_tables(home: Path, cluster: PostgresCluster) -> None:
    """Create the SQL catalog's tables now: the first commands racing to create them on
    PostgreSQL could otherwise fail on a duplicate type/table."""
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog(
        CATALOG_NAME,
        uri=cluster.uri("iceberg"),
        warehouse=(platform_dir(home) / "warehouse").as_uri(),
    )
    catalog.engine.dispose()


def _write_config(
    home: Path, cluster: PostgresCluster, mlflow_uri: str, state: dict[str, Any]
) -> None:
    """Set the config's ``catalog`` and ``mlflow`` sections; keep a copy of the original."""
    config = _config_path(home)
    if not state.get("config_saved"):
        if config.is_file():
            shutil.copyfile(config, _backup_path(home))
        state["config_saved"] = True
        state["config_existed"] = config.is_file()
    raw: dict[str, Any] = {}
    if config.is_file():
        loaded = yaml.safe_load(config.read_text()) or {}
        raw = loaded if isinstance(loaded, dict) else {}
    raw["catalog"] = {
        "name": CATALOG_NAME,
        "properties": {
            "type": "sql",
            "uri": cluster.uri("iceberg"),
            "warehouse": (platform_dir(home) / "warehouse").as_uri(),
        },
    }
    raw["mlflow"] = {
        "tracking_uri": mlflow_uri,
        "registry_uri": mlflow_uri,
        "artifact_root": ARTIFACT_ROOT,
    }
    home.mkdir(parents=True, exist_ok=True)
    header = "# Written by `cnai platform up`; `cnai platform down` restores the previous file.\n"
    config.write_text(header + yaml.safe_dump(raw, sort_keys=False))


def down(home: Path, purge: bool = False) -> dict[str, Any]:
    """Stop what ``up`` started, restore the config; ``purge`` also deletes the data."""
    state = read_state(home)
    if not state:
        return {"home": str(home), "stopped": [], "purged": False}
    stopped: list[str] = []
    pid = state.get("mlflow_pid")
    if mlflow_server.alive(pid):
        mlflow_server.stop(pid)
        stopped.append("mlflow")
    cluster = cluster_for(home, state)
    if cluster is not None and cluster.running():
        cluster.stop()
        stopped.append("postgres")
    if state.get("config_saved"):
        backup = _backup_path(home)
        if state.get("config_existed") and backup.is_file():
            shutil.copyfile(backup, _config_path(home))
            backup.unlink()
        else:
            _config_path(home).unlink(missing_ok=True)
    state.update(mlflow_pid=None, config_saved=False, config_existed=False)
    purged = False
    if purge and cluster is not None:
        shutil.rmtree(cluster.root, ignore_errors=True)
        if cluster.root.parent.name.startswith("cnai-platform-"):  # the temp-dir fallback
            with contextlib.suppress(OSError):
                cluster.root.parent.rmdir()
        for name in ("mlflow-artifacts", "warehouse", "pgpass"):
            path = platform_dir(home) / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        state = {}
        purged = True
    if state:
        _write_state(home, state)
    else:
        _state_path(home).unlink(missing_ok=True)
    return {"home": str(home), "stopped": stopped, "purged": purged}


def status(home: Path) -> dict[str, Any]:
    """What runs for ``home``: PostgreSQL (port, data) and the MLflow server (URI, pid)."""
    state = read_state(home)
    cluster = cluster_for(home, state)
    pg_running = cluster is not None and cluster.running()
    pid = state.get("mlflow_pid")
    uri = f"http://127.0.0.1:{state['mlflow_port']}" if state.get("mlflow_port") else None
    ml_running = bool(uri) and mlflow_server.alive(pid) and mlflow_server.healthy(str(uri))
    return {
        "home": str(home),
        "up": bool(pg_running and ml_running),
        "postgres": {
            "running": pg_running,
            "port": cluster.port() if cluster is not None else None,
            "data": str(cluster.data) if cluster is not None else None,
            "user": state.get("postgres_user"),
            "databases": list(DATABASES),
        },
        "mlflow": {"running": ml_running, "uri": uri, "pid": pid},
        "config": str(_config_path(home)) if state.get("config_saved") else None,
    }
