"""DMS landing sensor: does a tick cost the same however many objects the sensor already knows?

The tick timed is the landing sensor's body (``sensors/landing/sensor.py`` calls the same
three functions): it reads the tables' quarantines from the Iceberg catalog
(``read_quarantines``, the catalog opened as the resource opens it every tick), lists what
landed since the saved cursor (``scan_landing``) and plans the bronze materializations and
silver runs (``plan_requests``). Each case is a fresh lake: --existing CDC files of one
table already taken (one file a minute, so a day folder holds 1,440, as DMS writes them),
``load`` full-load files taken (the load stream is listed whole every tick, each file known
with its version, so that a reload under the same names is seen) and ``quarantined`` of the
oldest CDC files in ``silver.<table>__quarantine`` (each looked up by its key every tick, so
that a fixed file is seen, far outside the lookback window). Then --new files land and the
next tick is evaluated --repeat times from the same cursor; the median is reported, with
the keys the tick read (the CDC stream re-reads the known keys of its lookback window), on
S3 the ``ListObjectsV2`` requests it sent and the time it waited for them, and the time spent
reading the quarantines. Where a case has full-load files, a reload follows: every LOAD file
is rewritten under its key and the tick that takes them as new versions is timed the same
way.

Two sweeps, each against a baseline measured in the same run:

1. known CDC objects: the cases of --existing (default 1,000 / 10,000 / 100,000) with
   --load-files (default 100) and --quarantined (default 3); "vs first" is the tick's time
   over the smallest case's: a flat cost is a ratio near 1;
2. the rescan of known keys: at the smallest --existing, the cases of --load-sweep (default
   0 / 100 / 1,000 LOAD files) and --quarantine-sweep (default 10 / 100 quarantined files);
   "vs none" is the tick's time over the case with neither. These costs grow with the known
   LOAD and quarantined keys by design: a table has tens to hundreds of LOAD files and few
   quarantined ones.

    python benchmarks/sensor_tick.py                 # local folder lake, about a minute
    python benchmarks/sensor_tick.py --quick         # 1,000 / 10,000 known files, 3 repeats
    python benchmarks/sensor_tick.py --store s3      # a moto S3 server on 127.0.0.1

``--store s3`` starts a moto S3 server on 127.0.0.1 (or uses --endpoint). Note that moto
answers every ListObjectsV2 by sorting the whole bucket in Python, so its wall time grows with
the bucket even though the requests and keys per tick stay the same; on AWS S3 or MinIO the
request count is the cost, and the "sensor ms" column (the tick without waiting for the
server) is what to compare.
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
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from lakehouse_assets.bronze.files import BronzeFile
from lakehouse_assets.contracts import load_contracts
from lakehouse_assets.dms import cdc_key, parse_object_key, table_prefix
from lakehouse_assets.lake import LakeStore, open_lake
from lakehouse_assets.lake.catalog import open_catalog, sqlite_uri_for, warehouse_for_lake
from lakehouse_assets.sensors.landing import (
    LandingCursor,
    LandingScan,
    LandingSettings,
    plan_requests,
    read_quarantines,
    scan_landing,
)
from lakehouse_assets.silver.quarantine import quarantined, update_quarantine

CONTRACTS = load_contracts()
TABLE = "core_event"
START = datetime(2024, 1, 1, tzinfo=UTC)
FIRST_DAY = date(2024, 1, 1)
BODY = b"I,x\n"  # the sensor reads no object's content
RELOADED_BODY = b"I,x,reloaded\n"  # another size: a new version of the key


def landed_key(at: datetime) -> str:
    """The key of a CDC file of the benchmark's table that DMS wrote at ``at``."""
    return cdc_key(CONTRACTS.dms, "public", TABLE, at)


def load_file_key(counter: int) -> str:
    """The key of the benchmark table's full-load file number ``counter``."""
    return f"{table_prefix(CONTRACTS.dms, 'public', TABLE)}LOAD{counter:08X}.csv"


