"""``list_after``: the landing sensor's lazy local listing equals the store's listing."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse_assets.lake import LocalLakeStore, open_lake
from lakehouse_assets.sensors.listing import list_after

# Characters around '/' and the digits, where folder-first walks and S3 order differ.
SEGMENT = st.text(alphabet="-./09:ALZa_", min_size=1, max_size=3).filter(
    lambda s: s not in (".", "..") and "/" not in s
)
KEYS = st.lists(
    st.lists(SEGMENT, min_size=1, max_size=3).map("/".join), min_size=1, max_size=25, unique=True
)
PROBES = st.text(alphabet="-./09:ALZa_", max_size=6)


def _write(root: Path, keys: list[str]) -> LocalLakeStore | None:
    store = LocalLakeStore(root)
    written = []
    for key in keys:
        # A key cannot be both a file and a folder of other keys on disk.
        if any(other.startswith(key + "/") or key.startswith(other + "/") for other in written):
            continue
        store.put(key, key.encode())
        written.append(key)
    return store


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(keys=KEYS, prefix=PROBES, start_after=st.one_of(st.none(), PROBES))
def test_list_after_equals_the_store_listing(tmp_path_factory, keys, prefix, start_after):
    store = _write(tmp_path_factory.mktemp("lake"), keys)
    expected = list(store.list_objects(prefix, start_after=start_after))
    assert list(list_after(store, prefix, start_after)) == expected


def test_list_after_is_lazy_and_skips_folders_before_start_after(tmp_path: Path, monkeypatch):
    store = LocalLakeStore(tmp_path)
    for day, n in itertools.product(range(1, 6), range(3)):
        store.put(f"t/2024/01/0{day}/f{n}.csv", b"x")
    store.put("t/LOAD00000001.csv", b"x")

    visited: list[str] = []
    import os

    real_scandir = os.scandir

    def spying_scandir(path):
        visited.append(Path(path).relative_to(tmp_path).as_posix())
        return real_scandir(path)

    monkeypatch.setattr("lakehouse_assets.sensors.listing.os.scandir", spying_scandir)
    listing = list_after(store, "t/", "t/2024/01/04/f2.csv")
    assert next(listing).key == "t/2024/01/05/f0.csv"
    # Only the folders on the way to the start key and the first one after it were read.
    assert visited == ["t", "t/2024", "t/2024/01", "t/2024/01/04", "t/2024/01/05"]
    assert [info.key for info in listing] == [
        "t/2024/01/05/f1.csv",
        "t/2024/01/05/f2.csv",
        "t/LOAD00000001.csv",
    ]


def test_list_after_on_s3_is_the_store_listing(s3_lake_uri: str):
    store = open_lake(s3_lake_uri)
    for key in ["a/1", "a/2", "a/LOAD1", "b/1"]:
        store.put(key, b"x")
    assert [i.key for i in list_after(store, "a/", "a/1")] == ["a/2", "a/LOAD1"]
