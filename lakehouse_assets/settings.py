"""Project settings from the environment, with the embedded defaults of DESIGN.md.

Read when Dagster loads the definitions (never at import time), so a code
location reload picks up a changed environment.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg

from lakehouse_assets.contracts import Contracts, load_contracts_cached

DEMO_START_DATE = date(2024, 1, 1)
DEMO_MANIFEST = "demo/manifest.json"  # lakehouse-demo writes it next to the landing
DEFAULT_LAKE_URI = "./.lakehouse/data-lake"
# The catalog when neither LAKEHOUSE_CATALOG_URI nor pyiceberg's configuration gives one.
DEFAULT_CATALOG_URI = "sqlite:///.lakehouse/catalog.db"

LAKE_URI_VAR = "LAKEHOUSE_LAKE_URI"
CATALOG_URI_VAR = "LAKEHOUSE_CATALOG_URI"
CONTRACTS_VAR = "LAKEHOUSE_CONTRACTS"
START_DATE_VAR = "LAKEHOUSE_START_DATE"
# Gold database; unset: the embedded PostgreSQL server in ./.lakehouse/postgres.
POSTGRES_URL_VAR = "LAKEHOUSE_POSTGRES_URL"
# Gold summaries also written as Iceberg tables gold.<name>: "all", names (comma-separated),
# or unset for none.
GOLD_EXPORTS_VAR = "LAKEHOUSE_GOLD_EXPORTS"
# Days of bronze the silver ledgers remember (bronze's lifecycle keeps 90).
LEDGER_RETENTION_VAR = "LAKEHOUSE_LEDGER_RETENTION_DAYS"
DEFAULT_LEDGER_RETENTION_DAYS = 100


@dataclass(frozen=True)
class Settings:
    lake_uri: str | dg.EnvVar
    # Empty: pyiceberg's catalog "lakehouse" if configured, else DEFAULT_CATALOG_URI, decided
    # at run time (lakehouse_assets.lake.catalog).
    catalog_uri: str | dg.EnvVar
    contracts_path: str | dg.EnvVar
    contracts: Contracts
    start_date: date
    postgres_url: str | dg.EnvVar = ""  # empty: the embedded server
    ledger_retention_days: int = DEFAULT_LEDGER_RETENTION_DAYS
    gold_exports: str | dg.EnvVar = ""  # empty: no gold exports


def _env_or_default(name: str, default: str) -> str | dg.EnvVar:
    """An ``EnvVar`` when the variable is set (resolved at run time, shown in the UI as
    an environment variable), else the embedded default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def demo_start_date(lake_uri: str) -> date:
    """The first day of the demo landing in a local lake (its manifest), else the default
    demo's: the partitions then begin where the demo's data does."""
    manifest = Path(lake_uri) / DEMO_MANIFEST
    try:
        return date.fromisoformat(json.loads(manifest.read_text())["arguments"]["start"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEMO_START_DATE


def settings_from_env() -> Settings:
    contracts_path = os.environ.get(CONTRACTS_VAR, "")
    start_text = os.environ.get(START_DATE_VAR, "")
    lake_uri = os.environ.get(LAKE_URI_VAR, "") or DEFAULT_LAKE_URI
    try:
        start = date.fromisoformat(start_text) if start_text else demo_start_date(lake_uri)
    except ValueError:
        raise ValueError(f"{START_DATE_VAR}={start_text!r} is not a date like 2024-01-31") from None
    return Settings(
        lake_uri=_env_or_default(LAKE_URI_VAR, DEFAULT_LAKE_URI),
        catalog_uri=_env_or_default(CATALOG_URI_VAR, ""),
        contracts_path=_env_or_default(CONTRACTS_VAR, ""),
        # The asset graph has one asset per contract table, so the contracts are
        # needed to build it, not only to run it.
        contracts=load_contracts_cached(contracts_path),
        start_date=start,
        postgres_url=_env_or_default(POSTGRES_URL_VAR, ""),
        ledger_retention_days=_whole_days(LEDGER_RETENTION_VAR, DEFAULT_LEDGER_RETENTION_DAYS),
        gold_exports=_env_or_default(GOLD_EXPORTS_VAR, ""),
    )


def _whole_days(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise ValueError(f"{name}={text!r} is not a whole number of days")
    return int(text)
