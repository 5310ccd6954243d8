"""marts/<model>: the dbt project (dbt_project/, dbt-postgres) as Dagster assets.

Every dbt model is an asset ``marts/<model>`` and every dbt test an asset check on
it (dagster-dbt). The dbt sources are the gold tables, mapped to the gold asset
keys, so bronze -> silver -> gold -> marts is one lineage graph.

- Models tagged ``daily`` are daily-partitioned: a run passes its partition
  window to dbt as vars ``min_date`` / ``max_date`` (max exclusive), and the
  incremental model replaces exactly those days.
- The dbt profile reads ``DBT_LAKEHOUSE_*`` and ``DBT_ENV_SECRET_LAKEHOUSE_PASSWORD``, which the
  assets set from the same
  PostgreSQL resource the gold IO manager uses (``LAKEHOUSE_POSTGRES_URL`` or the
  embedded server).
- The manifest is prepared here (``dbt parse``) when the definitions load and it is
  missing or older than the project's files, so a fresh checkout needs no step by
  hand and nothing generated is committed.
"""


import json
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from lakehouse_assets.postgres import PostgresResource

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
DAILY_TAG = "daily"
MARTS_PREFIX = "marts"
_PROJECT_INPUTS = ("dbt_project.yml", "profiles.yml", "models", "macros", "tests")


def dbt_executable() -> str:
    """The dbt next to this Python (the venv's), so an unactivated venv works too."""
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def dbt_project() -> DbtProject:
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def manifest_is_stale(project: DbtProject) -> bool:
    manifest = Path(project.manifest_path)
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    for name in _PROJECT_INPUTS:
        path = Path(project.project_dir) / name
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()] if path.exists() else []
        if any(file.stat().st_mtime > built for file in files):
            return True
    return False


def prepare_manifest(project: DbtProject) -> Path:
    """``dbt parse`` when the manifest is missing or stale; safe when processes race."""
    from dagster._utils import run_with_concurrent_update_guard

    def parse(**_: Any) -> None:
        DbtCliResource(
            project_dir=project, profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=dbt_executable()
        ).cli(["parse", "--quiet"], target_path=project.target_path).wait()

    if manifest_is_stale(project):
        run_with_concurrent_update_guard(Path(project.manifest_path), parse)
    return Path(project.manifest_path)


class MartsTranslator(DagsterDbtTranslator):
    """Models become ``marts/<model>`` in group ``marts``; sources keep the gold keys from
    their ``meta.dagster.asset_key``."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey([MARTS_PREFIX, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return MARTS_PREFIX


def _use_connection(postgres: PostgresResource) -> None:
    # dagster-dbt runs dbt with this process's environment; the profile reads these.
    os.environ.update(postgres.dbt_environment())


def build_marts(partitions_def: dg.TimeWindowPartitionsDefinition) -> list[dg.AssetsDefinition]:
    project = dbt_project()
    manifest = prepare_manifest(project)
    translator = MartsTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    @dbt_assets(
        manifest=manifest,
        project=project,
        select=f"tag:{DAILY_TAG}",
        name="marts_daily",
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        dagster_dbt_translator=translator,
    )
    def marts_daily(context: dg.AssetExecutionContext, dbt: DbtCliResource, postgres: PostgresResource) -> Iterator:
        window = context.partition_time_window
        dbt_vars = {"min_date": window.start.date().isoformat(), "max_date": window.end.date().isoformat()}
        _use_connection(postgres)
        yield from dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context).stream()

    @dbt_assets(
        manifest=manifest,
        project=project,
        exclude=f"tag:{DAILY_TAG}",
        name="marts",
        backfill_policy=dg.BackfillPolicy.single_run(),
        dagster_dbt_translator=translator,
    )
    def marts(context: dg.AssetExecutionContext, dbt: DbtCliResource, postgres: PostgresResource) -> Iterator:
        _use_connection(postgres)
        yield from dbt.cli(["build"], context=context).stream()

    return [marts_daily, marts]


def marts_resource() -> DbtCliResource:
    """The ``dbt`` resource the marts assets run dbt with."""
    return DbtCliResource(
        project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=dbt_executable()
    )
