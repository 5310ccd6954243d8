"""The oracle next to the DMS files: the state replaying them must give, and the manifest.

``demo/expected/<table>.parquet`` is the final state of every source table, typed
as its contract says; ``demo/manifest.json`` holds the arguments, counts and edge
cases of the run, and the streams that continued it.
"""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.summary import Summary, TableSummary
from lakehouse_assets.demo.table_log import TableLog
from lakehouse_assets.lake.store import LakeStore

EXPECTED_PREFIX = "demo/expected/"
MANIFEST_KEY = "demo/manifest.json"


def expected_state(log: TableLog) -> pa.Table:
    """The live rows typed as the contract says, sorted by key (ids are positions)."""
    rows = log.current(log.live_ids())
    return pa.Table.from_arrays(rows.columns, schema=log.contract.arrow_schema)


def write_expected_state(
    store: LakeStore, sim: Simulation, tables: dict[str, TableSummary]
) -> None:
    """Every table's final state as Parquet; counts its live rows into ``tables``."""
    for name, log in sim.logs.items():
        table = expected_state(log)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        store.put(f"{EXPECTED_PREFIX}{name}.parquet", buffer.getvalue())
        tables[name].live_rows = table.num_rows


def write_manifest(store: LakeStore, summary: Summary) -> None:
    store.put(MANIFEST_KEY, manifest_json(summary).encode("utf-8"))


def read_manifest(store: LakeStore) -> Summary | None:
    """The lake's manifest, or None when the lake holds none."""
    if not any(info.key == MANIFEST_KEY for info in store.list_objects(MANIFEST_KEY)):
        return None
    document = json.loads(store.get(MANIFEST_KEY))
    return Summary(
        arguments=document["arguments"],
        tables={
            name: TableSummary(
                files=t["files"],
                bytes=t["bytes"],
                load_rows=t["load_rows"],
                cdc_rows=t["cdc_rows"],
                live_rows=t["live_rows"],
            )
            for name, t in document["tables"].items()
        },
        edge_cases=document["edge_cases"],
        streams=document.get("streams", []),
        sequences=document.get("sequences", {}),
    )


def manifest_json(summary: Summary) -> str:
    document = {
        "generator": "lakehouse-demo",
        "arguments": summary.arguments,
        "tables": {
            name: {
                "files": t.files,
                "bytes": t.bytes,
                "load_rows": t.load_rows,
                "cdc_rows": t.cdc_rows,
                "rows_written": t.rows_written,
                "live_rows": t.live_rows,
            }
            for name, t in summary.tables.items()
        },
        "edge_cases": summary.edge_cases,
    }
    if summary.streams:
        document["streams"] = summary.streams
        document["sequences"] = summary.sequences
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
