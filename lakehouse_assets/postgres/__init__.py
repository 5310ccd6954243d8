"""PostgreSQL for gold and marts: ``LAKEHOUSE_POSTGRES_URL``, or an embedded server.

- ``tables``: PostgreSQL tables from Arrow (create or evolve, replace rows with
  DELETE + COPY, read rows), no Dagster in it; the gold IO manager builds on it.
- ``embedded``: the embedded server, started on first use and shared by every
  process of a run, when no URL is set.
- ``connection``: connecting, and the dbt profile's variables for a connection.
- ``resource``: ``PostgresResource``, the database as a Dagster resource.

``python -m lakehouse_assets.postgres url`` prints the connection URL, ``... env``
the ``DBT_LAKEHOUSE_*`` / ``DBT_ENV_SECRET_LAKEHOUSE_PASSWORD`` variables the dbt
profile reads (for psql or dbt by hand), and ``... stop`` stops the embedded server.
"""

from lakehouse_assets.postgres.connection import dbt_environment
from lakehouse_assets.postgres.embedded import embedded_postgres_url, stop_embedded_postgres
from lakehouse_assets.postgres.resource import PostgresResource

__all__ = [
    "PostgresResource",
    "dbt_environment",
    "embedded_postgres_url",
    "stop_embedded_postgres",
]
