"""The lake store: the same behaviour on a local folder and on a real S3 API.

Tests taking ``lake_uri`` run twice, ``[local]`` and ``[s3]`` (moto's server on
127.0.0.1, reached through ``AWS_ENDPOINT_URL`` exactly as production reaches
MinIO). Failure tests talk to a closed loopback port or to a moto server that
enforces IAM authentication.
"""

from __future__ import annotations

import random
import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from lakehouse_assets.lake import (
    LakeError,
    LakeStore,
    LocalLakeStore,
    ObjectInfo,
    S3LakeStore,
    open_lake,
)
from lakehouse_assets.lake import store as store_module

# Keys chosen so that S3's order (UTF-8 bytes) differs from "natural" or
# folder-first orders: '-' < '.' < '/' < '0' < 'B' < 'a' < 'z' < 'é'.
ORDERED_KEYS = [
    "x/B",
    "x/a-1",
    "x/a.1",
    "x/a/1",
    "x/a/2 with space",
    "x/a0",
    "x/b",
    "x/z",
    "x/é",
]
OTHER_KEYS = ["xa", "y/a"]  # outside the "x/" folder; "xa" shares the bare prefix "x"


def _payload(key: str) -> bytes:
    return f"{key}|".encode() * (len(key) % 5 + 1)  # distinct sizes per key


def _keys(infos: Iterator[ObjectInfo]) -> list[str]:
    return [info.key for info in infos]


@pytest.fixture
def lake(lake_uri: str) -> LakeStore:
    return open_lake(lake_uri)


@pytest.fixture
def filled_lake(lake: LakeStore) -> tuple[LakeStore, datetime, datetime]:
    """The lake holding ORDERED_KEYS + OTHER_KEYS, written in a shuffled order."""
    keys = ORDERED_KEYS + OTHER_KEYS
    random.Random(7).shuffle(keys)
    before = datetime.now(UTC)
    for key in keys:
        lake.put(key, _payload(key))
    after = datetime.now(UTC)
    return lake, before, after


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that is bound but not listening: connecting is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _client(endpoint: str, key_id: str = "testing", secret: str = "testing") -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(
            connect_timeout=1, read_timeout=2, retries={"mode": "standard", "max_attempts": 1}
        ),
    )


# --------------------------------------------------------------------------- fixtures themselves


def test_lake_uri_ids_and_shapes(request: pytest.FixtureRequest, lake_uri: str) -> None:
    store_kind = request.node.callspec.params["lake_uri"]
    assert request.node.name.endswith(f"[{store_kind}]")
    if store_kind == "s3":
        assert re.fullmatch(r"s3://[a-z0-9-]+/", lake_uri)
        assert isinstance(open_lake(lake_uri), S3LakeStore)
    else:
        assert Path(lake_uri).is_absolute() and Path(lake_uri).name == "lake"
        assert isinstance(open_lake(lake_uri), LocalLakeStore)


def test_s3_lake_uri_is_reachable_with_a_bare_boto3_client(
    s3_lake_uri: str, s3_server: str, s3_client: Any
) -> None:
    bucket = s3_lake_uri.removeprefix("s3://").rstrip("/")
    bare = boto3.client("s3")  # no arguments: AWS_ENDPOINT_URL and dummy creds from the env
    assert bare.meta.endpoint_url == s3_server
    assert s3_server.startswith("http://127.0.0.1:")
    bare.put_object(Bucket=bucket, Key="hello.txt", Body=b"hi")
    assert s3_client.get_object(Bucket=bucket, Key="hello.txt")["Body"].read() == b"hi"


def test_each_s3_lake_gets_a_fresh_empty_bucket(s3_lake_uri: str, s3_client: Any) -> None:
    bucket = s3_lake_uri.removeprefix("s3://").rstrip("/")
    assert s3_client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


# --------------------------------------------------------------------------- put / get


@pytest.mark.parametrize(
    "key, data",
    [
        pytest.param("bronze/dms/public/core_order/LOAD00000001.csv", b"1,2,3\n", id="plain"),
        pytest.param("bronze/empty.csv", b"", id="empty"),
        pytest.param("bronze/all bytes.bin", bytes(range(256)) * 4, id="binary"),
        pytest.param("bronze/dms/ünïcødé tâble/naïve file €.csv", "é,€\n".encode(), id="unicode"),
    ],
)
def test_put_get_round_trip(lake: LakeStore, key: str, data: bytes) -> None:
    lake.put(key, data)
    assert lake.get(key) == data
    [info] = list(lake.list_objects(key))
    assert (info.key, info.size) == (key, len(data))


