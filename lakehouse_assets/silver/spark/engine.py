"""The silver merge on Apache Spark: the arrow engine's result (writer.py), value for value.

Spark reads the bronze DMS files itself, with the DMS reader's rules
(dms/reader.py: explicit all-string schema from the contract, Op only in CDC files
unless ``include_op_for_full_load``, the timestamp column, AR_H_CHANGE_SEQ last,
RFC 4180 quoting with newlines, the null value, gzip), types the values with
casting.py's grammar (a value casting.py rejects is rejected here, with the same
``_reason``), keeps the newest change per key with a window, and applies it with
one ``MERGE INTO`` whose ``WHEN MATCHED`` condition is merge.py's rule: a change
replaces the stored row only when its position (commit ts, change seq, file
order, row) is after the stored row's. Deletes are written as tombstones.

Tables are created and evolved by pyiceberg (tables.py), in the catalog Spark
reaches through Iceberg's JDBC catalog (spark_session.py), so both engines write
the same tables (format v2, the contract's partition spec and sort order).

Differences, by design: Spark has no ``time`` type, so a contract with a ``time``
column stays on the arrow engine (``unsupported_reason``). The merge is Iceberg's
copy-on-write ``MERGE INTO``: it rewrites the data files that hold a changed key,
with Spark's own pruning (partition, min/max, runtime filtering on the keys).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.io.pyarrow import schema_to_pyarrow

from lakehouse_assets.contracts import DmsSettings, TableContract
from lakehouse_assets.dms import (
    CHANGE_SEQ,
    COMMIT_TS,
    OP,
    SOURCE_FILE,
    SOURCE_ROW,
    DmsFormatError,
    FileKind,
    parse_object_key,
    read_dms_file,
)
from lakehouse_assets.lake import LakeStore
from lakehouse_assets.names import CATALOG_NAME
from lakehouse_assets.silver.apply import Engine, EngineRun, MergeSettings
from lakehouse_assets.silver.casting import REASON, silver_type
from lakehouse_assets.silver.changes import ChangeRuns
from lakehouse_assets.silver.generations import (
    GENERATIONS_PROPERTY,
    SWEEP_FILE_ORDER,
    Generation,
    LoadHistory,
    cdc_name_time_us,
)
from lakehouse_assets.silver.history import merge_history
from lakehouse_assets.silver.ledger import entry_for
from lakehouse_assets.silver.merge import (
    CHANGE_IDENTITY,
    FILE_ORDER,
    INGESTED_AT,
    IS_DELETED,
    KIND,
    ORDER_TS,
    POSITION,
    equal_sql,
    newer_sql,
    too_old_reason,
)
from lakehouse_assets.silver.pruning import candidate_count
from lakehouse_assets.silver.rejects import replace_rejects
from lakehouse_assets.silver.result import (
    MergeResult,
    TableWrite,
    check_horizon,
    snapshot_properties,
    tombstone_horizon,
    with_commit_retries,
)
from lakehouse_assets.silver.spark.reader import BronzeFileRef, local_bytes, read_bronze, spark_uri
from lakehouse_assets.silver.spark.sql import ident, literal
from lakehouse_assets.silver.spark.typing import (
    SparkEngineUnsupported,
    json_validator,
    reason_builder,
    timestamp_utc_sql,
    typed_sql,
)
from lakehouse_assets.silver.tables import load_or_create_silver_table, table_identifier
from lakehouse_assets.silver.writer import prepare_changes

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PATH = "_lh_path"
_MID = "_lh_mid"
_BAD = "_lh_bad_"  # per column: the value could not be typed
_REJECT_AT = "_lh_reject_at"  # index of the first column at fault (contract order)
_REJECT_KIND = "_lh_reject_kind"  # 'bad' or 'missing'
_STORED = "_lh_stored"
_WINS = "_lh_wins"
_UNSUPPORTED_TYPES = {
    "time": "Spark has no time-of-day type (Iceberg's Spark integration refuses time columns)"
}


# ------------------------------------------------------------------ the merge


def unsupported_reason(contract: TableContract) -> str | None:
    """Why the Spark engine cannot merge ``contract``'s table, or None."""
    for column in contract.columns:
        if column.type in _UNSUPPORTED_TYPES:
            return f"column {column.name!r} is {column.type}: {_UNSUPPORTED_TYPES[column.type]}"
    return None


