"""Dagster resources: where the lake is, and which contracts describe its tables."""

import dagster as dg
from pyiceberg.catalog import Catalog

from lakehouse_assets.contracts import Contracts, load_contracts_cached
from lakehouse_assets.lake import LakeStore, open_lake
from lakehouse_assets.lake.catalog import open_catalog, warehouse_for_lake


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
    """The Iceberg SQL catalog named ``lakehouse`` (SQLite file or PostgreSQL URL) and the
    warehouse folder its tables live in. Iceberg's JDBC catalog, named the same, sees the
    same tables."""

    uri: str
    lake_uri: str
    warehouse: str = ""  # empty: <lake_uri>/warehouse

    def catalog(self) -> Catalog:
        return open_catalog(self.uri, self.warehouse or warehouse_for_lake(self.lake_uri))