def test_put_overwrites(lake: LakeStore) -> None:
    lake.put("a/b.csv", b"first version")
    lake.put("a/b.csv", b"2nd")
    assert lake.get("a/b.csv") == b"2nd"
    assert [(i.key, i.size) for i in lake.list_objects("a/")] == [("a/b.csv", 3)]


def test_missing_key_raises_lake_error_naming_the_key(lake: LakeStore) -> None:
    lake.put("present/file.csv", b"x")
    with pytest.raises(LakeError, match=re.escape("present/missing.csv")):
        lake.get("present/missing.csv")
    with pytest.raises(LakeError, match=re.escape("'present'")):  # a "folder" is no object
        lake.get("present")
    if isinstance(lake, S3LakeStore):
        with pytest.raises(LakeError, match=re.escape(lake.bucket)):
            lake.get("present/missing.csv")


def test_lake_under_a_prefix_sees_relative_keys(lake_uri: str) -> None:
    outer = open_lake(lake_uri)
    inner = open_lake(lake_uri.rstrip("/") + "/nested/root")
    inner.put("k/one.csv", b"1")
    outer.put("k/two.csv", b"2")
    assert _keys(outer.list_objects("")) == ["k/two.csv", "nested/root/k/one.csv"]
    assert _keys(inner.list_objects("")) == ["k/one.csv"]
    assert inner.get("k/one.csv") == outer.get("nested/root/k/one.csv") == b"1"
    inner.put("k/three.csv", b"3")
    assert _keys(inner.list_objects("k/", start_after="k/one.csv")) == ["k/three.csv"]
    assert _keys(inner.list_objects("", start_after="k/three.csv")) == []


# --------------------------------------------------------------------------- delete


def test_delete_removes_only_that_object(lake: LakeStore) -> None:
    for key in ("d/a.avro", "d/a.avro.bak", "d/a", "d/sub/a.avro"):
        lake.put(key, b"x")
    lake.delete("d/a.avro")
    assert _keys(lake.list_objects("d/")) == ["d/a", "d/a.avro.bak", "d/sub/a.avro"]
    with pytest.raises(LakeError, match=re.escape("d/a.avro")):
        lake.get("d/a.avro")
    lake.delete("d/sub/a.avro")
    assert _keys(lake.list_objects("d/")) == ["d/a", "d/a.avro.bak"]


def test_delete_many_removes_those_objects_in_batches(lake: LakeStore, monkeypatch) -> None:
    monkeypatch.setattr(store_module, "_DELETE_BATCH", 10)  # S3's is 1,000: fewer puts here
    doomed = [f"m/{n:04d}.parquet" for n in range(25)]  # three S3 requests
    for key in [*doomed, "m/kept.parquet"]:
        lake.put(key, b"x")
    lake.delete_many(iter([*doomed, "m/never-written.parquet"]))
    assert [info.key for info in lake.list_objects("m/")] == ["m/kept.parquet"]


def test_delete_of_a_missing_key_succeeds(lake: LakeStore) -> None:
    """As S3's DeleteObject: a delete repeated after a crash or lost to a race is fine."""
    lake.put("d/kept.csv", b"x")
    lake.delete("d/never-written.csv")
    lake.delete("no/such/folder/file.csv")
    lake.put("d/twice.csv", b"x")
    lake.delete("d/twice.csv")
    lake.delete("d/twice.csv")
    assert _keys(lake.list_objects("d/")) == ["d/kept.csv"]


def test_delete_under_a_prefix_is_relative_to_it(lake_uri: str) -> None:
    outer = open_lake(lake_uri)
    inner = open_lake(lake_uri.rstrip("/") + "/nested/root")
    inner.put("k/one.csv", b"1")
    outer.put("k/one.csv", b"outer")
    inner.delete("k/one.csv")
    assert _keys(outer.list_objects("")) == ["k/one.csv"]
    assert outer.get("k/one.csv") == b"outer"


