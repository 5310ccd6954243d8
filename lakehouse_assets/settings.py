"""Project settings from the environment, with the embedded defaults of DESIGN.md.

Read when Dagster loads the definitions (never at import time), so a code
location reload picks up a changed environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date

import dagster as dg

from lakehouse_assets.contracts import Contracts, load_contracts_cached

DEMO_START_DATE = date(2024, 1, 1)
DEFAULT_LAKE_URI = "./.lakehouse/data-lake"
DEFAULT_CATALOG_URI = "sqlite:///.lakehouse/catalog.db"

LAKE_URI_VAR = "LAKEHOUSE_LAKE_URI"
CATALOG_URI_VAR = "LAKEHOUSE_CATALOG_URI"
CONTRACTS_VAR = "LAKEHOUSE_CONTRACTS"
START_DATE_VAR = "LAKEHOUSE_START_DATE"
# Gold database; unset: the embedded PostgreSQL server in ./.lakehouse/postgres.
POSTGRES_URL_VAR = "LAKEHOUSE_POSTGRES_URL"


@dataclass(frozen=True)
class Settings:
    lake_uri: str | dg.EnvVar
    catalog_uri: str | dg.EnvVar
    contracts_path: str | dg.EnvVar
    contracts: Contracts
    start_date: date
    postgres_url: str | dg.EnvVar = ""  # empty: the embedded server


def _env_or_default(name: str, default: str) -> str | dg.EnvVar:
    """An ``EnvVar`` when the variable is set (resolved at run time, shown in the UI as
    an environment variable), else the embedded default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def settings_from_env() -> Settings:
    contracts_path = os.environ.get(CONTRACTS_VAR, "")
    start_text = os.environ.get(START_DATE_VAR, "")
    try:
        start = date.fromisoformat(start_text) if start_text else DEMO_START_DATE
    except ValueError:
        raise ValueError(f"{START_DATE_VAR}={start_text!r} is not a date like 2024-01-31") from None
    return Settings(
        lake_uri=_env_or_default(LAKE_URI_VAR, DEFAULT_LAKE_URI),
        catalog_uri=_env_or_default(CATALOG_URI_VAR, DEFAULT_CATALOG_URI),
        contracts_path=_env_or_default(CONTRACTS_VAR, ""),
        # The asset graph has one asset per contract table, so the contracts are
        # needed to build it, not only to run it.
        contracts=load_contracts_cached(contracts_path),
        start_date=start,
        postgres_url=_env_or_default(POSTGRES_URL_VAR, ""),
    )
