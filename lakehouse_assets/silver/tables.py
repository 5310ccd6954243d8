"""Silver Iceberg tables: their schema, partition spec and sort order from the contract.

``silver.<table>`` holds the contract's columns (typed) and the DMS metadata;
``silver.<table>__rejects`` holds rows that failed typing, as raw strings.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.manifest import DataFile
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.transforms import (
    BucketTransform,
    DayTransform,
    HourTransform,
    IdentityTransform,
    MonthTransform,
    Transform,
    TruncateTransform,
    YearTransform,
)
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestampType,
    TimestamptzType,
    TimeType,
)

from lakehouse_assets.contracts import Column, DmsSettings, TableContract
from lakehouse_assets.dms import CHANGE_SEQ, COMMIT_TS, OP, SOURCE_FILE, SOURCE_ROW
from lakehouse_assets.names import REJECTS, SILVER_NAMESPACE, silver_identifier
from lakehouse_assets.silver.casting import REASON
from lakehouse_assets.silver.merge import FILE_ORDER, INGESTED_AT, IS_DELETED, file_order

# pyiceberg writes format v2; v3 tables it cannot write (and Spark would create them by default).
TABLE_PROPERTIES = {"format-version": "2", "write.parquet.compression-codec": "zstd"}

_SIMPLE: dict[str, IcebergType] = {
    "smallint": IntegerType(),
    "int": IntegerType(),
    "bigint": LongType(),
    "real": FloatType(),
    "double": DoubleType(),
    "boolean": BooleanType(),
    "string": StringType(),
    "date": DateType(),
    "time": TimeType(),
    "timestamp": TimestampType(),
    "timestamptz": TimestamptzType(),
    "json": StringType(),
    "uuid": StringType(),
    "bytes": BinaryType(),
}
_METADATA_TYPES: dict[str, IcebergType] = {
    OP: StringType(),
    COMMIT_TS: TimestamptzType(),
    CHANGE_SEQ: StringType(),
    SOURCE_FILE: StringType(),
    SOURCE_ROW: LongType(),
    INGESTED_AT: TimestamptzType(),
    IS_DELETED: BooleanType(),
    FILE_ORDER: StringType(),
}
_REJECT_METADATA = (OP, COMMIT_TS, CHANGE_SEQ, SOURCE_FILE, SOURCE_ROW, REASON)


def silver_table_properties(contract: TableContract) -> dict[str, str]:
    """Table properties of ``silver.<table>``: full (untruncated) min/max bounds for the key
    columns, because merges prune data files by key bounds and the default ``truncate(16)``
    makes string keys that share a 16-character prefix (UUIDv7, "customer-000...") unprunable."""
    return {
        **TABLE_PROPERTIES,
        **{f"write.metadata.metrics.column.{name}": "full" for name in contract.primary_key},
    }


# Set once every stored row has ``_file_order`` (new tables are created with it).
_FILE_ORDER_READY = "lakehouse.file-order"


class SchemaEvolutionError(RuntimeError):
    """The contract changed a silver table in a way a merge cannot follow."""


def table_identifier(contract: TableContract) -> str:
    return silver_identifier(contract.name)


def rejects_identifier(contract: TableContract) -> str:
    return silver_identifier(contract.name, REJECTS)


def iceberg_type(column: Column) -> IcebergType:
    decimal = column.decimal
    if decimal:
        return DecimalType(*decimal)
    return _SIMPLE[column.type]


def silver_schema(contract: TableContract) -> Schema:
    """Contract columns then metadata; only key columns are required (a tombstone may carry
    only its key), and they are the identifier fields."""
    fields = [
        NestedField(
            index, column.name, iceberg_type(column), required=column.name in contract.primary_key
        )
        for index, column in enumerate(contract.columns, start=1)
    ]
    fields += [
        NestedField(index, name, kind, required=False)
        for index, (name, kind) in enumerate(_METADATA_TYPES.items(), start=len(fields) + 1)
    ]
    key_ids = [field.field_id for field in fields if field.name in contract.primary_key]
    return Schema(*fields, identifier_field_ids=key_ids)


def rejects_schema(contract: TableContract) -> Schema:
    names = [*contract.column_names, *_REJECT_METADATA]
    kinds = [StringType()] * len(contract.columns) + [
        _METADATA_TYPES.get(name, StringType()) for name in _REJECT_METADATA
    ]
    return Schema(
        *(
            NestedField(index, name, kind, required=False)
            for index, (name, kind) in enumerate(zip(names, kinds), start=1)
        )
    )


def _transform(name: str) -> Transform:
    simple = {
        "identity": IdentityTransform(),
        "year": YearTransform(),
        "month": MonthTransform(),
        "day": DayTransform(),
        "hour": HourTransform(),
    }
    if name in simple:
        return simple[name]
    kind, width = name.rstrip("]").split("[")
    return BucketTransform(int(width)) if kind == "bucket" else TruncateTransform(int(width))


def silver_partition_spec(contract: TableContract, schema: Schema) -> PartitionSpec:
    spec = contract.partition_by
    if spec is None:
        return PartitionSpec()
    source = schema.find_field(spec.column)
    transform_name = spec.transform.split("[")[0]
    return PartitionSpec(
        PartitionField(
            source_id=source.field_id,
            field_id=1000,
            transform=_transform(spec.transform),
            name=f"{spec.column}_{transform_name}",
        )
    )


def silver_sort_order(contract: TableContract, schema: Schema) -> SortOrder:
    # Key order inside files keeps each file's key range tight, so merges prune by min/max.
    return SortOrder(
        *(
            SortField(source_id=schema.find_field(name).field_id, transform=IdentityTransform())
            for name in contract.primary_key
        )
    )


def ensure_namespace(catalog: Catalog) -> None:
    if catalog.namespace_exists(SILVER_NAMESPACE):
        return
    try:
        catalog.create_namespace(SILVER_NAMESPACE)
    except NamespaceAlreadyExistsError:
        pass
    except Exception:
        # Runs of several tables start together on a new catalog: another one may create the
        # namespace between the check and the insert, and SQL catalogs then raise the
        # database's unique-constraint error rather than NamespaceAlreadyExistsError.
        if not catalog.namespace_exists(SILVER_NAMESPACE):
            raise


def load_or_create_silver_table(
    catalog: Catalog, contract: TableContract, dms: DmsSettings
) -> Table:
    """The silver table, created from the contract on first use and evolved for new columns."""
    ensure_namespace(catalog)
    identifier = table_identifier(contract)
    try:
        table = catalog.load_table(identifier)
    except NoSuchTableError:
        schema = silver_schema(contract)
        return catalog.create_table_if_not_exists(
            identifier,
            schema=schema,
            partition_spec=silver_partition_spec(contract, schema),
            sort_order=silver_sort_order(contract, schema),
            properties={**silver_table_properties(contract), _FILE_ORDER_READY: "true"},
        )
    return add_file_order(evolve_schema(table, contract), dms)


def load_or_create_rejects_table(catalog: Catalog, contract: TableContract) -> Table:
    ensure_namespace(catalog)
    table = catalog.create_table_if_not_exists(
        rejects_identifier(contract), schema=rejects_schema(contract), properties=TABLE_PROPERTIES
    )
    missing = [name for name in contract.column_names if name not in table.schema().column_names]
    if missing:
        with table.update_schema() as update:
            for name in missing:
                update.add_column(name, StringType())
        table = table.refresh()
    return table


def is_widening(stored: IcebergType, wanted: IcebergType) -> bool:
    """The type promotions Iceberg allows (checked here: pyiceberg's ``update_column`` also
    accepted decimal(10,2) to decimal(12,4) and string to binary)."""
    if isinstance(stored, IntegerType) and isinstance(wanted, LongType):
        return True
    if isinstance(stored, FloatType) and isinstance(wanted, DoubleType):
        return True
    return (
        isinstance(stored, DecimalType)
        and isinstance(wanted, DecimalType)
        and wanted.scale == stored.scale
        and wanted.precision > stored.precision
    )


def evolve_schema(
    table: Table, contract: TableContract, own_columns: tuple[str, ...] = ()
) -> Table:
    """Add columns new in the contract and widen the columns the contract widens; refuse
    drops and other type changes with what to do."""
    current = table.schema()
    ignored = {*_METADATA_TYPES, *own_columns}  # the table's own columns, not the contract's
    existing = {field.name: field for field in current.fields if field.name not in ignored}
    wanted = {column.name: column for column in contract.columns}
    dropped = sorted(set(existing) - set(wanted))
    if dropped:
        raise SchemaEvolutionError(
            f"{table_identifier(contract)}: column(s) {', '.join(dropped)} are in the Iceberg "
            "table but no longer in the contract. Put them back in the contract (DMS keeps "
            "sending what the source has), or drop them from the table on purpose with ALTER "
            "TABLE ... DROP COLUMN (Spark/Trino) before the next run."
        )
    widened = []
    for name, column in wanted.items():
        if name not in existing or existing[name].field_type == iceberg_type(column):
            continue
        if not is_widening(existing[name].field_type, iceberg_type(column)):
            raise SchemaEvolutionError(
                f"{table_identifier(contract)}: column {name!r} is {existing[name].field_type} in "
                f"the Iceberg table but {column.type} in the contract. Iceberg can only widen a "
                "column (int to bigint, real to double, a decimal's precision at the same "
                "scale): add a new column with the new type to the contract (and the source), "
                "or rebuild the table by dropping it and re-running silver over all partitions."
            )
        widened.append(column)
    if widened:
        # Older rows read back unchanged: Iceberg promotes the stored values on read.
        with table.update_schema() as update:
            for column in widened:
                update.update_column(column.name, field_type=iceberg_type(column))
        table = table.refresh()
    added = [column for column in contract.columns if column.name not in existing]
    if not added:
        return table
    with table.update_schema() as update:
        for column in added:
            update.add_column(column.name, iceberg_type(column))
    return table.refresh()


def write_data_files(table: Table, rows: pa.Table) -> list[DataFile]:
    """Write ``rows`` as data files of ``table`` (partitioned, sorted as given), uncommitted:
    the caller commits them with the files they replace, in one snapshot. (``table``'s own
    metadata: a transaction's is a deep copy per access, which grows with the snapshots.)"""
    # pyiceberg has no public "write data files, commit them myself" call; this is the
    # function its own append and copy-on-write delete use for exactly that.
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    if rows.num_rows == 0:
        return []
    return list(
        _dataframe_to_data_files(
            table_metadata=table.metadata, df=rows, io=table.io, write_uuid=uuid.uuid4()
        )
    )


def read_data_files(table: Table, tasks: Iterable) -> Iterator[tuple[object, pa.Table]]:
    """Each planned file's rows, one file at a time (memory follows one file)."""
    scan = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue())
    for task in tasks:
        yield task, scan.to_table([task])


def add_file_order(table: Table, dms: DmsSettings) -> Table:
    """Tables written before ``_file_order`` was stored get it once: the column is added and
    every data file rewritten with the order computed from ``_source_file``, in one commit."""
    if FILE_ORDER in table.schema().column_names and table.properties.get(_FILE_ORDER_READY):
        return table
    if FILE_ORDER not in table.schema().column_names:
        with table.update_schema() as update:
            update.add_column(FILE_ORDER, StringType())
        table = table.refresh()
    tasks = list(table.scan().plan_files())
    arrow_schema = table.schema().as_arrow()
    with table.transaction() as transaction:
        if tasks:
            added = []
            for _, rows in read_data_files(table, tasks):
                rows = rows.set_column(
                    rows.schema.get_field_index(FILE_ORDER),
                    FILE_ORDER,
                    file_order(rows[SOURCE_FILE], dms),
                )
                added += write_data_files(table, rows.cast(arrow_schema))
            with transaction.update_snapshot().overwrite() as overwrite:
                for task in tasks:
                    overwrite.delete_data_file(task.file)
                for data_file in added:
                    overwrite.append_data_file(data_file)
        transaction.set_properties({_FILE_ORDER_READY: "true"})
    return table.refresh()