def quarantine(store: LakeStore, catalog, keys: list[str]) -> None:
    """Record ``keys`` in the table's quarantine as a silver run does (their size and ETag)."""
    contract = CONTRACTS.table(TABLE)
    bad = []
    for key in keys:
        [info] = [found for found in store.list_objects(key) if found.key == key]
        file = BronzeFile(info=info, key=parse_object_key(key, CONTRACTS.dms))
        bad.append(quarantined(file, f"{key}, line 1: benchmark", datetime.now(UTC)))
    update_quarantine(catalog, contract, {}, bad, [])


class ListCounter:
    """ListObjectsV2 requests sent and the time spent waiting for them."""

    def __init__(self) -> None:
        self.requests = 0
        self.waiting = 0.0
        self._started = 0.0

    def reset(self) -> None:
        self.requests, self.waiting = 0, 0.0

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


@dataclass(frozen=True)
class Case:
    existing: int  # CDC files taken before the timed tick
    load_files: int  # full-load files taken before it
    quarantined: int  # of the oldest CDC files, waiting in the quarantine table


@dataclass(frozen=True)
class TickFigures:
    seconds: float  # median of the repeats
    taken: int  # files the tick took
    rewritten: int  # of them, new versions of known keys
    listed: int  # keys read from listings
    list_requests: int  # ListObjectsV2 requests (S3 only)
    list_wait_s: float  # waiting for them (S3 only)
    quarantine_s: float  # reading the quarantines (median)

    @property
    def own_s(self) -> float:
        """The tick without waiting for the server."""
        return self.seconds - self.list_wait_s


@dataclass(frozen=True)
class CaseFigures:
    case: Case
    new: TickFigures  # the tick that takes --new files
    reload: TickFigures | None  # the tick that takes every LOAD file rewritten (load_files > 0)


class Lake:
    """A fresh lake for one case: a folder, or a bucket of the S3 server; and its catalog."""

    def __init__(self, store_kind: str, folder: Path, endpoint: str | None):
        self.client = None
        self.bucket = None
        self.counter = None
        if store_kind == "s3":
            self.client = s3_client(endpoint)
            self.bucket = f"sensor-bench-{uuid.uuid4().hex[:10]}"
            self.client.create_bucket(Bucket=self.bucket)
            self.counter = ListCounter()
            self.client.meta.events.register("before-call.s3.ListObjectsV2", self.counter.before)
            self.client.meta.events.register("after-call.s3.ListObjectsV2", self.counter.after)
            uri = f"s3://{self.bucket}"
        else:
            uri = str(folder / "lake")
        self.store = open_lake(uri, s3_client=self.client)
        self.catalog_uri = sqlite_uri_for(folder / "catalog.db")
        self.warehouse = warehouse_for_lake(uri)

    def put(self, keys: list[str], body: bytes = BODY) -> None:
        if self.client is None:
            for key in keys:
                self.store.put(key, body)
            return
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(
                pool.map(
                    lambda key: self.client.put_object(Bucket=self.bucket, Key=key, Body=body),
                    keys,
                )
            )

    def catalog(self):
        return open_catalog(self.catalog_uri, self.warehouse)


def sensor_tick(lake: Lake, settings: LandingSettings) -> Callable[[LandingCursor], tuple]:
    """The sensor's body from a cursor: (scan, seconds reading the quarantines)."""
    now = datetime.now(UTC)

    def tick(cursor: LandingCursor) -> tuple[LandingScan, float]:
        began = time.perf_counter()
        # As the sensor does: the catalog resource opens the catalog on every tick.
        waiting = read_quarantines(lake.catalog(), CONTRACTS)
        quarantine_s = time.perf_counter() - began
        scan = scan_landing(
            lake.store,
            CONTRACTS,
            cursor,
            settings,
            first_day=FIRST_DAY,
            last_day=now.date(),
            quarantined=waiting,
        )
        plan_requests(scan, settings)
        return scan, quarantine_s

    return tick


