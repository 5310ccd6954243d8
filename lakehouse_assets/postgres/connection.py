"""Connecting to the gold database, and the same connection as the dbt profile's variables."""

from __future__ import annotations

import os

import psycopg2
import psycopg2.extensions

# Shown in pg_stat_activity, so a DBA can tell this project's sessions apart.
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


def connect(conninfo: str) -> psycopg2.extensions.connection:
    """A new connection (not in autocommit) to ``conninfo``, a libpq URL or key=value string."""
    return psycopg2.connect(conninfo, application_name=APPLICATION_NAME)


def dbt_environment(conninfo: str) -> dict[str, str]:
    """The variables of the dbt profile (``DBT_CONNECTION_VARIABLES``) for ``conninfo``, with
    libpq's defaults for what it leaves out."""
    parts = psycopg2.extensions.parse_dsn(conninfo)
    parts.setdefault("host", "localhost")
    parts.setdefault("port", "5432")
    parts.setdefault("user", os.environ.get("USER", "postgres"))
    parts.setdefault("password", "")
    parts.setdefault("dbname", parts["user"])
    return {variable: str(parts[key]) for key, variable in DBT_CONNECTION_VARIABLES.items()}
