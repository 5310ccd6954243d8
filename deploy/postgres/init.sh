#!/bin/bash
# Runs once, when the PostgreSQL volume is created: one database per concern,
# each owned by its own login role, and nothing granted across them.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v dagster_password="$DAGSTER_PG_PASSWORD" \
    -v catalog_password="$CATALOG_PG_PASSWORD" \
    -v gold_password="$GOLD_PG_PASSWORD" \
    -v reader_password="$DASHBOARD_PG_PASSWORD" <<'SQL'
CREATE ROLE dagster LOGIN PASSWORD :'dagster_password';
CREATE ROLE iceberg_catalog LOGIN PASSWORD :'catalog_password';
CREATE ROLE lakehouse_gold LOGIN PASSWORD :'gold_password';
CREATE ROLE dashboard_reader LOGIN PASSWORD :'reader_password';

CREATE DATABASE dagster OWNER dagster;
CREATE DATABASE iceberg_catalog OWNER iceberg_catalog;
CREATE DATABASE lakehouse OWNER lakehouse_gold;

REVOKE ALL ON DATABASE dagster, iceberg_catalog, lakehouse FROM PUBLIC;
GRANT CONNECT ON DATABASE lakehouse TO dashboard_reader;
SQL

# Dashboards read gold and marts, and write nothing.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname lakehouse <<'SQL'
CREATE SCHEMA IF NOT EXISTS gold AUTHORIZATION lakehouse_gold;
CREATE SCHEMA IF NOT EXISTS marts AUTHORIZATION lakehouse_gold;
GRANT USAGE ON SCHEMA gold, marts TO dashboard_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE lakehouse_gold IN SCHEMA gold, marts
    GRANT SELECT ON TABLES TO dashboard_reader;
SQL
