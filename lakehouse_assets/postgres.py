"""PostgreSQL for gold and marts: ``LAKEHOUSE_POSTGRES_URL``, or an embedded server.

With no URL, a real PostgreSQL server (the ``pgserver`` package's build) keeps its
data under ``./.lakehouse/postgres`` and its socket there too (no TCP port). The
first process that needs it starts it, under pgserver's inter-process lock;
every later process of the run (Dagster starts one per step) finds it running
through ``postmaster.pid`` and connects. It keeps running after the run, like
any local database, so the next run starts no server; stop it with
``python -m lakehouse_assets.postgres stop``.

``python -m lakehouse_assets.postgres url`` prints the connection URL and
``... env`` the ``DBT_LAKEHOUSE_*`` / ``DBT_ENV_SECRET_LAKEHOUSE_PASSWORD`` variables the dbt
profile reads, for using
psql or dbt by hand.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import dagster as dg
import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

DEFAULT_EMBEDDED_DIR = "./.lakehouse/postgres"
EMBEDDED_DATABASE = "lakehouse"
APPLICATION_NAME = "lakehouse-assets"

# The dbt profile's connection variables (dbt_project/profiles.yml), derived from the URL: set
# by the dbt assets, not configuration. dbt scrubs DBT_ENV_SECRET_* values from its logs.
DBT_CONNECTION_VARIABLES = {
    "host": "DBT_LAKEHOUSE_HOST",
    "port": "DBT_LAKEHOUSE_PORT",
    "user": "DBT_LAKEHOUSE_USER",
    "password": "DBT_ENV_SECRET_LAKEHOUSE_PASSWORD",
    "dbname": "DBT_LAKEHOUSE_DATABASE",
}


class PostgresResource(dg.ConfigurableResource):
    """The gold database: ``url`` (any libpq URL or key=value string), or, when empty, the
    embedded server whose data lives in ``embedded_dir``."""

    url: str = ""
    embedded_dir: str = DEFAULT_EMBEDDED_DIR

    def conninfo(self) -> str:
        return self.url or embedded_postgres_url(self.embedded_dir)

    @contextmanager
    def connect(self) -> Iterator[psycopg2.extensions.connection]:
        """A connection (not in autocommit); closed on exit. Commit what you mean to keep."""
        connection = psycopg2.connect(self.conninfo(), application_name=APPLICATION_NAME)
        try:
            yield connection
        finally:
            connection.close()

    def dbt_environment(self) -> dict[str, str]:
        """The variables of the dbt profile for this database (DBT_CONNECTION_VARIABLES)."""
        return dbt_environment(self.conninfo())


def dbt_environment(conninfo: str) -> dict[str, str]:
    parts = psycopg2.extensions.parse_dsn(conninfo)
    parts.setdefault("host", "localhost")
    parts.setdefault("port", "5432")
    parts.setdefault("user", os.environ.get("USER", "postgres"))
    parts.setdefault("password", "")
    parts.setdefault("dbname", parts["user"])
    return {variable: str(parts[key]) for key, variable in DBT_CONNECTION_VARIABLES.items()}


def _get_server(pgdata: Path):
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback is fine.
        warnings.simplefilter("ignore")
        import pgserver

        # cleanup_mode=None: the server outlives this process, so the other processes of a
        # run (and the next run) share it instead of each stopping it on exit.
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        # pgserver hands out its cached handle even when the server was stopped since
        # (by ``stop_embedded_postgres``); start it again under pgserver's process lock.
        with server._lock:
            server.ensure_postgres_running()
        return server


@lru_cache(maxsize=4)
def _embedded_url(pgdata: Path) -> str:
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = _get_server(pgdata)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(
            f"could not start the embedded PostgreSQL server in {pgdata}: {exc}. As root, pgserver "
            "runs PostgreSQL as the user 'pgserver', which must be able to enter every parent "
            "folder of the data folder (o+x); or set LAKEHOUSE_POSTGRES_URL to a running server."
        ) from exc
    admin_url = server.get_uri()
    connection = psycopg2.connect(admin_url, application_name=APPLICATION_NAME)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE,))
            if cursor.fetchone() is None:
                try:
                    cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(EMBEDDED_DATABASE)))
                except (psycopg2.errors.DuplicateDatabase, psycopg2.errors.UniqueViolation):
                    pass  # another process of the run created it first
    finally:
        connection.close()
    return server.get_uri(EMBEDDED_DATABASE)


def embedded_postgres_url(embedded_dir: str | Path = DEFAULT_EMBEDDED_DIR) -> str:
    """Start (or find running) the embedded server in ``embedded_dir``; return its URL."""
    return _embedded_url(Path(embedded_dir).expanduser().resolve())


def stop_embedded_postgres(embedded_dir: str | Path = DEFAULT_EMBEDDED_DIR, timeout_s: float = 30.0) -> bool:
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
    raise TimeoutError(f"embedded PostgreSQL (pid {pid}, data {pgdata}) did not stop in {timeout_s:.0f}s")


def _resource_from_env() -> PostgresResource:
    from lakehouse_assets.settings import POSTGRES_URL_VAR

    return PostgresResource(url=os.environ.get(POSTGRES_URL_VAR, ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lakehouse_assets.postgres", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["url", "env", "stop"])
    parser.add_argument("--dir", default=DEFAULT_EMBEDDED_DIR, help="embedded server data folder")
    args = parser.parse_args(argv)
    if args.command == "stop":
        print("stopped" if stop_embedded_postgres(args.dir) else "not running")
        return 0
    resource = _resource_from_env()
    if not resource.url:
        resource = PostgresResource(embedded_dir=args.dir)
    if args.command == "url":
        print(resource.conninfo())
    else:
        for name, value in resource.dbt_environment().items():
            print(f"export {name}={value!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