def spark_merge_changes(
    spark,
    catalog,
    contract: TableContract,
    dms: DmsSettings,
    files: Sequence[BronzeFileRef],
    ingested_at: datetime,
    read_bytes: Callable[[BronzeFileRef], bytes] | None = None,
    timings: dict[str, float] | None = None,
    settings: MergeSettings | None = None,
    reread: Callable[[list[tuple[int, int]]], list[BronzeFileRef]] | None = None,
) -> MergeResult:
    """Merge the DMS ``files`` (one batch, any number of days) into ``silver.<table>`` with
    Spark: the same table as the arrow engine's over the same files; safe to repeat. A
    structurally bad file raises DmsFormatError naming file and line (``spark_engine``
    quarantines it instead).

    ``timings``, when given, receives the seconds of each phase: ``read`` (parse and type
    the files), ``plan`` (newest change per key, compared with the stored rows), ``merge``
    (the ``MERGE INTO`` commit) and ``rejects``."""
    return _merge_files(
        spark,
        catalog,
        contract,
        dms,
        list(files),
        ingested_at,
        read_bytes or local_bytes,
        timings,
        settings or MergeSettings(),
        reread,
    ).result


@dataclass(frozen=True)
class _FileStats:
    rows: int
    first: datetime | None
    last: datetime | None


@dataclass(frozen=True)
class _SparkRun:
    result: MergeResult
    stats: dict[str, _FileStats]  # per file key that had rows


class _BadFiles(Exception):
    def __init__(self, errors: dict[str, str]):
        super().__init__(errors)
        self.errors = errors


def spark_engine(spark, store: LakeStore, lake_uri: str) -> Engine:
    """The Spark engine for apply.apply_days: Spark reads the files and merges them; a
    structurally bad file is named by the DMS reader and quarantined (or, with
    ``dms.on_bad_file: fail``, stops the run)."""

    def run(catalog, contract, dms, files, ingested_at, settings, reread, loads) -> EngineRun:
        by_key = {file.info.key: file for file in files}
        refs = [BronzeFileRef(key, spark_uri(lake_uri, key)) for key in by_key]

        def read_bytes(ref: BronzeFileRef) -> bytes:
            return store.get(ref.key)

        def read_again(windows: list[tuple[int, int]]) -> list[BronzeFileRef]:
            extra = reread(windows)
            by_key.update({file.info.key: file for file in extra})
            return [BronzeFileRef(f.info.key, spark_uri(lake_uri, f.info.key)) for f in extra]

        bad: dict[str, str] = {}
        while True:
            good = [ref for ref in refs if ref.key not in bad]
            ready = loads.ready([by_key[ref.key] for ref in good], bad)
            try:
                outcome = _merge_files(
                    spark,
                    catalog,
                    contract,
                    dms,
                    good,
                    ingested_at,
                    read_bytes,
                    None,
                    settings,
                    read_again,
                    collect_bad=True,
                    loads_ready=ready,
                )
                break
            except _BadFiles as found:
                if dms.on_bad_file == "fail":
                    raise DmsFormatError(next(iter(found.errors.values()))) from None
                bad.update(found.errors)
        applied = []
        for ref in refs:
            if ref.key in bad:
                continue
            stats = outcome.stats.get(ref.key, _FileStats(0, None, None))
            applied.append(
                entry_for(by_key[ref.key], stats.rows, (stats.first, stats.last), ingested_at)
            )
        return EngineRun(outcome.result, applied, bad)

    return run


