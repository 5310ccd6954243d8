"""``PostgresResource``: the gold database as a Dagster resource."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg2.extensions

from lakehouse_assets.postgres.connection import connect, dbt_environment
from lakehouse_assets.postgres.embedded import DEFAULT_EMBEDDED_DIR, embedded_postgres_url


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
        connection = connect(self.conninfo())
        try:
            yield connection
        finally:
            connection.close()

    def dbt_environment(self) -> dict[str, str]:
        """The variables of the dbt profile for this database (DBT_CONNECTION_VARIABLES)."""
        return dbt_environment(self.conninfo())
