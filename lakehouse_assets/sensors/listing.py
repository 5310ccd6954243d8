"""Listing "what comes after this key" at a cost that follows the answer, not the folder.

On S3 ``list_objects_v2`` with ``StartAfter`` already costs one request per
page of *returned* keys. ``LocalLakeStore.list_objects`` instead walks the whole
folder its prefix names and filters afterwards, so a sensor listing a table
folder with StartAfter would pay for the table's whole history on every tick.
``list_after`` walks a local lake lazily, in S3 key order, skipping every
sub-folder whose keys all sort at or before ``start_after``; a caller that
stops iterating stops the walk. It yields exactly what
``LocalLakeStore.list_objects`` yields (the tests compare both).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from lakehouse_assets.lake import LakeStore, LocalLakeStore, ObjectInfo
from lakehouse_assets.lake.store import _EPOCH


def list_after(
    store: LakeStore, prefix: str, start_after: str | None = None
) -> Iterator[ObjectInfo]:
    """Objects under ``prefix`` with keys after ``start_after``, in key order, lazily."""
    if isinstance(store, LocalLakeStore):
        return _local_list_after(store, prefix, start_after)
    return store.list_objects(prefix, start_after=start_after)


def _local_list_after(
    store: LocalLakeStore, prefix: str, start_after: str | None
) -> Iterator[ObjectInfo]:
    folder, _, _ = prefix.rpartition("/")
    if folder:
        parts = folder.split("/")
        if any(part in ("", ".", "..") for part in parts):
            return  # no key can live under such a folder
        base = store.root.joinpath(*parts)
        base_key = folder + "/"
    else:
        base, base_key = store.root, ""
    if not base.is_dir():
        return
    yield from _walk(store, base, base_key, prefix, start_after or "")


def _walk(
    store: LocalLakeStore, directory: Path, dir_key: str, prefix: str, start_after: str
) -> Iterator[ObjectInfo]:
    """Keys under ``directory`` (whose keys start with ``dir_key``) in S3 order.

    A folder's keys all start with ``<name>/``, so sorting files by name and
    folders by ``name + "/"`` orders the entries as their keys order (neither
    sort key can be a prefix of another's keys without being its folder).
    """
    try:
        with os.scandir(directory) as scan:
            entries = []
            for entry in scan:
                if entry.is_dir(follow_symlinks=True):
                    if entry.is_symlink():
                        continue  # os.walk (and so list_objects) does not follow these
                    entries.append((entry.name + "/", entry))
                else:
                    entries.append((entry.name, entry))
    except (FileNotFoundError, NotADirectoryError):
        return  # removed since its parent was read
    entries.sort(key=lambda item: item[0])
    for sort_name, entry in entries:
        key = dir_key + sort_name
        if sort_name.endswith("/"):
            # Every key below starts with ``key``.
            if start_after >= key and not start_after.startswith(key):
                continue  # all of them sort before start_after
            if not (key.startswith(prefix) or prefix.startswith(key)):
                if key > prefix:
                    return  # past the prefix: nothing later can match
                continue
            yield from _walk(store, Path(entry.path), key, prefix, start_after)
            continue
        if LocalLakeStore._is_partial(entry.name):
            continue  # a write in progress (or one that crashed)
        if key <= start_after:
            continue
        if not key.startswith(prefix):
            if key > prefix:
                return
            continue
        try:
            stat = entry.stat(follow_symlinks=True)
        except FileNotFoundError:
            continue  # deleted since the scan, as S3 would no longer list it
        yield ObjectInfo(
            key=key,
            size=stat.st_size,
            last_modified=_EPOCH + timedelta(microseconds=stat.st_mtime_ns // 1000),
        )
