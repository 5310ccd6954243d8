# The Dagster code location, webserver and daemon of the compose deployment.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/home \
    DAGSTER_DISABLE_TELEMETRY=1

WORKDIR /opt/lakehouse
COPY pyproject.toml README.md ./
COPY lakehouse_assets ./lakehouse_assets
COPY dbt_project ./dbt_project
RUN pip install --no-cache-dir .

COPY deploy/dagster.yaml deploy/workspace.yaml /opt/dagster/home/
RUN useradd --create-home --uid 1000 dagster && chown -R dagster /opt/dagster /opt/lakehouse
USER dagster
EXPOSE 3000 4000