def _merge_files(
    spark,
    catalog,
    contract: TableContract,
    dms: DmsSettings,
    files: list[BronzeFileRef],
    ingested_at: datetime,
    read_bytes: Callable[[BronzeFileRef], bytes],
    timings: dict[str, float] | None,
    settings: MergeSettings,
    reread: Callable[[list[tuple[int, int]]], list[BronzeFileRef]] | None,
    collect_bad: bool = False,
    loads_ready: bool = True,
) -> _SparkRun:
    from pyspark.sql import functions as F

    clock = _Clock(timings)
    reason = unsupported_reason(contract)
    if reason:
        raise SparkEngineUnsupported(
            f"{table_identifier(contract)}: {reason}; use the arrow engine"
        )
    spark_table = f"{CATALOG_NAME}.{table_identifier(contract)}"
    table = load_or_create_silver_table(catalog, contract, dms)  # pyiceberg: format v2
    before, horizon = _history(table, dms), tombstone_horizon(table)
    staged, stats = _stage(spark, files, contract, dms, read_bytes, collect_bad, before, horizon)
    if staged is not None and reread is not None:
        load_ranges, cdc_names = _load_facts(files, stats, dms)
        windows = before.advanced(load_ranges, cdc_names).lowered_windows(before)
        extra = [ref for ref in (reread(windows) if windows else []) if ref not in files]
        if extra:
            files = files + extra
            staged, stats = _stage(
                spark, files, contract, dms, read_bytes, collect_bad, before, horizon
            )
    if staged is None:
        return _SparkRun(MergeResult.empty(table.metadata.current_snapshot_id), {})
    load_ranges, cdc_names = _load_facts(files, stats, dms)
    clock.lap("read")
    newest = [value.last for value in stats.values() if value.last is not None]
    batch_max = max(newest) if newest else None
    rejected = sum(value.rejected for value in stats.values())
    valid = staged.filter(F.col(_REJECT_AT).isNull())

    applied_history: list[LoadHistory] = []

    def merge_once() -> TableWrite:
        current = catalog.load_table(table_identifier(contract))
        check_horizon(current, horizon, lambda: _earliest_rank(valid, before))
        known = _history(current, dms)
        history = known.advanced(load_ranges, cdc_names, loads_ready)
        applied_history[:] = [history]  # what the committed attempt applied
        return _merge_once(
            spark,
            catalog,
            contract,
            spark_table,
            valid,
            ingested_at,
            batch_max,
            clock,
            history,
            history.completed_now(known),
            settings.reapply,
        )

    try:
        write, attempts = with_commit_retries(merge_once)
        if contract.history:
            (history,) = applied_history
            _merge_history(catalog, contract, dms, valid, history, ingested_at)
    finally:
        staged.unpersist()
    replace_rejects(catalog, contract, sorted(stats), _rejects(contract, staged, rejected, horizon))
    clock.lap("rejects")
    result = MergeResult.of(
        write,
        changes=sum(value.rows for value in stats.values()),
        rejected=rejected,
        max_commit_ts=batch_max,
        attempts=attempts,
    )
    return _SparkRun(result, {key: _FileStats(v.rows, v.first, v.last) for key, v in stats.items()})


def _earliest_rank(valid, history: LoadHistory) -> datetime | None:
    """The earliest position of the batch's changes (as the horizon split ranked them)."""
    from pyspark.sql import functions as F

    rank = history.order_ts_sql(ident(COMMIT_TS), ident(FILE_ORDER))
    micros = valid.select(F.min(F.expr(f"unix_micros({rank})"))).first()[0]
    return None if micros is None else datetime.fromtimestamp(micros / 1_000_000, UTC)


def _merge_history(catalog, contract, dms, valid, history, ingested_at) -> None:
    """The history of the batch's keys, by history.py's rules (one definition for both
    engines): the batch's typed changes come to the driver as Arrow."""
    changes = _on_driver(valid, contract)
    with ChangeRuns() as runs:
        runs.add(prepare_changes(changes, contract, dms))
        merge_history(catalog, contract, dms, runs, history, ingested_at)


def _on_driver(frame, contract: TableContract) -> pa.Table:
    """The typed changes of ``frame`` as Arrow, typed as silver types them (casting.py)."""
    from pyspark.sql import functions as F

    # Instants as microseconds: pyspark hands them to Python in the driver's local zone.
    instants = [c.name for c in contract.columns if c.type == "timestamptz"] + [COMMIT_TS]
    metadata = [OP, CHANGE_SEQ, SOURCE_FILE, SOURCE_ROW, FILE_ORDER]
    names = [*contract.column_names, *metadata, COMMIT_TS]
    rows = frame.select(
        *[F.unix_micros(F.col(n)).alias(n) if n in instants else F.col(n) for n in names]
    ).collect()
    types = {c.name: silver_type(c) for c in contract.columns}
    types.update({OP: pa.string(), CHANGE_SEQ: pa.string(), SOURCE_FILE: pa.string()})
    types.update({SOURCE_ROW: pa.int64(), FILE_ORDER: pa.string()})
    schema = pa.schema([(n, pa.int64() if n in instants else types[n]) for n in names])
    table = pa.Table.from_pylist([row.asDict() for row in rows], schema=schema)
    for name in instants:
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, table[name].cast(pa.timestamp("us", tz="UTC")))
    return table


