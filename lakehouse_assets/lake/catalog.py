"""Opening the Iceberg catalog, and where its warehouse lives in the lake."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog

from lakehouse_assets.names import CATALOG_NAME


def warehouse_for_lake(lake_uri: str) -> str:
    """The Iceberg warehouse location inside the lake root (``<lake>/warehouse``)."""
    parsed = urlparse(lake_uri)
    if parsed.scheme in ("s3", "s3a"):
        key_prefix = parsed.path.strip("/")
        return f"s3://{parsed.netloc}/{key_prefix + '/' if key_prefix else ''}warehouse"
    local = parsed.path if parsed.scheme == "file" else lake_uri
    return Path(local, "warehouse").resolve().as_uri()


def sqlite_uri_for(path: str | Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def _s3_properties() -> dict[str, str]:
    """pyiceberg's S3 file IO settings from the standard AWS variables (read at run time)."""
    names = {
        "AWS_ENDPOINT_URL": "s3.endpoint",
        "AWS_ACCESS_KEY_ID": "s3.access-key-id",
        "AWS_SECRET_ACCESS_KEY": "s3.secret-access-key",
        "AWS_SESSION_TOKEN": "s3.session-token",
        "AWS_REGION": "s3.region",
        "AWS_DEFAULT_REGION": "s3.region",
    }
    properties: dict[str, str] = {}
    for variable, key in names.items():
        if os.environ.get(variable) and key not in properties:
            properties[key] = os.environ[variable]
    return properties


def open_catalog(uri: str, warehouse: str) -> Catalog:
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite" and parsed.path not in ("", "/:memory:"):
        # sqlite:///relative/or/absolute.db: create the folder the file lives in.
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    if urlparse(warehouse).scheme == "file":
        Path(urlparse(warehouse).path).mkdir(parents=True, exist_ok=True)
    return SqlCatalog(CATALOG_NAME, uri=uri, warehouse=warehouse, **_s3_properties())
