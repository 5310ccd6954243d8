"""Table contracts (YAML): DMS endpoint settings and the replicated tables."""

from lakehouse_assets.contracts.model import (
    Column,
    ContractError,
    Contracts,
    DatePartitioning,
    DmsSettings,
    PartitionSpec,
    TableContract,
    arrow_type,
    demo_contracts_path,
    load_contracts,
    load_contracts_cached,
    parse_contracts,
)

__all__ = [
    "Column",
    "ContractError",
    "Contracts",
    "DatePartitioning",
    "DmsSettings",
    "PartitionSpec",
    "TableContract",
    "arrow_type",
    "demo_contracts_path",
    "load_contracts",
    "load_contracts_cached",
    "parse_contracts",
]
