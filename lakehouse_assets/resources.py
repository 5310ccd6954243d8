"""Dagster resources: where the lake is, and which contracts describe its tables."""

import dagster as dg
from pyiceberg.catalog import Catalog

from lakehouse_assets.contracts import Contracts, load_contracts_cached
from lakehouse_assets.lake import LakeStore, open_lake
from lakehouse_assets.lake.catalog import (
    CatalogChoice,
    open_chosen_catalog,
    resolve_catalog,
    warehouse_for_lake,
)


class LakeResource(dg.ConfigurableResource):
    """The data lake root: a local folder, or ``s3://bucket[/prefix]`` with the standard
    ``AWS_*`` settings (``AWS_ENDPOINT_URL`` for MinIO)."""

    uri: str

    def store(self) -> LakeStore:
        return open_lake(self.uri)


class ContractsResource(dg.ConfigurableResource):
    """The table contract file; empty means the packaged demo contracts."""

    path: str = ""

    def load(self) -> Contracts:
        # The same object the definitions were built from in this process.
        return load_contracts_cached(self.path)


class IcebergCatalogResource(dg.ConfigurableResource):
    """The Iceberg catalog named ``lakehouse`` and the warehouse its tables live in.

    ``uri`` set (``LAKEHOUSE_CATALOG_URI``): pyiceberg's SQL catalog on that SQLite file or
    PostgreSQL database, which Iceberg's JDBC catalog, named the same, shares. Empty: the
    catalog ``lakehouse`` of pyiceberg's own configuration (Glue, REST, ...) when it defines
    one, else the embedded SQLite file (``lakehouse_assets.lake.catalog``).
    """

    uri: str = ""
    lake_uri: str
    warehouse: str = ""  # empty: <lake_uri>/warehouse

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Once per step: say which catalog the step works on, and why when two were given.
        choice = self.choice()
        if context.log is None:
            return
        note = choice.precedence_note()
        if note:
            context.log.warning(note)
        context.log.info(choice.describe())

    def choice(self) -> CatalogChoice:
        return resolve_catalog(self.uri, self.warehouse or warehouse_for_lake(self.lake_uri))

    def catalog(self) -> Catalog:
        return open_chosen_catalog(self.choice())
