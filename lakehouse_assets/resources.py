"""Dagster resources: where the lake is, and which contracts describe its tables."""

from functools import lru_cache

import dagster as dg

from lakehouse_assets.contracts import Contracts, load_contracts
from lakehouse_assets.lake import LakeStore, open_lake


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
        return _load_cached(self.path)


@lru_cache(maxsize=8)
def _load_cached(path: str) -> Contracts:
    return load_contracts(path or None)
