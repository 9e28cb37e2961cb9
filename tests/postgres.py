"""A throwaway PostgreSQL cluster for tests (a pytest plugin, loaded by conftest.py).

`postgres_url` (session-scoped) starts a fresh cluster in a temporary directory with the server binaries of
Debian's `postgresql` package (`initdb`/`pg_ctl` on PATH, else the newest /usr/lib/postgresql/*/bin), listening on
127.0.0.1 only, on a free port, and on a unix socket in that directory. It yields a SQLAlchemy URL
`postgresql+psycopg://landscape:PASSWORD@127.0.0.1:PORT/landscape` for a password-authenticated role that owns the
database, and always stops the cluster (`pg_ctl stop -m immediate`) and deletes the directory at the end. Tests
share the database for the session: give each study its own name. Without the binaries the tests are skipped,
naming how to install them; `make test-postgres` installs them as root and sets LANDSCAPE_REQUIRE_POSTGRES=1, which
turns that skip into a failure. initdb refuses to run as root, so as root the cluster belongs to the `postgres`
system user (the package creates it) and every binary runs through `runuser -u postgres --`. The settings trade
durability for speed (fsync, synchronous_commit and full_page_writes off): a test cluster only. A pytest killed by
a signal it cannot catch leaves the server running and /tmp/landscape-pg-* behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

INSTALL_HINT = "install Debian's server with `apt-get install postgresql` (as root), or run `make test-postgres`"
SERVER_USER = "postgres"  # the system user Debian's package creates; the cluster's owner when we run as root
ROLE = DATABASE = "landscape"
SETTINGS = {  # appended to postgresql.conf: local-only, fast, not durable
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "50",
    "shared_buffers": "'32MB'",
    "log_min_messages": "warning",
}
TIMEOUT = 60  # seconds, for each subprocess call


def find_server_bin() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres: PATH first, then the newest /usr/lib/postgresql/N/bin."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        bindir = Path(os.path.realpath(initdb)).parent  # pg_ctl and postgres must be of the same version
        if (bindir / "pg_ctl").exists() and (bindir / "postgres").exists():
            return bindir

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", Path(path).parent.name))

    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if all((Path(bindir) / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return Path(bindir)
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class PostgresCluster:
    """A running throwaway cluster; `url` is what Optuna's RDBStorage takes."""

    bindir: Path
    base: Path  # the temporary directory: data/, socket/, server.log
    port: int
    password: str
    runas: list[str]  # [] or ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{ROLE}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    def run(self, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
        """Run a server binary (as the cluster's owner); raise with its output and the server log on failure."""
        cmd = [*self.runas, str(self.bindir / args[0]), *args[1:]]
        proc = subprocess.run(cmd, cwd=self.base, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "LC_ALL": "C", "LANG": "C"})
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}\n"
                               f"server log:\n{log}")
        return proc

    def stop(self) -> None:
        """Stop the server at once (no checkpoint: the data is thrown away); kill it if pg_ctl cannot."""
        pidfile = self.data / "postmaster.pid"
        if not pidfile.exists():
            return
        with contextlib.suppress(Exception):
            self.run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", timeout=45)
        if pidfile.exists():  # pg_ctl failed or timed out: kill the postmaster (its backends exit when it dies)
            with contextlib.suppress(Exception):
                pid = int(pidfile.read_text().split()[0])
                os.kill(pid, signal.SIGKILL)
                time.sleep(0.5)


def start_cluster(bindir: Path, base: Path, runas: list[str]) -> PostgresCluster:
    """initdb, configure, start on a free port (retried if another process took it), create the role and db."""
    password = secrets.token_hex(12)
    pwfile = base / "pwfile"  # the bootstrap superuser's password, read by initdb
    pwfile.write_text(password + "\n")
    (base / "socket").mkdir()
    if runas:
        uid, gid = pwd.getpwnam(SERVER_USER).pw_uid, pwd.getpwnam(SERVER_USER).pw_gid
        for path in (base, pwfile, base / "socket"):
            os.chown(path, uid, gid)
    cluster = PostgresCluster(bindir, base, 0, password, runas)
    cluster.run("initdb", "-D", str(cluster.data), "-U", SERVER_USER, "--pwfile", str(pwfile), "-E", "UTF8",
                "--locale=C", "--no-sync", "--auth-local=trust", "--auth-host=scram-sha-256")
    pwfile.unlink()
    with open(cluster.data / "postgresql.conf", "a") as conf:  # root may write it; the owner stays postgres
        conf.write("\n# landscape tests\n" + "".join(f"{k} = {v}\n" for k, v in SETTINGS.items()))
        conf.write(f"unix_socket_directories = '{base / 'socket'}'\n")
    for attempt in range(3):
        cluster.port = free_port()
        try:
            cluster.run("pg_ctl", "start", "-D", str(cluster.data), "-l", str(cluster.log), "-w", "-t", "60",
                        "-o", f"-p {cluster.port}", timeout=90)
            break
        except RuntimeError:
            cluster.stop()
            if attempt == 2:
                raise
    import psycopg  # the driver of the URL (psycopg 3); checked by the fixture before any of this
    from psycopg import sql

    with psycopg.connect(host="127.0.0.1", port=cluster.port, user=SERVER_USER, password=password,
                         dbname="postgres", connect_timeout=10, autocommit=True) as conn:  # CREATE DATABASE: no tx
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(ROLE), sql.Literal(password)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE), sql.Identifier(ROLE)))
    return cluster


def unavailable(reason: str) -> None:
    """Skip, or fail where the server is required (LANDSCAPE_REQUIRE_POSTGRES=1, as `make test-postgres` sets)."""
    if os.environ.get("LANDSCAPE_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"LANDSCAPE_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A fresh PostgreSQL cluster for the session (see the module docstring); skipped without the server."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("the PostgreSQL driver psycopg (3) is missing: pip install -e '.[postgres]'")
    bindir = find_server_bin()
    if bindir is None:
        unavailable(f"PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql: "
                    f"{INSTALL_HINT}")
    runas: list[str] = []
    if os.geteuid() == 0:  # initdb will not run as root
        runuser = shutil.which("runuser") or next((p for p in ("/usr/sbin/runuser", "/sbin/runuser")
                                                  if os.path.exists(p)), None)
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            unavailable(f"running as root and there is no {SERVER_USER!r} user to own the test cluster: "
                        f"{INSTALL_HINT}")
        if runuser is None:
            unavailable("running as root and `runuser` (util-linux) is missing: cannot run initdb as postgres")
        runas = [runuser, "-u", SERVER_USER, "--"]
    # Not pytest's tmp_path: its parents are private to root, and as root the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="landscape-pg-", dir="/tmp" if os.path.isdir("/tmp") else None))
    cluster = None
    try:
        cluster = start_cluster(bindir, base, runas)
        yield cluster
    finally:
        if cluster is not None:
            cluster.stop()
        else:  # start_cluster failed part-way: a server may still be up
            PostgresCluster(bindir, base, 0, "", runas).stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """`postgresql+psycopg://landscape:PASSWORD@127.0.0.1:PORT/landscape`, on a throwaway cluster for the session."""
    return postgres_cluster.url
