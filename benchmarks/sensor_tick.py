"""DMS landing sensor: does one tick cost the same however many files the bucket holds?

For each size in --existing (default 1,000 / 10,000 / 100,000) it fills a fresh
lake with that many already-seen CDC files of one table (one file a minute, so
day folders hold 1,440 files, as DMS writes them) and --load-files full-load
files (default 100, listed whole every tick), quarantines --quarantined of the
oldest CDC files (default 3, far outside the lookback window) in an Iceberg
SQLite catalog, runs the sensor until it has taken them all, lands --new files
(default 100) and times the next tick: reading the tables' quarantines, the
listing from the saved cursor (the quarantined files looked up by key) and the
bronze materializations and silver run requests. The same tick is evaluated
--repeat times from the same cursor and the median is reported, with the keys
the tick read and, on S3, the ``ListObjectsV2`` requests it sent, the time spent
reading the quarantines, and the time relative to the smallest bucket: a flat
cost is a ratio near 1. ``--load-files 0 --quarantined 0`` is the tick without
them.

    python benchmarks/sensor_tick.py                           # local folder lake
    python benchmarks/sensor_tick.py --store s3 --existing 1000,10000,100000

``--store s3`` starts a moto S3 server on 127.0.0.1 (or uses AWS_ENDPOINT_URL
with --endpoint). Note that moto answers every ListObjectsV2 by sorting the
whole bucket in Python, so its wall time grows with the bucket even though the
requests and keys per tick stay the same; on AWS S3 or MinIO the request count
is the cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from lakehouse_assets.bronze.files import BronzeFile
from lakehouse_assets.contracts import load_contracts
from lakehouse_assets.dms import cdc_key, parse_object_key, table_prefix
from lakehouse_assets.lake import open_lake
from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for, warehouse_for_lake
from lakehouse_assets.sensors.landing import (
    LandingCursor,
    LandingSettings,
    plan_requests,
    read_quarantines,
    scan_landing,
)
from lakehouse_assets.silver.quarantine import quarantined, update_quarantine

CONTRACTS = load_contracts()
TABLE = "core_event"
START = datetime(2024, 1, 1, tzinfo=UTC)


def landed_key(at: datetime) -> str:
    """The key of a CDC file of the benchmark's table that DMS wrote at ``at``."""
    return cdc_key(CONTRACTS.dms, "public", TABLE, at)


def load_file_key(counter: int) -> str:
    """The key of the benchmark table's full-load file number ``counter``."""
    return f"{table_prefix(CONTRACTS.dms, 'public', TABLE)}LOAD{counter:08X}.csv"


def quarantine(store, catalog, keys: list[str]) -> None:
    """Record ``keys`` in the table's quarantine as a silver run does (their size and ETag)."""
    contract = CONTRACTS.table(TABLE)
    bad = []
    for key in keys:
        [info] = [found for found in store.list_objects(key) if found.key == key]
        file = BronzeFile(info=info, key=parse_object_key(key, CONTRACTS.dms))
        bad.append(quarantined(file, f"{key}, line 1: benchmark", datetime.now(UTC)))
    update_quarantine(catalog, contract, {}, bad, [])


class Counter:
    """ListObjectsV2 requests sent and the time spent waiting for them."""

    def __init__(self) -> None:
        self.requests = 0
        self.waiting = 0.0
        self._started = 0.0

    def before(self, **_: object) -> None:
        self.requests += 1
        self._started = time.perf_counter()

    def after(self, **_: object) -> None:
        self.waiting += time.perf_counter() - self._started


def start_moto() -> tuple[subprocess.Popen, str]:
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).read()
            return process, endpoint
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("moto server did not start")


def s3_client(endpoint: str):
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        config=Config(max_pool_connections=32),
    )


def fill(store, keys: list[str], client=None, bucket: str | None = None) -> None:
    if client is None:
        for key in keys:
            store.put(key, b"I,x\n")
        return
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=b"I,x\n"), keys))


def measure(store, catalog_uri: str, warehouse: str, existing: int, load_files: int, new: int):
    """Take the bucket's files with the sensor; return the cursor, the new keys and the tick."""
    settings = LandingSettings(max_files_per_tick=existing + load_files + new + 1)
    first, last = date(2024, 1, 1), date.today()
    now = datetime.now(UTC)
    timings = {"quarantine": 0.0}

    def tick(cursor: LandingCursor):
        began = time.perf_counter()
        # As the sensor does: the catalog resource opens the catalog on every tick.
        waiting = read_quarantines(open_catalog(catalog_uri, warehouse), CONTRACTS)
        timings["quarantine"] = time.perf_counter() - began
        scan = scan_landing(
            store,
            CONTRACTS,
            cursor,
            settings,
            first_day=first,
            last_day=last,
            now=now,
            quarantined=waiting,
        )
        plan_requests(scan, settings)
        return scan

    cursor = LandingCursor()
    taken = 0
    while True:  # take the existing files
        scan = tick(cursor)
        cursor, taken = scan.cursor, taken + len(scan.files)
        if not scan.files:
            break
    assert taken == existing + load_files, (taken, existing, load_files)

    after = START + timedelta(minutes=existing)
    fill_new = [landed_key(after + timedelta(seconds=10 * i)) for i in range(new)]
    return {"cursor": cursor, "new_keys": fill_new, "tick": tick, "timings": timings}


