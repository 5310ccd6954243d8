"""The embedded PostgreSQL server: the ``pgserver`` package's build of a real server.

It keeps its data in one folder (``./.lakehouse/postgres`` by default) and its socket
there too (no TCP port). The first process that needs it starts it; every later
process (Dagster starts one per step) finds it running through ``postmaster.pid``
and connects. It keeps running after the run, like any local database, so the next
run starts no server; ``stop_embedded_postgres`` stops it.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg2.errors
from psycopg2 import sql

from lakehouse_assets.postgres.connection import connect

if TYPE_CHECKING:
    import pgserver

DEFAULT_EMBEDDED_DIR = "./.lakehouse/postgres"
EMBEDDED_DATABASE = "lakehouse"


@contextmanager
def _start_lock(pgdata: Path) -> Iterator[None]:
    """Held, across processes, while one process finds or starts the server of ``pgdata``.

    With it, processes that all start at once start the server once: the first starts it,
    the others then find it running. The kernel drops an flock when its holder exits, so a
    crashed start leaves no stale lock. The file sits beside the data folder, not in it
    (initdb wants an empty folder).
    """
    with pgdata.with_name(f"{pgdata.name}.lock").open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _running_server(pgdata: Path) -> pgserver.PostgresServer:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback is fine.
        warnings.simplefilter("ignore")
        import pgserver  # here, not at the top: only the embedded server needs it

        with _start_lock(pgdata):
            # cleanup_mode=None: the server outlives this process, so the other processes of a
            # run (and the next run) share it instead of each stopping it on exit.
            server = pgserver.get_server(pgdata, cleanup_mode=None)
            # get_server hands out this process's cached handle even when the server was
            # stopped since (by ``stop_embedded_postgres``); this starts it again, and is a
            # no-op when it runs.
            server.ensure_postgres_running()
        return server


def _create_database(admin_url: str, name: str) -> None:
    connection = connect(admin_url)
    try:
        connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                try:
                    cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                except (psycopg2.errors.DuplicateDatabase, psycopg2.errors.UniqueViolation):
                    pass  # another process of the run created it first
    finally:
        connection.close()


@lru_cache(maxsize=4)
def _embedded_url(pgdata: Path) -> str:
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = _running_server(pgdata)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(
            f"could not start the embedded PostgreSQL server in {pgdata}: {exc}. As root, "
            "pgserver runs PostgreSQL as the user 'pgserver', which must be able to enter every "
            "parent folder of the data folder (o+x); or set LAKEHOUSE_POSTGRES_URL to a running "
            "server."
        ) from exc
    _create_database(server.get_uri(), EMBEDDED_DATABASE)
    return server.get_uri(EMBEDDED_DATABASE)


def embedded_postgres_url(embedded_dir: str | Path = DEFAULT_EMBEDDED_DIR) -> str:
    """Start (or find running) the embedded server in ``embedded_dir``; return its URL."""
    return _embedded_url(Path(embedded_dir).expanduser().resolve())


def stop_embedded_postgres(
    embedded_dir: str | Path = DEFAULT_EMBEDDED_DIR, timeout_s: float = 30.0
) -> bool:
    """Stop the embedded server of ``embedded_dir`` (fast shutdown); False if none was running."""
    pgdata = Path(embedded_dir).expanduser().resolve()
    _embedded_url.cache_clear()
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, signal.SIGINT)  # PostgreSQL: SIGINT is "fast" shutdown
    except (ValueError, IndexError, ProcessLookupError):
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    raise TimeoutError(
        f"embedded PostgreSQL (pid {pid}, data {pgdata}) did not stop in {timeout_s:.0f}s"
    )
