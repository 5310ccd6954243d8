"""Which Iceberg catalog ``lakehouse`` is, opening it, and where its warehouse lives in the lake.

The catalog, in this order of precedence:

1. ``LAKEHOUSE_CATALOG_URI`` given: pyiceberg's SQL catalog on that SQLite or PostgreSQL
   database (the project's own setting; it wins over pyiceberg's configuration, and the
   resource logs so when both are given).
2. Else pyiceberg's own configuration defines a catalog ``lakehouse`` (``.pyiceberg.yaml`` in
   ``$PYICEBERG_HOME``, ``~`` or the working folder, or ``PYICEBERG_CATALOG__LAKEHOUSE__*``
   variables): that catalog with every property it sets (``type: glue``, ``type: rest``,
   ``type: sql``, ...), opened by ``pyiceberg.catalog.load_catalog``.
3. Else the embedded SQLite file ``.lakehouse/catalog.db``.

Outside a REST catalog (whose server decides where tables live) the warehouse defaults to
``<lake>/warehouse``, and pyiceberg's S3 settings default to the standard ``AWS_*`` variables;
anything pyiceberg's configuration sets wins over those defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlparse

from pyiceberg.catalog import Catalog, infer_catalog_type, load_catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import RESTError
from pyiceberg.utils.config import Config

from lakehouse_assets.names import CATALOG_NAME
from lakehouse_assets.settings import CATALOG_URI_VAR, DEFAULT_CATALOG_URI

SQL = "sql"
GLUE = "glue"
REST = "rest"
# Property names whose values are never logged or put in an error message.
_SECRET_MARKERS = ("secret", "password", "token", "credential", "session")


class CatalogSource(StrEnum):
    """Where the catalog's settings came from."""

    CATALOG_URI = CATALOG_URI_VAR
    PYICEBERG_CONFIG = "pyiceberg configuration"
    EMBEDDED_DEFAULT = "embedded default"


class CatalogUnavailable(RuntimeError):
    """The configured catalog cannot be opened (unreachable server, refused credentials)."""


@dataclass(frozen=True)
class CatalogChoice:
    """The catalog ``lakehouse``: its pyiceberg properties and where they came from.

    ``shadowed``: the pyiceberg configuration's ``lakehouse`` catalog that
    ``LAKEHOUSE_CATALOG_URI`` took precedence over (empty when there was none).
    """

    source: CatalogSource
    properties: Mapping[str, str]
    shadowed: Mapping[str, str] = field(default_factory=dict)

    @property
    def type(self) -> str:
        configured = self.properties.get("type") or self.properties.get("py-catalog-impl")
        if configured:
            return str(configured).lower()
        return infer_catalog_type(CATALOG_NAME, dict(self.properties)).value

    @property
    def warehouse(self) -> str:
        return self.properties.get("warehouse", "")

    def describe(self) -> str:
        """One line for logs and errors: type, source and the non-secret properties."""
        shown = ", ".join(f"{key}={value}" for key, value in redacted(self.properties).items())
        return f"Iceberg catalog {CATALOG_NAME!r}: {self.type}, from the {self.source} ({shown})"

    def precedence_note(self) -> str:
        """Why pyiceberg's ``lakehouse`` catalog is not used, when both were given."""
        if not self.shadowed:
            return ""
        kind = self.shadowed.get("type") or self.shadowed.get("uri") or "catalog"
        return (
            f"{CATALOG_URI_VAR} is set, so it wins over the catalog {CATALOG_NAME!r} ({kind}) "
            f"of pyiceberg's configuration: unset {CATALOG_URI_VAR} to use that one"
        )


def redacted(properties: Mapping[str, str]) -> dict[str, str]:
    """``properties`` with secret values (keys, passwords, tokens) masked, and SQL URIs'
    passwords removed."""
    shown: dict[str, str] = {}
    for key, value in sorted(properties.items()):
        if any(marker in key.lower() for marker in _SECRET_MARKERS):
            shown[key] = "***"
        elif key == "uri" and urlparse(str(value)).password:
            parsed = urlparse(str(value))
            shown[key] = parsed._replace(
                netloc=parsed.netloc.replace(f":{parsed.password}@", ":***@")
            ).geturl()
        else:
            shown[key] = str(value)
    return shown


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


def s3_properties() -> dict[str, str]:
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


def pyiceberg_catalog_config() -> dict[str, str]:
    """The catalog ``lakehouse`` of pyiceberg's configuration as it is now (``.pyiceberg.yaml``
    and ``PYICEBERG_CATALOG__LAKEHOUSE__*``); empty when it defines none.

    A fresh ``Config`` rather than the one pyiceberg read when it was imported, so a
    changed environment counts the way it does for every other setting.
    """
    configured = Config().get_catalog_config(CATALOG_NAME) or {}
    return {str(key): str(value) for key, value in configured.items()}


def resolve_catalog(uri: str, warehouse: str) -> CatalogChoice:
    """The catalog ``lakehouse`` for a SQL catalog ``uri`` (may be empty) and the lake's
    default ``warehouse``, by the precedence in the module docstring."""
    configured = pyiceberg_catalog_config()
    if uri:
        return CatalogChoice(
            CatalogSource.CATALOG_URI, _sql_properties(uri, warehouse), shadowed=configured
        )
    if configured:
        defaults = s3_properties()
        is_rest = (configured.get("type") or "").lower() == REST or (
            not configured.get("type") and configured.get("uri", "").startswith("http")
        )
        if not is_rest:  # a REST server owns its warehouse: its name is the server's to give
            defaults["warehouse"] = warehouse
        return CatalogChoice(CatalogSource.PYICEBERG_CONFIG, {**defaults, **configured})
    return CatalogChoice(
        CatalogSource.EMBEDDED_DEFAULT, _sql_properties(DEFAULT_CATALOG_URI, warehouse)
    )


def _sql_properties(uri: str, warehouse: str) -> dict[str, str]:
    return {"type": SQL, "uri": uri, "warehouse": warehouse, **s3_properties()}


def open_catalog(uri: str, warehouse: str) -> Catalog:
    """The catalog ``lakehouse`` (``uri`` empty: pyiceberg's configuration, else the default)."""
    return open_chosen_catalog(resolve_catalog(uri, warehouse))


def open_chosen_catalog(choice: CatalogChoice) -> Catalog:
    properties = dict(choice.properties)
    if choice.type == SQL:
        _prepare_local_sql(properties)
    if choice.source is not CatalogSource.PYICEBERG_CONFIG:
        return SqlCatalog(CATALOG_NAME, **properties)
    try:
        return load_catalog(CATALOG_NAME, **properties)
    # requests' errors are OSErrors; a server answering 501, or not in the REST protocol's
    # JSON, gives NotImplementedError or ValueError (pydantic's ValidationError is one).
    except (OSError, RESTError, NotImplementedError, ValueError) as exc:
        raise CatalogUnavailable(f"{choice.describe()}: cannot open it: {exc}") from exc


def _prepare_local_sql(properties: Mapping[str, str]) -> None:
    """Create the folders a SQLite catalog file and a local warehouse live in."""
    uri = properties.get("uri", "")
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite" and parsed.path not in ("", "/:memory:"):
        # sqlite:///relative/or/absolute.db: create the folder the file lives in.
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    warehouse = properties.get("warehouse", "")
    if urlparse(warehouse).scheme == "file":
        Path(urlparse(warehouse).path).mkdir(parents=True, exist_ok=True)