def test_local_delete_refuses_folders_and_keys_a_folder_cannot_hold(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    lake.put("d/sub/a.csv", b"x")
    (tmp_path / "escape.csv").write_bytes(b"outside the lake")
    with pytest.raises(LakeError, match="is a folder"):
        lake.delete("d/sub")
    with pytest.raises(LakeError, match="cannot be stored"):
        lake.delete("d/../../escape.csv")
    assert (tmp_path / "escape.csv").exists()
    assert _keys(lake.list_objects("")) == ["d/sub/a.csv"]


def test_delete_on_an_unreachable_endpoint_raises_lake_error(closed_port: int) -> None:
    endpoint = f"http://127.0.0.1:{closed_port}"
    lake = open_lake("s3://unreachable-lake/root", s3_client=_client(endpoint))
    started = time.monotonic()
    with pytest.raises(LakeError) as failure:
        lake.delete("warehouse/x.parquet")
    assert time.monotonic() - started < 5
    message = str(failure.value)
    assert endpoint in message and "'unreachable-lake'" in message and "delete" in message


# --------------------------------------------------------------------------- list_objects


def test_list_objects_in_s3_key_order_with_sizes_and_utc_times(filled_lake: Any) -> None:
    lake, before, after = filled_lake
    assert ORDERED_KEYS == sorted(ORDERED_KEYS, key=str.encode)  # the expectation itself
    infos = list(lake.list_objects("x/"))
    assert [i.key for i in infos] == ORDERED_KEYS
    assert [i.size for i in infos] == [len(_payload(k)) for k in ORDERED_KEYS]
    for info in infos:
        assert info.last_modified.utcoffset() == timedelta(0), info
        # S3 reports whole seconds: allow for truncation and small clock offsets.
        assert before - timedelta(seconds=2) <= info.last_modified <= after + timedelta(seconds=2)


@pytest.mark.parametrize(
    "prefix, expected",
    [
        pytest.param(
            "x/a", ["x/a-1", "x/a.1", "x/a/1", "x/a/2 with space", "x/a0"], id="partial-name"
        ),
        pytest.param("x/a/", ["x/a/1", "x/a/2 with space"], id="folder"),
        pytest.param("x/a/2", ["x/a/2 with space"], id="partial-name-in-folder"),
        pytest.param("x", ORDERED_KEYS + ["xa"], id="bare-prefix"),
        pytest.param("", sorted(ORDERED_KEYS + OTHER_KEYS, key=str.encode), id="everything"),
        pytest.param("y/", ["y/a"], id="other-folder"),
        pytest.param("nope/", [], id="missing-folder"),
        pytest.param("x/q", [], id="missing-name"),
        pytest.param("x/a/1/", [], id="file-as-folder"),
    ],
)
def test_list_objects_filters_by_prefix(filled_lake: Any, prefix: str, expected: list[str]) -> None:
    lake, _, _ = filled_lake
    assert _keys(lake.list_objects(prefix)) == expected


@pytest.mark.parametrize(
    "start_after, expected",
    [
        pytest.param("x/a.1", ORDERED_KEYS[3:], id="existing-key"),
        pytest.param("x/a/", ORDERED_KEYS[3:], id="between-keys"),
        pytest.param("x/a/2 with space", ORDERED_KEYS[5:], id="key-in-folder"),
        pytest.param("a", ORDERED_KEYS, id="before-prefix"),
        pytest.param("x/é", [], id="last-key"),
        pytest.param("y", [], id="after-prefix"),
    ],
)
def test_list_objects_start_after(filled_lake: Any, start_after: str, expected: list[str]) -> None:
    lake, _, _ = filled_lake
    assert _keys(lake.list_objects("x/", start_after=start_after)) == expected


def test_list_objects_of_an_empty_lake(lake: LakeStore) -> None:
    assert list(lake.list_objects("")) == []
    assert list(lake.list_objects("bronze/", start_after="bronze/a")) == []


def test_start_after_across_pages(lake: LakeStore) -> None:
    """More than 1000 objects: S3 answers in pages; start_after must hold across them."""
    count = 1100
    keys = [f"many/{i:03x}/{i % 7}.csv" for i in range(count)]  # hex: order ≠ creation order
    expected = sorted(keys, key=str.encode)
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda k: lake.put(k, k.encode()), keys))
    lake.put("manz.csv", b"outside the folder")  # sorts after every many/ key

    pages = _count_list_calls(lake)
    listed = list(lake.list_objects("many/"))
    assert [i.key for i in listed] == expected
    assert all(i.size == len(i.key) for i in listed)
    if pages is not None:
        assert pages() >= 2, "the listing did not page; the test proves nothing"

    start_after = expected[50]
    pages = _count_list_calls(lake)
    rest = _keys(lake.list_objects("many/", start_after=start_after))
    assert rest == expected[51:]
    assert len(rest) > 1000
    if pages is not None:
        assert pages() >= 2
    assert _keys(lake.list_objects("many/", start_after=expected[-2])) == [expected[-1]]


