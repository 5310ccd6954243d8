"""``silver.<table>__quarantine``: structurally bad bronze files, kept out of the merge.

A file with a wrong field count, broken gzip, an unknown Op, invalid UTF-8 or a bad
timestamp would otherwise fail every run of its days. Since the merge does not depend on
the order files are applied in, the rest is merged and the bad file waits here, one row per
file (key, size, ETag, the error naming file, line and value, first and last seen). Runs skip
it while its version is unchanged; once it is fixed or replaced (a new ETag) the next run
reads it again and, if it now reads, applies it and clears its row. The asset check
``quarantine_empty`` fails while any file is here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField, StringType, TimestamptzType

from lakehouse_assets.bronze.files import BronzeFile
from lakehouse_assets.contracts import TableContract
from lakehouse_assets.names import QUARANTINE, silver_identifier
from lakehouse_assets.silver.result import with_commit_retries
from lakehouse_assets.silver.tables import TABLE_PROPERTIES, ensure_namespace

_SCHEMA = Schema(
    NestedField(1, "key", StringType(), required=True),
    NestedField(2, "size", LongType(), required=True),
    NestedField(3, "etag", StringType(), required=True),
    NestedField(4, "kind", StringType(), required=True),
    NestedField(5, "error", StringType(), required=True),
    NestedField(6, "first_seen", TimestamptzType(), required=True),
    NestedField(7, "last_seen", TimestamptzType(), required=True),
)


@dataclass(frozen=True)
class QuarantinedFile:
    key: str
    size: int
    etag: str
    kind: str  # FileKind value
    error: str
    first_seen: datetime
    last_seen: datetime

    def same_version(self, file: BronzeFile) -> bool:
        return self.size == file.info.size and self.etag == file.info.etag


def quarantine_identifier(contract: TableContract) -> str:
    return silver_identifier(contract.name, QUARANTINE)


def read_quarantine(catalog: Catalog, contract: TableContract) -> dict[str, QuarantinedFile]:
    identifier = quarantine_identifier(contract)
    if not catalog.table_exists(identifier):
        return {}
    rows = catalog.load_table(identifier).scan().to_arrow().to_pylist()
    return {row["key"]: QuarantinedFile(**row) for row in rows}


def quarantined(file: BronzeFile, error: str, seen: datetime) -> QuarantinedFile:
    return QuarantinedFile(
        key=file.info.key,
        size=file.info.size,
        etag=file.info.etag,
        kind=file.key.kind.value,
        error=error,
        first_seen=seen,
        last_seen=seen,
    )


def update_quarantine(
    catalog: Catalog,
    contract: TableContract,
    current: Mapping[str, QuarantinedFile],
    bad: Sequence[QuarantinedFile],
    released: Sequence[str],
) -> None:
    """Record ``bad`` files (keeping when each was first seen) and clear ``released`` keys
    (files that read now); the table is small, so it is rewritten whole."""
    if not bad and not any(key in current for key in released):
        return

    def update() -> None:
        ensure_namespace(catalog)
        table = catalog.create_table_if_not_exists(
            quarantine_identifier(contract), schema=_SCHEMA, properties=TABLE_PROPERTIES
        )
        stored = read_quarantine(catalog, contract)
        for entry in bad:
            earlier = stored.get(entry.key)
            stored[entry.key] = replace(entry, first_seen=earlier.first_seen) if earlier else entry
        for key in released:
            stored.pop(key, None)
        rows = [asdict(entry) for entry in sorted(stored.values(), key=lambda e: e.key)]
        table.overwrite(pa.Table.from_pylist(rows, schema=_SCHEMA.as_arrow()))

    with_commit_retries(update)
