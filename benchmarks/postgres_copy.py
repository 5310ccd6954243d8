"""The Postgres IO manager's COPY path against a plain executemany INSERT, same rows, same run.

    .venv/bin/python benchmarks/postgres_copy.py --rows 100000

Uses LAKEHOUSE_POSTGRES_URL when set, else a throwaway embedded server in a temp
folder. Both paths load the same Arrow table (shaped like a gold summary: date,
keys, text, money, a ratio, a timestamp) into their own new table inside one
transaction; the script checks that both tables then hold the same rows and
prints rows/s of each and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import psycopg2
import pyarrow as pa
from psycopg2 import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lakehouse_assets.postgres import embedded_postgres_url, stop_embedded_postgres
from lakehouse_assets.postgres.tables import ensure_table, replace_rows

SCHEMA = "benchmark"


def gold_like_rows(rows: int, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    start = date(2024, 1, 1)
    cents = rng.integers(0, 10_000_000, rows)
    return pa.table(
        {
            "day": pa.array(
                [start + timedelta(days=int(d)) for d in rng.integers(0, 365, rows)], pa.date32()
            ),
            "tenant_id": pa.array(rng.integers(1, 50, rows), pa.int64()),
            "row_id": pa.array(np.arange(rows), pa.int64()),
            "product_name": pa.array(
                [f'Product {i % 997} "deluxe", size {i % 7}' for i in range(rows)]
            ),
            "revenue": pa.array([Decimal(int(c)).scaleb(-2) for c in cents], pa.decimal128(18, 2)),
            "conversion": pa.array(rng.random(rows)),
            "updated_at": pa.array(
                [
                    datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=int(s))
                    for s in rng.integers(0, 10**7, rows)
                ],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )


def load_with_copy(url: str, table: pa.Table) -> float:
    connection = psycopg2.connect(url)
    try:
        ensure_table(connection, SCHEMA, "via_copy", table.schema, ["row_id"])
        started = time.perf_counter()
        replace_rows(connection, SCHEMA, "via_copy", table, None)
        return time.perf_counter() - started
    finally:
        connection.close()


def load_with_executemany(url: str, table: pa.Table) -> float:
    connection = psycopg2.connect(url)
    try:
        ensure_table(connection, SCHEMA, "via_insert", table.schema, ["row_id"])
        statement = sql.SQL("INSERT INTO {}.{} ({}) VALUES ({})").format(
            sql.Identifier(SCHEMA),
            sql.Identifier("via_insert"),
            sql.SQL(", ").join(map(sql.Identifier, table.column_names)),
            sql.SQL(", ").join(sql.Placeholder() * len(table.column_names)),
        )
        started = time.perf_counter()
        # Arrow -> Python, as an app would.
        rows = list(zip(*(column.to_pylist() for column in table.columns)))
        with connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("DELETE FROM {}.{}").format(
                    sql.Identifier(SCHEMA), sql.Identifier("via_insert")
                )
            )
            cursor.executemany(statement, rows)
        connection.commit()
        return time.perf_counter() - started
    finally:
        connection.close()


def same_rows(url: str) -> bool:
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                'SELECT (SELECT count(*) FROM "benchmark"."via_copy"), '
                '(SELECT count(*) FROM "benchmark"."via_insert"), '
                '(SELECT count(*) FROM (SELECT * FROM "benchmark"."via_copy" '
                'EXCEPT SELECT * FROM "benchmark"."via_insert") d)'
            )
            copied, inserted, different = cursor.fetchone()
        return copied == inserted and different == 0
    finally:
        connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    table = gold_like_rows(args.rows)
    pgdata = None
    url = os.environ.get("LAKEHOUSE_POSTGRES_URL")
    if not url:
        pgdata = Path(tempfile.mkdtemp(prefix="pg-bench-")) / "postgres"
        url = embedded_postgres_url(pgdata)
    try:
        copy_s = load_with_copy(url, table)
        insert_s = load_with_executemany(url, table)
        identical = same_rows(url)
    finally:
        if pgdata is not None:
            stop_embedded_postgres(pgdata)
    print(
        f"rows: {args.rows:,} ({table.nbytes / 1e6:.1f} MB in Arrow), "
        f"same rows in both tables: {identical}"
    )
    print(
        f"COPY (IO manager, one transaction):   {copy_s:7.2f} s  {args.rows / copy_s:12,.0f} rows/s"
    )
    print(
        f"executemany INSERT (one transaction): {insert_s:7.2f} s  "
        f"{args.rows / insert_s:12,.0f} rows/s"
    )
    print(f"COPY is {insert_s / copy_s:.1f}x faster")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