def timed_tick(
    lake: Lake, tick, cursor: LandingCursor, repeat: int
) -> tuple[TickFigures, LandingScan]:
    """``tick`` from ``cursor`` ``repeat`` times: the median, and the last scan."""
    times, quarantine_times, waits, requests = [], [], [], []
    for _ in range(repeat):
        if lake.counter:
            lake.counter.reset()
        began = time.perf_counter()
        scan, quarantine_s = tick(cursor)
        times.append(time.perf_counter() - began)
        quarantine_times.append(quarantine_s)
        waits.append(lake.counter.waiting if lake.counter else 0.0)
        requests.append(lake.counter.requests if lake.counter else 0)
    figures = TickFigures(
        seconds=statistics.median(times),
        taken=len(scan.files),
        rewritten=sum(f.rewritten for f in scan.files),
        listed=scan.listed,
        list_requests=requests[-1],
        list_wait_s=statistics.median(waits),
        quarantine_s=statistics.median(quarantine_times),
    )
    return figures, scan


def measure(store_kind: str, case: Case, new: int, repeat: int, endpoint: str | None):
    """One case on a fresh lake: the timed tick of ``new`` files, then of a reload."""
    with tempfile.TemporaryDirectory(prefix="sensor-bench-") as folder:
        lake = Lake(store_kind, Path(folder), endpoint)
        began = time.perf_counter()
        cdc_keys = [landed_key(START + timedelta(minutes=i)) for i in range(case.existing)]
        load_keys = [load_file_key(n) for n in range(1, case.load_files + 1)]
        lake.put(cdc_keys)
        lake.put(load_keys)
        if case.quarantined:
            quarantine(lake.store, lake.catalog(), cdc_keys[: case.quarantined])
        settings = LandingSettings(max_files_per_tick=case.existing + case.load_files + new + 1)
        tick = sensor_tick(lake, settings)

        cursor, taken = LandingCursor(), 0
        while True:  # the sensor takes what the bucket holds
            scan, _ = tick(cursor)
            cursor, taken = scan.cursor, taken + len(scan.files)
            if not scan.files:
                break
        assert taken == case.existing + case.load_files, (taken, case)
        prepared_s = time.perf_counter() - began

        after = START + timedelta(minutes=case.existing)
        lake.put([landed_key(after + timedelta(seconds=10 * i)) for i in range(new)])
        new_tick, scan = timed_tick(lake, tick, cursor, repeat)
        assert new_tick.taken == new, (new_tick, case)

        reload_tick = None
        if case.load_files:
            lake.put(load_keys, RELOADED_BODY)  # DMS reloads the table under the same names
            reload_tick, _ = timed_tick(lake, tick, scan.cursor, repeat)
            assert reload_tick.taken == reload_tick.rewritten == case.load_files, reload_tick
    print(
        f"  {case.existing:>8,} CDC, {case.load_files:>5,} LOAD, {case.quarantined:>4} "
        f"quarantined: tick {new_tick.seconds * 1000:8.1f} ms (prepared in {prepared_s:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    return CaseFigures(case, new_tick, reload_tick)


def print_sweep(title: str, rows: list[CaseFigures], baseline: CaseFigures, s3: bool, ratio: str):
    print(f"\n{title}")
    header = f"{'CDC known':>10}{'LOAD':>7}{'quar.':>6}{'new':>5}{'tick ms':>9}{'keys read':>10}"
    if s3:
        header += f"{'LIST reqs':>10}{'in LIST ms':>11}{'sensor ms':>10}"
    header += f"{'quarantine ms':>14}{ratio:>9}{'reload ms':>11}{'rewritten':>10}"
    print(header)
    base = baseline.new.own_s
    for row in rows:
        case, tick = row.case, row.new
        line = (
            f"{case.existing:>10,}{case.load_files:>7,}{case.quarantined:>6}{tick.taken:>5}"
            f"{tick.seconds * 1000:>9.1f}{tick.listed:>10,}"
        )
        if s3:
            line += (
                f"{tick.list_requests:>10}{tick.list_wait_s * 1000:>11.1f}"
                f"{tick.own_s * 1000:>10.1f}"
            )
        line += f"{tick.quarantine_s * 1000:>14.1f}{tick.own_s / base:>8.2f}x"
        if row.reload is not None:
            line += f"{row.reload.seconds * 1000:>11.1f}{row.reload.rewritten:>10,}"
        print(line)


def run(args: argparse.Namespace) -> None:
    moto, endpoint = None, args.endpoint
    if args.store == "s3" and endpoint is None:
        moto, endpoint = start_moto()
    if endpoint is not None:
        # pyiceberg's S3 file IO (the quarantine table) reads the standard variables.
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = args.store == "s3"
    try:

        def measured(case: Case) -> CaseFigures:
            return measure(args.store, case, args.new, args.repeat, endpoint)

        known = [measured(Case(n, args.load_files, args.quarantined)) for n in args.existing]
        smallest = min(args.existing)
        rescan_cases = [Case(smallest, 0, 0)]
        rescan_cases += [Case(smallest, n, 0) for n in args.load_sweep if n]
        rescan_cases += [Case(smallest, 0, n) for n in args.quarantine_sweep if n]
        rescan = [measured(case) for case in rescan_cases]
    finally:
        if moto is not None:
            moto.terminate()
            try:
                moto.wait(timeout=60)  # a server holding 100,000 keys takes a while
            except subprocess.TimeoutExpired:
                moto.kill()
                moto.wait(timeout=10)

    print(
        f"\nDMS landing sensor, one tick (quarantines read, listing, plan), store={args.store}, "
        f"median of {args.repeat}; {args.new} new CDC files land before the timed tick; a "
        f"reload rewrites every LOAD file"
        + ("; ratios of the sensor's own time (without waiting for LIST)" if s3 else "")
    )
    print_sweep(
        "1. as the known CDC objects grow (vs first: against the smallest case)",
        known,
        known[0],
        s3,
        "vs first",
    )
    print_sweep(
        f"2. the rescan of known keys, at {smallest:,} CDC files (vs none: against the case "
        f"with no LOAD and no quarantined file)",
        rescan,
        rescan[0],
        s3,
        "vs none",
    )
    if s3:
        print("(moto's ListObjectsV2 sorts the whole bucket on every request; S3/MinIO do not)")


def sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=["local", "s3"], default="local")
    parser.add_argument(
        "--existing", type=sizes, help="CDC files known (default 1000,10000,100000)"
    )
    parser.add_argument("--new", type=int, default=100, help="files landing before the timed tick")
    parser.add_argument("--load-files", type=int, default=100, help="LOAD files in sweep 1")
    parser.add_argument("--quarantined", type=int, default=3, help="quarantined files in sweep 1")
    parser.add_argument(
        "--load-sweep", type=sizes, default=sizes("0,100,1000"), help="LOAD files in sweep 2"
    )
    parser.add_argument(
        "--quarantine-sweep", type=sizes, default=sizes("10,100"), help="quarantined in sweep 2"
    )
    parser.add_argument("--repeat", type=int, help="ticks per case, the median kept (default 5)")
    parser.add_argument("--quick", action="store_true", help="1,000 / 10,000 known, 3 repeats")
    parser.add_argument("--endpoint", help="S3 endpoint (default: start a moto server)")
    args = parser.parse_args()
    # update_quarantine's delete of earlier rows finds none in a fresh quarantine table.
    warnings.filterwarnings("ignore", "Delete operation did not match any records")
    args.existing = args.existing or sizes("1000,10000" if args.quick else "1000,10000,100000")
    args.repeat = args.repeat or (3 if args.quick else 5)
    run(args)


if __name__ == "__main__":
    main()