def run(
    store_kind: str,
    sizes: list[int],
    new: int,
    load_files: int,
    quarantined_files: int,
    repeat: int,
    endpoint: str | None,
) -> None:
    moto = None
    client = None
    if store_kind == "s3" and endpoint is None:
        moto, endpoint = start_moto()
    if endpoint is not None:
        # pyiceberg's S3 file IO (the quarantine table) reads the standard variables.
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        rows = []
        for existing in sizes:
            with tempfile.TemporaryDirectory(prefix="sensor-bench-") as folder:
                if store_kind == "s3":
                    client = s3_client(endpoint)
                    bucket = f"sensor-bench-{uuid.uuid4().hex[:10]}"
                    client.create_bucket(Bucket=bucket)
                    counter = Counter()
                    client.meta.events.register("before-call.s3.ListObjectsV2", counter.before)
                    client.meta.events.register("after-call.s3.ListObjectsV2", counter.after)
                    lake_uri = f"s3://{bucket}"
                else:
                    counter, bucket = None, None
                    lake_uri = str(Path(folder) / "lake")
                store = open_lake(lake_uri, s3_client=client)
                catalog_uri = sqlite_uri_for(Path(folder) / "catalog.db")
                warehouse = warehouse_for_lake(lake_uri)
                began = time.perf_counter()
                cdc_keys = [landed_key(START + timedelta(minutes=i)) for i in range(existing)]
                fill(store, cdc_keys, client, bucket)
                fill(store, [load_file_key(n) for n in range(1, load_files + 1)], client, bucket)
                if quarantined_files:
                    catalog = open_catalog(catalog_uri, warehouse)
                    quarantine(store, catalog, cdc_keys[:quarantined_files])
                fill_seconds = time.perf_counter() - began
                setup = measure(store, catalog_uri, warehouse, existing, load_files, new)
                fill(store, setup["new_keys"], client, bucket)
                times, listed, requests, waits, reads = [], [], [], [], []
                for _ in range(repeat):
                    if counter:
                        counter.requests, counter.waiting = 0, 0.0
                    began = time.perf_counter()
                    scan = setup["tick"](setup["cursor"])
                    times.append(time.perf_counter() - began)
                    assert len(scan.files) == new, (len(scan.files), new)
                    listed.append(scan.listed)
                    requests.append(counter.requests if counter else 0)
                    waits.append(counter.waiting if counter else 0.0)
                    reads.append(setup["timings"]["quarantine"])
                rows.append(
                    (
                        existing,
                        new,
                        statistics.median(times),
                        listed[0],
                        requests[0],
                        statistics.median(waits),
                        statistics.median(reads),
                    )
                )
                print(
                    f"  {existing:>8,} existing: tick {statistics.median(times) * 1000:8.1f} ms "
                    f"(filled in {fill_seconds:.0f} s)",
                    file=sys.stderr,
                )
        base = rows[0][2]
        print(
            f"\nDMS landing sensor, one tick, store={store_kind}, median of {repeat}; "
            f"{load_files} full-load files, {quarantined_files} quarantined CDC files"
        )
        if store_kind == "s3":
            print(
                f"{'existing files':>15}{'new files':>11}{'tick ms':>10}{'keys read':>11}"
                f"{'LIST reqs':>11}{'in LIST ms':>12}{'quarantine ms':>15}{'sensor ms':>11}"
                f"{'vs first':>10}"
            )
            base_own = rows[0][2] - rows[0][5]
            for existing, new_files, seconds, keys, reqs, wait, read in rows:
                own = seconds - wait
                print(
                    f"{existing:>15,}{new_files:>11,}{seconds * 1000:>10.1f}{keys:>11,}{reqs:>11}"
                    f"{wait * 1000:>12.1f}{read * 1000:>15.1f}{own * 1000:>11.1f}"
                    f"{own / base_own:>9.2f}x"
                )
            print(
                "(vs first: the sensor's own time, without waiting for the server; moto's\n"
                " ListObjectsV2 sorts the whole bucket on every request, S3/MinIO do not)"
            )
        else:
            print(
                f"{'existing files':>15}{'new files':>11}{'tick ms':>10}{'keys read':>11}"
                f"{'quarantine ms':>15}{'vs first':>10}"
            )
            for existing, new_files, seconds, keys, _, _, read in rows:
                print(
                    f"{existing:>15,}{new_files:>11,}{seconds * 1000:>10.1f}{keys:>11,}"
                    f"{read * 1000:>15.1f}{seconds / base:>9.2f}x"
                )
    finally:
        if moto is not None:
            moto.terminate()
            try:
                moto.wait(timeout=60)  # a server holding 100,000 keys takes a while
            except subprocess.TimeoutExpired:
                moto.kill()
                moto.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=["local", "s3"], default="local")
    parser.add_argument(
        "--existing", default="1000,10000,100000", help="comma-separated bucket sizes"
    )
    parser.add_argument("--new", type=int, default=100, help="files landing before the timed tick")
    parser.add_argument(
        "--load-files", type=int, default=100, help="full-load files in the table folder"
    )
    parser.add_argument(
        "--quarantined", type=int, default=3, help="old CDC files waiting in quarantine"
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--endpoint", help="S3 endpoint (default: start a moto server)")
    args = parser.parse_args()
    sizes = [int(text.replace("_", "")) for text in args.existing.split(",")]
    run(args.store, sizes, args.new, args.load_files, args.quarantined, args.repeat, args.endpoint)


if __name__ == "__main__":
    main()
