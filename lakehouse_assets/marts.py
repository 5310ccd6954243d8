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

import fcntl
import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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
_PARTIAL_PARSE_FILE = "partial_parse.msgpack"  # dagster-dbt copies it into each run's target


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
        files = (
            [path]
            if path.is_file()
            else [p for p in path.rglob("*") if p.is_file()]
            if path.exists()
            else []
        )
        if any(file.stat().st_mtime > built for file in files):
            return True
    return False


@contextmanager
def _manifest_lock(target_dir: Path) -> Iterator[None]:
    """Held, across processes, while one process checks and rewrites the manifest.

    Dagster loads the definitions in every step process; with the lock, those that find the
    manifest stale at once parse once (the others wait, then find it fresh). The kernel drops
    an flock when its holder exits, so a crashed parse leaves no stale lock.
    """
    target_dir.mkdir(parents=True, exist_ok=True)
    with (target_dir / ".manifest.lock").open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _parse(project: DbtProject, manifest: Path) -> None:
    """``dbt parse`` into a folder of its own, then move its results next to ``manifest``.

    dbt writes its files in place; the moves are atomic, so a process loading the definitions
    meanwhile (without the lock: the manifest it found was fresh) never reads half a manifest.
    The manifest moves last: once it is there, so is the partial-parse state dbt runs start
    from.
    """
    scratch = manifest.parent / f".parse-{os.getpid()}"
    try:
        DbtCliResource(
            project_dir=project, profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=dbt_executable()
        ).cli(["parse", "--quiet"], target_path=scratch).wait()
        partial_parse = scratch / _PARTIAL_PARSE_FILE
        if partial_parse.exists():  # unless the project turns partial parsing off
            os.replace(partial_parse, manifest.parent / _PARTIAL_PARSE_FILE)
        os.replace(scratch / manifest.name, manifest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def prepare_manifest(project: DbtProject) -> Path:
    """``dbt parse`` when the manifest is missing or stale; safe when processes race."""
    manifest = Path(project.manifest_path)
    if manifest_is_stale(project):
        with _manifest_lock(manifest.parent):
            if manifest_is_stale(project):  # another process may have parsed while this one waited
                _parse(project, manifest)
    return manifest


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
    def marts_daily(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, postgres: PostgresResource
    ) -> Iterator:
        window = context.partition_time_window
        dbt_vars = {
            "min_date": window.start.date().isoformat(),
            "max_date": window.end.date().isoformat(),
        }
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
    def marts(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, postgres: PostgresResource
    ) -> Iterator:
        _use_connection(postgres)
        yield from dbt.cli(["build"], context=context).stream()

    return [marts_daily, marts]


def marts_resource() -> DbtCliResource:
    """The ``dbt`` resource the marts assets run dbt with."""
    return DbtCliResource(
        project_dir=str(DBT_PROJECT_DIR),
        profiles_dir=str(DBT_PROJECT_DIR),
        dbt_executable=dbt_executable(),
    )
