"""A throwaway PostgreSQL cluster driven by the server's own tools (initdb, pg_ctl).

Hand-written rather than a library: the pip packages that embed PostgreSQL download
their own binaries, and what is needed here is small — run the installed ``initdb``
and ``pg_ctl`` against a data folder we own, as an unprivileged user when we are root
(PostgreSQL refuses to run as root), on 127.0.0.1 and a port of our choosing.

Access: the cluster has one role, ``cnai``, with a generated password. TCP connections
from 127.0.0.1 need that password (scram-sha-256); it lives only in a libpq password
file (mode 0600) that connection URIs name with ``passfile=``, never in a URI or the
config. The Unix socket sits in a folder only the server's user (and root) can enter.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cnai.errors import CnaiError, UsageError

ROLE = "cnai"
"""The one database role the cluster has; it owns every database cnai creates."""
CONF_INCLUDE = "cnai.conf"
"""File next to postgresql.conf holding the settings ``start`` writes (port, sockets)."""
START_TIMEOUT_S = 60
"""Seconds ``pg_ctl`` waits for the server to start or stop."""


def find_bin_dir(environ: dict[str, str] | None = None) -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None when PostgreSQL is absent.

    Looked for in order: ``$CNAI_POSTGRES_BIN``, ``pg_config --bindir``, the newest
    ``/usr/lib/postgresql/*/bin`` (Debian/Ubuntu), then ``PATH``.
    """
    env = os.environ if environ is None else environ
    candidates: list[Path] = []
    if env.get("CNAI_POSTGRES_BIN"):
        candidates.append(Path(env["CNAI_POSTGRES_BIN"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parent.name.split(".")],
        reverse=True,
    )
    candidates.extend(Path(p) for p in debian)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def server_user() -> str | None:
    """The OS user the server runs as: None (ourselves) unless we are root.

    As root: ``$CNAI_POSTGRES_USER``, else ``postgres`` when it exists, else ``nobody``.
    """
    if os.geteuid() != 0:
        return None
    for name in (os.environ.get("CNAI_POSTGRES_USER"), "postgres", "nobody"):
        if not name:
            continue
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise CnaiError("running as root and no unprivileged user for PostgreSQL (postgres, nobody)")


def as_user(user: str | None, argv: list[str]) -> list[str]:
    """``argv`` run as ``user`` (through runuser or setpriv), or unchanged for None."""
    if user is None:
        return argv
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *argv]
    entry = pwd.getpwnam(user)
    return [
        "setpriv",
        f"--reuid={entry.pw_uid}",
        f"--regid={entry.pw_gid}",
        "--init-groups",
        *argv,
    ]


def user_can_write(user: str | None, folder: Path) -> bool:
    """Whether ``user`` can reach and write ``folder`` (every parent traversable)."""
    if user is None:
        return os.access(folder, os.W_OK | os.X_OK)
    probe = subprocess.run(as_user(user, ["test", "-w", str(folder), "-a", "-x", str(folder)]))
    return probe.returncode == 0