def _count_list_calls(lake: LakeStore) -> Any:
    """For an S3 store: a function returning how many ListObjectsV2 calls were made."""
    if not isinstance(lake, S3LakeStore):
        return None
    calls = []
    lake.client.meta.events.register(
        "after-call.s3.ListObjectsV2", lambda **kwargs: calls.append(1)
    )
    return lambda: len(calls)


# --------------------------------------------------------------------------- last_modified


def test_put_last_modified(lake: LakeStore) -> None:
    stamp = datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    before = datetime.now(UTC)
    lake.put("lm/aware.csv", b"a", last_modified=stamp)
    lake.put("lm/naive.csv", b"n", last_modified=stamp.replace(tzinfo=None))
    lake.put(
        "lm/other-zone.csv", b"z", last_modified=stamp.astimezone(timezone(timedelta(hours=-5)))
    )
    infos = {i.key: i.last_modified for i in lake.list_objects("lm/")}
    assert set(infos) == {"lm/aware.csv", "lm/naive.csv", "lm/other-zone.csv"}
    if isinstance(lake, LocalLakeStore):
        # the local store keeps it (to the microsecond); naive means UTC
        assert infos == dict.fromkeys(infos, stamp)
    else:
        # S3 always stamps the upload time
        for value in infos.values():
            assert value >= before - timedelta(seconds=2)


# --------------------------------------------------------------------------- local specifics