@dataclass(frozen=True)
class _StagedStats:
    rows: int
    rejected: int
    first: datetime | None
    last: datetime | None


def _stage(spark, files, contract, dms, read_bytes, collect_bad: bool, history, horizon):
    """Read and type ``files``, materialized once; per file: rows, rejects, commit range.
    A structural fault names its file (``_BadFiles`` with ``collect_bad``, else the DMS
    reader's DmsFormatError)."""
    from pyspark.sql import functions as F

    try:
        # Header rows and Parquet schemas are read here, on the driver.
        raw = read_bronze(spark, files, contract, dms, read_bytes)
    except DmsFormatError:
        _raise_bad(files, contract, dms, read_bytes, collect_bad)
        raise
    if raw is None:
        return None, {}
    staged = _typed(raw, contract, dms, history, horizon)
    try:
        # Materialized once: the file scan (row positions come from non-deterministic
        # expressions, which MERGE INTO refuses in its source) and the typing.
        staged = staged.localCheckpoint(eager=True)
    except Exception as exc:
        if "malformed" not in str(exc).lower() and "gzip" not in str(exc).lower():
            raise
        _raise_bad(files, contract, dms, read_bytes, collect_bad)
        raise
    per_file = (
        staged.groupBy(SOURCE_FILE)
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.col("_lh_structural").cast("int")).alias("structural"),
            F.sum(F.col(_REJECT_AT).isNotNull().cast("int")).alias("rejected"),
            F.unix_micros(F.min(COMMIT_TS)).alias("first_us"),
            F.unix_micros(F.max(COMMIT_TS)).alias("last_us"),
        )
        .collect()
    )
    if any(row[SOURCE_FILE] is None for row in per_file):
        raise RuntimeError("rows of files Spark reported under an unexpected path")
    if any(row["structural"] for row in per_file):
        _raise_bad(files, contract, dms, read_bytes, collect_bad)
        raise DmsFormatError(f"{table_identifier(contract)}: rows with a bad Op or timestamp")
    stats = {
        row[SOURCE_FILE]: _StagedStats(
            row["rows"], row["rejected"] or 0, _moment(row["first_us"]), _moment(row["last_us"])
        )
        for row in per_file
    }
    return staged, stats


def _raise_bad(files, contract, dms, read_bytes, collect_bad: bool) -> None:
    """Re-read the files with the DMS reader, which names the file, line and value at fault."""
    errors = {}
    for ref in files:
        try:
            read_dms_file(read_bytes(ref), ref.key, contract, dms)
        except DmsFormatError as exc:
            if not collect_bad:
                raise
            errors[ref.key] = str(exc)
    if errors:
        raise _BadFiles(errors)


def _moment(micros: int | None) -> datetime | None:
    return None if micros is None else _EPOCH + timedelta(microseconds=micros)


def _history(table, dms: DmsSettings) -> LoadHistory:
    return LoadHistory.from_property(dms, table.properties.get(GENERATIONS_PROPERTY))


