"""A landing to continue: the source state a previous ``generate`` or ``stream`` left.

The oracle is that state (every table's live rows); the manifest says when the last
commit was and, after a stream, where every table's id sequence stands. A generated
landing records no sequences: they follow the ids its files show.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakehouse_assets.contracts import Contracts
from lakehouse_assets.demo.clock import epoch_us
from lakehouse_assets.demo.oracle import EXPECTED_PREFIX
from lakehouse_assets.demo.simulation import Simulation
from lakehouse_assets.demo.summary import Summary
from lakehouse_assets.dms import FileKind, parse_object_key, read_dms_file, table_prefix
from lakehouse_assets.lake.store import LakeStore


def restore_landing(
    store: LakeStore, contracts: Contracts, summary: Summary, sim: Simulation
) -> None:
    """Every table of ``sim`` as the landing's oracle holds it, its sequence where it was."""
    for name, log in sim.logs.items():
        rows = pq.read_table(io.BytesIO(store.get(f"{EXPECTED_PREFIX}{name}.parquet")))
        next_id = summary.sequences.get(name) or next_id_in_files(store, contracts, name, rows)
        log.restore(rows, next_id)


def next_id_in_files(store: LakeStore, contracts: Contracts, name: str, live: pa.Table) -> int:
    """The id after every id of the live rows and the table's CDC files. (Ids that only a
    reload removed are in no file any more, so taking one again goes unseen.)"""
    contract, dms = contracts.table(name), contracts.dms
    highest = pc.max(live["id"]).as_py() or 0
    for info in store.list_objects(table_prefix(dms, contract.schema, contract.dms_name)):
        if parse_object_key(info.key, dms).kind is not FileKind.CDC:
            continue
        ids = read_dms_file(store.get(info.key), info.key, contract, dms)["id"]
        highest = max(highest, pc.max(ids.cast(pa.int64())).as_py() or 0)
    return highest + 1


def last_commit_us(summary: Summary) -> int:
    """A bound on the landing's last commit: its last stream's end, its cut last day's
    cutoff, or the midnight after its last day."""
    if summary.streams:
        return _parse(summary.streams[-1]["stopped"])
    arguments = summary.arguments
    if "cutoff" in arguments:
        return _parse(arguments["cutoff"])
    end = date.fromisoformat(arguments["start"]) + timedelta(days=arguments["days"])
    return epoch_us(datetime(end.year, end.month, end.day, tzinfo=UTC))


def _parse(text: str) -> int:
    return epoch_us(datetime.fromisoformat(text).replace(tzinfo=UTC))
