"""A local lake lists lazily, like S3's StartAfter: exactly the keys a brute-force
filter-and-sort gives, reading only the folders on the way."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse_assets.lake import LocalLakeStore

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
def test_listing_equals_filtering_and_sorting_every_key(
    tmp_path_factory, keys, prefix, start_after
):
    root = tmp_path_factory.mktemp("lake")
    store = _write(root, keys)
    every_key = sorted(
        path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()
    )
    expected = [
        key
        for key in every_key
        if key.startswith(prefix) and (start_after is None or key > start_after)
    ]
    listed = list(store.list_objects(prefix, start_after=start_after))
    assert [info.key for info in listed] == expected
    assert [info.size for info in listed] == [len(key.encode()) for key in expected]


def test_listing_is_lazy_and_skips_folders_before_start_after(tmp_path: Path, monkeypatch):
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

    monkeypatch.setattr("lakehouse_assets.lake.store.os.scandir", spying_scandir)
    listing = store.list_objects("t/", start_after="t/2024/01/04/f2.csv")
    assert next(listing).key == "t/2024/01/05/f0.csv"
    # Only the folders on the way to the start key and the first one after it were read.
    assert visited == ["t", "t/2024", "t/2024/01", "t/2024/01/04", "t/2024/01/05"]
    assert [info.key for info in listing] == [
        "t/2024/01/05/f1.csv",
        "t/2024/01/05/f2.csv",
        "t/LOAD00000001.csv",
    ]
