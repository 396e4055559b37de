"""A throwaway PostgreSQL server for tests: initdb into a temporary folder, serve on a free loopback port, stop.

Contract:
- ``find_binaries()`` returns the folder holding ``initdb`` and ``postgres`` (Debian's
  /usr/lib/postgresql/<major>/bin, newest major first, or PATH), or None when PostgreSQL is not installed
  (``make postgres`` installs Debian's ``postgresql`` package).
- ``PostgresServer.start()`` runs initdb and the server as an unprivileged user when the tests run as root
  (PostgreSQL refuses root): ``SILVERSET_PG_USER`` (default ``nobody``) owns the data folder. The server listens on
  127.0.0.1 only, its unix socket sits in the temporary folder, connections need a random scram-sha-256 password,
  and durability is off (fsync, synchronous_commit, full-page writes) since the data is thrown away. The server's
  TimeZone is deliberately not UTC, so code that stores naive local times shows up in the tests.
- ``create_database()`` returns a SQLAlchemy URL (``postgresql+psycopg://``) of a new, empty database;
  ``drop_database()`` drops one even while a client still holds connections.
- ``lend_database()`` / ``give_back()``: a database whose tables (if any) are empty, with identities restarted, as a
  new one would behave for the studio (tables it lacks are created by the studio itself); a returned database is
  emptied with TRUNCATE (far cheaper than CREATE DATABASE) and lent again, or dropped if that fails. A test that
  needs a database without tables at all uses ``create_database()``.
- ``stop()`` shuts the server down and deletes the folder; it is idempotent and also runs at interpreter exit.
  The server gets SIGQUIT from the kernel if the process that started it dies without stopping it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import glob
import logging
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from tests.helpers.ports import free_port

_LOGGER = logging.getLogger(__name__)
SUPERUSER = "silverset"
# Not UTC on purpose (and not a whole-hour offset): a timestamp stored without its zone comes back shifted.
SERVER_TIMEZONE = "Asia/Kolkata"
_PR_SET_PDEATHSIG = 1


def find_binaries() -> Path | None:
    """The folder with ``initdb`` and ``postgres``, newest Debian major first, then PATH; None if absent."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for folder in candidates:
        if os.access(Path(folder) / "initdb", os.X_OK) and os.access(Path(folder) / "postgres", os.X_OK):
            return Path(folder)
    return None


def _die_with_parent() -> None:
    """In the child, after the uid switch (a credential change clears it): SIGQUIT (immediate shutdown) when the
    process that started the server dies, so a killed test run leaves no server behind."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGQUIT)


class PostgresServer:
    """One PostgreSQL server in a temporary folder; see the module docstring."""

    def __init__(self, *, bin_dir: Path, start_timeout_s: float = 60.0):
        self.bin_dir = Path(bin_dir)
        self.start_timeout_s = start_timeout_s
        self.root: Path | None = None
        self.port: int | None = None
        self.password = secrets.token_hex(16)
        self._process: subprocess.Popen | None = None
        self._databases = 0
        self._spare: list[str] = []
        self._as: dict = {}

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> PostgresServer:
        if os.geteuid() == 0:
            name = os.environ.get("SILVERSET_PG_USER", "nobody")
            try:
                account = pwd.getpwnam(name)
            except KeyError:
                raise RuntimeError(
                    f"SILVERSET_PG_USER '{name}' is not a user on this machine; PostgreSQL refuses to "
                    "run as root, so the tests need an unprivileged user to run it as"
                ) from None
            self._as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        # Not pytest's tmp_path (root-only): the unprivileged user must reach the folder, so every parent of it
        # must be searchable by others; a private TMPDIR falls back to /tmp.
        base = Path(tempfile.gettempdir()).resolve()
        if self._as and not all(os.stat(p).st_mode & stat.S_IXOTH for p in (base, *base.parents)):
            base = Path("/tmp")
        self.root = Path(tempfile.mkdtemp(prefix="silverset-pg-", dir=base))
        atexit.register(self.stop)
        data, sockets, pwfile = self.root / "data", self.root / "sockets", self.root / "pwfile"
        sockets.mkdir()
        pwfile.write_text(self.password + "\n")
        if self._as:
            for path in (self.root, sockets, pwfile):
                os.chown(path, self._as["user"], self._as["group"])
        self._run(
            [
                self.bin_dir / "initdb",
                "-D",
                data,
                "-U",
                SUPERUSER,
                "--pwfile",
                pwfile,
                "--auth",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--locale",
                "C.UTF-8",
                "--no-sync",
                "--no-instructions",
            ],
            what="initdb",
        )
        pwfile.unlink()
        self.port = free_port()
        log = (self.root / "server.log").open("ab")
        self._process = subprocess.Popen(
            [
                self.bin_dir / "postgres",
                "-D",
                data,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                sockets,
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                f"timezone={SERVER_TIMEZONE}",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=32MB",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
            **self._as,
        )
        log.close()
        self._wait_ready()
        _LOGGER.info("PostgreSQL (%s) serving on 127.0.0.1:%d, data in %s", self.bin_dir, self.port, data)
        return self

    def _run(self, argv: list, *, what: str) -> None:
        done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **self._as)
        if done.returncode != 0:
            raise RuntimeError(f"{what} failed (exit {done.returncode}): {(done.stdout + done.stderr)[-2000:]}")

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"postgres exited with {self._process.returncode} while starting: {self.log()[-2000:]}"
                )
            try:
                psycopg.connect(**self._connect_args("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres did not accept connections within {self.start_timeout_s:.0f} s: {self.log()[-2000:]}"
                    ) from None
                time.sleep(0.05)

    def log(self) -> str:
        path = self.root / "server.log" if self.root else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def stop(self) -> None:
        """Fast shutdown (SIGINT: roll back open transactions, disconnect, checkpoint), then delete the folder."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        root, self.root = self.root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- databases ----------------------------------------------------------------------------
    def _connect_args(self, dbname: str) -> dict:
        return {"host": "127.0.0.1", "port": self.port, "user": SUPERUSER, "password": self.password, "dbname": dbname}

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(**self._connect_args("postgres"), autocommit=True) as connection:
            connection.execute(sql)

    def create_database(self, prefix: str = "studio") -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        self._databases += 1
        name = f"{prefix}_{self._databases}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def lend_database(self) -> str:
        """A database for one test (see the module docstring); hand it back with ``give_back``."""
        return self._spare.pop() if self._spare else self.create_database()

    def give_back(self, url: str) -> None:
        """Empty a lent database for the next test: end its sessions, truncate every table; drop it if that fails."""
        import psycopg

        name = url.rsplit("/", 1)[1]
        try:
            self._admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
            with psycopg.connect(**self._connect_args(name), autocommit=True) as connection:
                connection.execute("SET lock_timeout = '5s'")
                tables = [
                    row[0]
                    for row in connection.execute(
                        "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public'"
                    )
                ]
                if tables:
                    connection.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        except Exception:  # noqa: BLE001 - a database that cannot be emptied is not lent again
            _LOGGER.warning("could not empty database %s for reuse; dropping it", name, exc_info=True)
            self.drop_database(url)
            return
        self._spare.append(url)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with contextlib.suppress(Exception):  # the server may already be gone at the end of a failed session
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