@dataclass
class PostgresCluster:
    """One PostgreSQL cluster in ``root`` (data, socket folder, log), on 127.0.0.1."""

    root: Path
    """Folder holding ``data/``, ``sockets/`` and ``postgres.log``; the server's user owns it."""
    bin_dir: Path
    """Folder with ``initdb``, ``pg_ctl`` and ``postgres``."""
    passfile: Path
    """libpq password file for role ``cnai`` (mode 0600, owned by the caller)."""
    user: str | None = None
    """OS user the server runs as; None: the calling user."""

    @property
    def data(self) -> Path:
        """The data folder (PGDATA)."""
        return self.root / "data"

    @property
    def sockets(self) -> Path:
        """The Unix socket folder."""
        return self.root / "sockets"

    @property
    def log(self) -> Path:
        """The server log."""
        return self.root / "postgres.log"

    def initialized(self) -> bool:
        """Whether ``initdb`` has run here."""
        return (self.data / "PG_VERSION").is_file()

    def init(self) -> None:
        """Create the cluster (role ``cnai`` with a fresh password); no-op when it exists."""
        if self.initialized():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        self._own(self.root)
        self._own(self.sockets)
        os.chmod(self.sockets, 0o700)
        if not user_can_write(self.user, self.root):
            raise CnaiError(
                f"{self.root}: user {self.user} cannot write here (a parent folder is "
                "not traversable); choose another home"
            )
        password = secrets.token_urlsafe(24)
        pwfile = self.root / "initdb.pw"
        pwfile.write_text(password + "\n")
        os.chmod(pwfile, 0o600)
        self._own(pwfile)
        try:
            self._run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    ROLE,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                "initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"\ninclude_if_exists = '{CONF_INCLUDE}'\n")
        self.passfile.parent.mkdir(parents=True, exist_ok=True)
        self.passfile.touch(mode=0o600)
        os.chmod(self.passfile, 0o600)
        self.passfile.write_text(f"127.0.0.1:*:*:{ROLE}:{password}\n")

    def start(self, port: int) -> None:
        """Start the server on 127.0.0.1:``port`` and wait until it accepts connections."""
        settings = (
            "listen_addresses = '127.0.0.1'\n"
            f"port = {port}\n"
            f"unix_socket_directories = '{self.sockets}'\n"
            "max_connections = 200\n"
            "fsync = off\n"  # a throwaway cluster: speed over durability on power loss
        )
        include = self.data / CONF_INCLUDE
        include.write_text(settings)
        self._own(include)
        self._run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
             "-t", str(START_TIMEOUT_S), "start"],
            "pg_ctl start",
        )  # fmt: skip

    def restart(self) -> None:
        """Restart the server (fast shutdown: open connections are cut)."""
        self._run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
             "-t", str(START_TIMEOUT_S), "-m", "fast", "restart"],
            "pg_ctl restart",
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server (fast shutdown); no-op when it is not running."""
        if not self.running():
            return
        self._run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-w",
             "-t", str(START_TIMEOUT_S), "-m", "fast", "stop"],
            "pg_ctl stop",
        )  # fmt: skip

    def running(self) -> bool:
        """Whether a server runs on this data folder."""
        if not self.initialized():
            return False
        status = subprocess.run(
            as_user(self.user, [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "status"]),
            capture_output=True,
        )
        return status.returncode == 0

    def port(self) -> int | None:
        """The port written by the last ``start``, if any."""
        include = self.data / CONF_INCLUDE
        if not include.is_file():
            return None
        for line in include.read_text().splitlines():
            if line.startswith("port = "):
                return int(line.split("=", 1)[1])
        return None

    def uri(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        """SQLAlchemy URI of ``database`` over TCP; the password comes from the passfile."""
        port = self.port()
        if port is None:
            raise CnaiError(f"{self.root}: PostgreSQL was never started")
        return f"{driver}://{ROLE}@127.0.0.1:{port}/{database}?passfile={self.passfile}"

    def ensure_database(self, name: str) -> bool:
        """Create database ``name`` owned by ``cnai`` unless it exists; True when created."""
        import psycopg2

        if not name.replace("_", "").isalnum():
            raise UsageError(f"database name {name!r}: letters, digits and underscores only")
        conn = psycopg2.connect(
            host="127.0.0.1",
            port=self.port(),
            user=ROLE,
            dbname="postgres",
            passfile=str(self.passfile),
            connect_timeout=10,
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone():
                    return False
                cur.execute(f'CREATE DATABASE "{name}"')
                return True
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 30) -> None:
        """Block until the server accepts TCP connections."""
        deadline = time.monotonic() + timeout
        while True:
            ready = subprocess.run(
                [str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port()),
                 "-t", "2"],
                capture_output=True,
            )  # fmt: skip
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise CnaiError(f"PostgreSQL on port {self.port()} not ready; see {self.log}")
            time.sleep(0.2)

    def _own(self, path: Path) -> None:
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, argv: list[str], what: str) -> None:
        proc = subprocess.run(
            as_user(self.user, argv), capture_output=True, text=True, cwd=self.root
        )
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            log_tail = ""
            if self.log.is_file():
                log_tail = " | ".join(self.log.read_text(errors="replace").splitlines()[-3:])
            raise CnaiError(f"PostgreSQL {what} failed: {' '.join(tail)} {log_tail}".strip())