def _load_facts(files, stats, dms) -> tuple[list[tuple[int, int]], list[int]]:
    """The LOAD files' transfer ranges and the CDC files' name times (microseconds)."""
    ranges, names = [], []
    for ref in files:
        parsed = parse_object_key(ref.key, dms)
        found = stats.get(ref.key)
        if parsed.kind is FileKind.FULL_LOAD:
            if found is not None and found.first is not None:
                ranges.append((_micros(found.first), _micros(found.last)))
        else:
            stamp = cdc_name_time_us(parsed)
            if stamp is not None:
                names.append(stamp)
    return ranges, names


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _typed(
    raw,
    contract: TableContract,
    dms: DmsSettings,
    history: LoadHistory,
    horizon: datetime | None,
):
    """casting.py's typing in Spark SQL: typed columns, the raw strings, reject flags."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType

    # --- structure: Op values and the commit timestamp, as the DMS reader checks them
    commit_ts = (
        timestamp_utc_sql(ident(COMMIT_TS)) if dms.timestamp_column else "CAST(NULL AS TIMESTAMP)"
    )
    raw = raw.withColumn(COMMIT_TS, F.expr(commit_ts))
    # --- typing: one expression per column (step 1), then flags on its results (step 2; two
    # projections, so each typing expression is evaluated once per value)
    is_delete = F.col(OP) == F.lit("D")
    json_valid = F.udf(json_validator(), BooleanType())
    names = contract.column_names
    step1 = [F.col(name).alias(f"_lh_raw_{index}") for index, name in enumerate(names)]
    for index, column in enumerate(contract.columns):
        if column.type == "json":
            step1.append(json_valid(F.col(column.name)).alias(f"_lh_ok_{index}"))
        else:
            step1.append(F.expr(typed_sql(ident(column.name), column)).alias(f"_lh_typed_{index}"))
    metadata = [OP, COMMIT_TS, CHANGE_SEQ, SOURCE_FILE, SOURCE_ROW, FILE_ORDER]
    typed_step = raw.select(*step1, *metadata)

    typed_columns, bad_flags = [], []
    for index, column in enumerate(contract.columns):
        value = F.col(f"_lh_raw_{index}")
        if column.type == "json":
            typed = value
            bad_value = value.isNotNull() & ~F.col(f"_lh_ok_{index}")
        else:
            typed = F.col(f"_lh_typed_{index}")
            bad_value = value.isNotNull() & typed.isNull()
        bad = bad_value  # a bad value is NULL in the typed row, as in casting.convert_column
        if column.name not in contract.primary_key:
            bad = bad & ~is_delete  # a delete needs only its key
        missing = F.lit(False)
        if not column.nullable:
            missing = value.isNull() & ~bad
            if column.name not in contract.primary_key:
                missing = missing & ~is_delete
        typed_columns.append(F.when(bad_value, F.lit(None)).otherwise(typed).alias(column.name))
        bad_flags.append((bad, missing))

    reject_at = F.lit(None).cast("int")
    reject_kind = F.lit(None).cast("string")
    for index in reversed(range(len(contract.columns))):
        bad, missing = bad_flags[index]
        reject_at = F.when(bad | missing, F.lit(index)).otherwise(reject_at)
        reject_kind = (
            F.when(bad, F.lit("bad")).when(missing, F.lit("missing")).otherwise(reject_kind)
        )

    if horizon is not None:
        # Positioned before the tombstone horizon: rejected first (merge.too_old_reason).
        rank = history.order_ts_sql(ident(COMMIT_TS), ident(FILE_ORDER))
        too_old = F.coalesce(F.expr(f"{rank} < timestamp_micros({_micros(horizon)})"), F.lit(False))
        reject_at = F.when(too_old, F.lit(0)).otherwise(reject_at)
        reject_kind = F.when(too_old, F.lit("horizon")).otherwise(reject_kind)

    structural = F.col(OP).isNull() | ~F.col(OP).isin("I", "U", "D")
    if dms.timestamp_column:
        structural = structural | F.col(COMMIT_TS).isNull()
    return typed_step.select(
        *[F.col(f"_lh_raw_{index}") for index in range(len(names))],
        *typed_columns,
        *metadata,
        reject_at.alias(_REJECT_AT),
        reject_kind.alias(_REJECT_KIND),
        structural.alias("_lh_structural"),
    )


class _Clock:
    def __init__(self, timings: dict[str, float] | None):
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[name] = self.timings.get(name, 0.0) + now - self.last
        self.last = now


def _position(history: LoadHistory, column: Callable[[str], str]) -> dict[str, str]:
    """The position fields (merge.POSITION) as SQL over a row whose columns ``column``
    spells; the rank time and kind derived as merge.with_rank derives them."""
    fields = {name: column(name) for name in POSITION if name not in (ORDER_TS, KIND)}
    fields[ORDER_TS] = history.order_ts_sql(column(COMMIT_TS), column(FILE_ORDER))
    fields[KIND] = f"substring({column(FILE_ORDER)}, 1, 1)"
    return fields


def _merge_once(
    spark,
    catalog,
    contract: TableContract,
    spark_table: str,
    valid,
    ingested_at: datetime,
    batch_max: datetime | None,
    clock: _Clock,
    history: LoadHistory,
    sweep: Generation | None,
    reapply: bool,
) -> TableWrite:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    key = list(contract.primary_key)
    values = contract.column_names
    change = _position(history, ident)
    ranked = valid.withColumn(ORDER_TS, F.expr(change[ORDER_TS])).withColumn(
        KIND, F.expr(change[KIND])
    )
    stale = 0
    if history.barrier_us is not None:
        # Changes positioned before a completed reload are stale whenever they arrive.
        before = F.col(ORDER_TS) < F.expr(f"timestamp_micros({history.barrier_us})")
        ranked = ranked.withColumn("_lh_before", F.coalesce(before, F.lit(False)))
        stale = ranked.filter(F.col("_lh_before")).count()
        ranked = ranked.filter(~F.col("_lh_before")).drop("_lh_before")
    newest_first = Window.partitionBy(*key).orderBy(
        *[F.col(name).desc_nulls_last() for name in POSITION]
    )
    latest = (
        ranked.withColumn("_lh_rank", F.row_number().over(newest_first))
        .filter(F.col("_lh_rank") == 1)
        .drop("_lh_rank")
    )
    table = catalog.load_table(table_identifier(contract))
    table_columns = [field.name for field in table.schema().fields]
    date_columns = [
        c.name for c in contract.columns if c.type in ("date", "timestamp", "timestamptz")
    ]
    stored_names = list(
        dict.fromkeys(
            [
                *key,
                *values,
                OP,
                COMMIT_TS,
                CHANGE_SEQ,
                SOURCE_FILE,
                SOURCE_ROW,
                FILE_ORDER,
                IS_DELETED,
            ]
        )
    )
    stored = spark.table(spark_table).select(
        *[F.col(name).alias(f"{_STORED}{name}") for name in stored_names]
    )
    on = None
    for name in key:
        clause = F.col(name) == F.col(f"{_STORED}{name}")
        on = clause if on is None else on & clause
    joined = latest.join(stored, on=on, how="left")

    def stored_column(name: str) -> str:
        return ident(f"{_STORED}{name}")

    held = _position(history, stored_column)
    mine = {name: ident(name) for name in [*values, OP, COMMIT_TS, CHANGE_SEQ]}
    theirs = {name: stored_column(name) for name in [*values, OP, COMMIT_TS, CHANGE_SEQ]}
    change_pos = {**{name: ident(name) for name in POSITION}}
    has_stored = F.col(f"{_STORED}{SOURCE_ROW}").isNotNull()
    same_values = has_stored & F.expr(equal_sql(mine, theirs, values))
    same_change = has_stored & F.expr(equal_sql(mine, theirs, list(CHANGE_IDENTITY)))
    redelivery = same_change & same_values
    skip = redelivery & F.col(CHANGE_SEQ).isNotNull()
    wins = (~has_stored) | (F.expr(newer_sql(change_pos, held)) & ~skip)
    if reapply:
        wins = wins | (has_stored & F.expr(equal_sql(change_pos, held, list(POSITION))))
    stored_live = has_stored & ~F.coalesce(F.col(f"{_STORED}{IS_DELETED}"), F.lit(True))
    joined = (
        joined.withColumn(_WINS, wins)
        .withColumn("_lh_stored_live", stored_live)
        .withColumn("_lh_same_values", same_values)
        .withColumn("_lh_redelivery", redelivery)
        .persist()
    )
    try:
        delete = F.col(OP) == F.lit("D")
        live = F.col("_lh_stored_live")
        # Per date column, the dates (UTC) of the changed rows, new and old values
        # (writer._touch), collected with the counts.
        touched = [
            F.collect_set(F.when(F.col(_WINS), F.to_date(F.col(source)))).alias(
                f"_lh_touched_{index}_{side}"
            )
            for index, name in enumerate(date_columns)
            for side, source in (("new", name), ("old", f"{_STORED}{name}"))
        ]
        counts = joined.agg(
            F.count(F.lit(1)).alias("keys"),
            F.sum((F.col(_WINS) & ~delete & ~live).cast("int")).alias("inserted"),
            F.sum((F.col(_WINS) & ~delete & live & ~F.col("_lh_same_values")).cast("int")).alias(
                "updated"
            ),
            F.sum((F.col(_WINS) & delete & (live | ~has_stored)).cast("int")).alias("deleted"),
            F.sum(F.col(_WINS).cast("int")).alias("winners"),
            F.sum(F.col("_lh_redelivery").cast("int")).alias("redelivered"),
            *touched,
        ).collect()[0]
        inserted, updated, deleted = (counts[n] or 0 for n in ("inserted", "updated", "deleted"))
        planned = TableWrite(
            inserted=inserted,
            updated=updated,
            deleted=deleted,
            unchanged=stale + (counts["keys"] or 0) - inserted - updated - deleted,
            redelivered=counts["redelivered"] or 0,
            swept=0,
            files_scanned=candidate_count(table, contract, _batch_keys(latest, contract, table)),
            files_rewritten=0,
            files_added=0,
            snapshot_id=table.metadata.current_snapshot_id,
        )
        touched_dates = {}
        for index, name in enumerate(date_columns):
            days = set(counts[f"_lh_touched_{index}_new"]) | set(counts[f"_lh_touched_{index}_old"])
            if days:
                touched_dates[name] = sorted(day.isoformat() for day in days)
        clock.lap("plan")
        properties = snapshot_properties(table, batch_max)
        before_snapshot = table.metadata.current_snapshot_id
        if counts["winners"]:
            source = joined.filter(F.col(_WINS)).select(
                *[F.col(name) for name in table_columns if name not in (INGESTED_AT, IS_DELETED)],
                F.lit(ingested_at).cast("timestamp").alias(INGESTED_AT),
                delete.alias(IS_DELETED),
            )
            view = f"_lh_changes_{contract.name}"
            source.createOrReplaceTempView(view)
            target = {name: f"t.{ident(name)}" for name in [*values, OP, COMMIT_TS, CHANGE_SEQ]}
            incoming = {name: f"s.{ident(name)}" for name in [*values, OP, COMMIT_TS, CHANGE_SEQ]}
            s_pos = _position(history, lambda name: f"s.{ident(name)}")
            t_pos = _position(history, lambda name: f"t.{ident(name)}")
            copy = (
                f"({equal_sql(incoming, target, [*CHANGE_IDENTITY, *values])} "
                f"AND s.{ident(CHANGE_SEQ)} IS NOT NULL)"
            )
            condition = f"({newer_sql(s_pos, t_pos)} AND NOT {copy})"
            if reapply:
                condition = f"({condition} OR {equal_sql(s_pos, t_pos, list(POSITION))})"
            on_sql = " AND ".join(f"t.{ident(name)} = s.{ident(name)}" for name in key)
            assignments = ", ".join(f"t.{ident(name)} = s.{ident(name)}" for name in table_columns)
            names_sql = ", ".join(ident(name) for name in table_columns)
            values_sql = ", ".join(f"s.{ident(name)}" for name in table_columns)
            with _commit_properties(spark, properties):
                spark.sql(
                    f"MERGE INTO {spark_table} t USING {view} s ON {on_sql} "
                    f"WHEN MATCHED AND {condition} THEN UPDATE SET {assignments} "
                    f"WHEN NOT MATCHED THEN INSERT ({names_sql}) VALUES ({values_sql})"
                )
            spark.catalog.dropTempView(view)
        swept = 0
        if sweep is not None:
            swept = _sweep(spark, spark_table, history, sweep, ingested_at, properties)
        _set_history(catalog, contract, history)
        clock.lap("merge")
        after = catalog.load_table(table_identifier(contract))
        summaries = _summaries_since(after, before_snapshot)
        return replace(
            planned,
            swept=swept,
            files_rewritten=sum(int(s.get("deleted-data-files", 0)) for s in summaries),
            files_added=sum(int(s.get("added-data-files", 0)) for s in summaries),
            snapshot_id=after.metadata.current_snapshot_id,
            touched_dates=touched_dates,
        )
    finally:
        joined.unpersist()


def _summaries_since(table, snapshot_id: int | None) -> list[dict[str, str]]:
    """The summaries of the snapshots committed after ``snapshot_id`` (this merge's)."""
    summaries = []
    snapshot = table.current_snapshot()
    while snapshot is not None and snapshot.snapshot_id != snapshot_id:
        summaries.append(snapshot.summary.additional_properties if snapshot.summary else {})
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    return summaries


def _sweep(
    spark, spark_table: str, history: LoadHistory, sweep: Generation, ingested_at, properties
) -> int:
    """A completed reload's sweep (generations.py): live rows positioned before the load's
    start become tombstones ranked first within it."""
    rank = history.order_ts_sql(ident(COMMIT_TS), ident(FILE_ORDER))
    where = f"NOT {ident(IS_DELETED)} AND {rank} < timestamp_micros({history.start_us(sweep)})"
    count = spark.sql(f"SELECT count(*) FROM {spark_table} WHERE {where}").collect()[0][0]
    if count:
        with _commit_properties(spark, properties):
            spark.sql(
                f"UPDATE {spark_table} SET {ident(OP)} = 'D', {ident(IS_DELETED)} = true, "
                f"{ident(COMMIT_TS)} = timestamp_micros({sweep.first_us}), "
                f"{ident(CHANGE_SEQ)} = NULL, {ident(SOURCE_FILE)} = NULL, "
                f"{ident(SOURCE_ROW)} = 0, {ident(FILE_ORDER)} = {literal(SWEEP_FILE_ORDER)}, "
                f"{ident(INGESTED_AT)} = timestamp_micros({_micros(ingested_at)}) WHERE {where}"
            )
    return count


def _set_history(catalog, contract: TableContract, history: LoadHistory) -> None:
    table = catalog.load_table(table_identifier(contract))
    value = history.to_property()
    if table.properties.get(GENERATIONS_PROPERTY) != value:
        with table.transaction() as transaction:
            transaction.set_properties({GENERATIONS_PROPERTY: value})


def _batch_keys(latest, contract: TableContract, table) -> pa.Array:
    """The batch's distinct keys, sorted, on the driver, as ``merge.key_array`` gives them:
    what ``pruning.candidate_count`` prunes by."""
    from pyspark.sql import functions as F

    if len(contract.primary_key) == 1:
        name = contract.primary_key[0]
        key_type = schema_to_pyarrow(table.schema().find_field(name).field_type)
        column = F.col(name)
    else:
        key_type = pa.string()
        column = F.concat_ws("\x1f", *[F.col(name).cast("string") for name in contract.primary_key])
    keys = pa.array([row[0] for row in latest.select(column).distinct().collect()]).cast(key_type)
    return pc.array_take(keys, pc.array_sort_indices(keys))


class _commit_properties:
    """Snapshot summary properties for the SQL commits of this thread: Iceberg's
    ``CommitMetadata`` (whose public entry point takes a Java callable), set directly."""

    def __init__(self, spark, properties: dict[str, str]):
        self.spark = spark
        self.properties = properties

    def _local(self):
        jvm = self.spark._jvm
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        cls = jvm.java.lang.Class.forName("org.apache.iceberg.spark.CommitMetadata", True, loader)
        field = cls.getDeclaredField("COMMIT_PROPERTIES")
        field.setAccessible(True)
        return field.get(None)

    def __enter__(self):
        values = self.spark._jvm.java.util.HashMap()
        for key, value in self.properties.items():
            values.put(key, value)
        self._local().set(values)
        return self

    def __exit__(self, *exc_info):
        self._local().remove()


def _rejects(contract: TableContract, staged, rejected: int, horizon: datetime | None) -> pa.Table:
    """The batch's rejects on the driver, as the arrow engine's ``cast_changes`` gives them:
    the raw strings, the DMS metadata and casting.py's ``_reason`` text."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    names = contract.column_names
    schema = pa.schema(
        [pa.field(name, pa.string()) for name in names]
        + [
            (OP, pa.string()),
            (COMMIT_TS, pa.int64()),
            (CHANGE_SEQ, pa.string()),
            (SOURCE_FILE, pa.string()),
            (SOURCE_ROW, pa.int64()),
            (REASON, pa.string()),
        ]
    )
    timestamp = pa.timestamp("us", tz="UTC")
    if not rejected:
        return schema.empty_table().cast(schema.set(len(names) + 1, pa.field(COMMIT_TS, timestamp)))
    reason = F.udf(
        reason_builder(list(names), [column.type for column in contract.columns]), StringType()
    )
    raw_at = F.element_at(
        F.array(*[F.col(f"_lh_raw_{index}") for index in range(len(names))]), F.col(_REJECT_AT) + 1
    )
    rows = (
        staged.filter(F.col(_REJECT_AT).isNotNull())
        .select(
            *[F.col(f"_lh_raw_{index}").alias(name) for index, name in enumerate(names)],
            # Microseconds: pyspark hands timestamps to Python in the driver's local zone.
            OP,
            F.unix_micros(F.col(COMMIT_TS)).alias(COMMIT_TS),
            CHANGE_SEQ,
            SOURCE_FILE,
            SOURCE_ROW,
            F.when(
                F.col(_REJECT_KIND) == "horizon",
                F.lit(too_old_reason(horizon) if horizon else None),
            )
            .otherwise(reason(F.col(_REJECT_AT), F.col(_REJECT_KIND), raw_at))
            .alias(REASON),
        )
        .collect()
    )
    table = pa.Table.from_pylist([row.asDict() for row in rows], schema=schema)
    return table.set_column(len(names) + 1, COMMIT_TS, table[COMMIT_TS].cast(timestamp))