def test_local_listing_ignores_writes_in_progress(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    lake.put("bronze/a.csv", b"done")
    # what a crashed (or still running) writer leaves behind
    (tmp_path / "lake" / "bronze" / ".b.csv.0123abcd.partial").write_bytes(b"half")
    assert _keys(lake.list_objects("bronze/")) == ["bronze/a.csv"]
    assert [p.name for p in (tmp_path / "lake" / "bronze").iterdir()] != ["a.csv"]  # partial exists


@pytest.mark.parametrize(
    "key", ["../escape.csv", "a/../../escape.csv", "a//b.csv", "a/./b.csv", ""]
)
def test_local_store_rejects_keys_a_folder_cannot_hold(tmp_path: Path, key: str) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    with pytest.raises(LakeError, match="cannot be stored"):
        lake.put(key, b"x")
    assert not (tmp_path / "escape.csv").exists()


# --------------------------------------------------------------------------- failures


def test_unreachable_endpoint_raises_quickly_naming_endpoint_and_bucket(closed_port: int) -> None:
    endpoint = f"http://127.0.0.1:{closed_port}"
    lake = open_lake("s3://unreachable-lake/root", s3_client=_client(endpoint))
    actions = {
        "list": lambda: list(lake.list_objects("bronze/")),
        "get": lambda: lake.get("bronze/x.csv"),
        "put": lambda: lake.put("bronze/x.csv", b"x"),
    }
    for name, action in actions.items():
        started = time.monotonic()
        with pytest.raises(LakeError) as failure:
            action()
        assert time.monotonic() - started < 5, name
        message = str(failure.value)
        assert endpoint in message and "'unreachable-lake'" in message, message


def test_unreachable_endpoint_from_environment(
    closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default client (no s3_client) follows AWS_ENDPOINT_URL and AWS_MAX_ATTEMPTS."""
    endpoint = f"http://127.0.0.1:{closed_port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    lake = open_lake("s3://env-lake")
    started = time.monotonic()
    with pytest.raises(LakeError) as failure:
        lake.get("k.csv")
    assert time.monotonic() - started < 5
    assert endpoint in str(failure.value) and "'env-lake'" in str(failure.value)


def test_malformed_endpoint_raises_lake_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "not a url")
    with pytest.raises(LakeError, match=r"'some-lake'.*not a url"):
        open_lake("s3://some-lake")


@pytest.mark.parametrize(
    "credentials, error_code",
    [
        pytest.param(("AKIAUNKNOWNKEY000000", "whatever"), "InvalidAccessKeyId", id="unknown-key"),
        pytest.param((None, "wrong-secret"), "SignatureDoesNotMatch", id="wrong-secret"),
    ],
)
def test_bad_credentials_raise_lake_error(
    s3_auth_server: Any, credentials: tuple[str | None, str], error_code: str
) -> None:
    key_id, secret = credentials
    client = _client(s3_auth_server.endpoint, key_id or s3_auth_server.access_key_id, secret)
    lake = open_lake(f"s3://{s3_auth_server.bucket}", s3_client=client)
    for action in (lambda: list(lake.list_objects("")), lambda: lake.put("k.csv", b"x")):
        started = time.monotonic()
        with pytest.raises(LakeError) as failure:
            action()
        assert time.monotonic() - started < 5
        message = str(failure.value)
        assert s3_auth_server.endpoint in message, message
        assert f"'{s3_auth_server.bucket}'" in message, message
        assert error_code in message, message


def test_credentials_from_environment(s3_auth_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default client takes endpoint and credentials from the environment at open time."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_auth_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_auth_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_auth_server.secret_access_key)
    good = open_lake(f"s3://{s3_auth_server.bucket}/env")
    good.put("k.csv", b"ok")
    assert good.get("k.csv") == b"ok"

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    bad = open_lake(f"s3://{s3_auth_server.bucket}/env")
    with pytest.raises(LakeError, match="SignatureDoesNotMatch") as failure:
        bad.get("k.csv")
    assert s3_auth_server.endpoint in str(failure.value)
    assert f"'{s3_auth_server.bucket}'" in str(failure.value)


def test_good_credentials_work_on_the_auth_server(s3_auth_server: Any) -> None:
    """The control for the two tests above: only the credentials make them fail."""
    client = _client(
        s3_auth_server.endpoint, s3_auth_server.access_key_id, s3_auth_server.secret_access_key
    )
    lake = open_lake(f"s3://{s3_auth_server.bucket}/good", s3_client=client)
    lake.put("k.csv", b"ok")
    assert lake.get("k.csv") == b"ok"
    assert _keys(lake.list_objects("")) == ["k.csv"]


# --------------------------------------------------------------------------- open_lake


@pytest.mark.parametrize("uri", ["s3://", "s3:///", "s3:///data-lake/bronze", "s3a://"])
def test_open_lake_rejects_s3_without_bucket(uri: str) -> None:
    with pytest.raises(LakeError, match="needs a bucket"):
        open_lake(uri)


@pytest.mark.parametrize(
    "uri", ["gs://data-lake", "ftp://host/lake", "https://example.com/lake", "abfs://c@a/x"]
)
def test_open_lake_rejects_unknown_schemes(uri: str) -> None:
    scheme = uri.split("://")[0]
    with pytest.raises(LakeError, match=f"unsupported lake URI scheme '{scheme}'"):
        open_lake(uri)


def test_open_lake_accepts_paths_file_and_s3_uris(tmp_path: Path, s3_client: Any) -> None:
    local = open_lake(str(tmp_path / "a"))
    assert isinstance(local, LocalLakeStore) and local.root == (tmp_path / "a").resolve()
    file_uri = open_lake((tmp_path / "b").as_uri())
    assert isinstance(file_uri, LocalLakeStore) and file_uri.root == (tmp_path / "b").resolve()
    s3 = open_lake("s3://data-lake/warehouse/", s3_client=s3_client)
    assert isinstance(s3, S3LakeStore)
    assert (s3.bucket, s3.prefix, s3.uri) == ("data-lake", "warehouse/", "s3://data-lake/warehouse")
    s3a = open_lake("s3a://data-lake", s3_client=s3_client)
    assert isinstance(s3a, S3LakeStore) and (s3a.bucket, s3a.prefix) == ("data-lake", "")
