"""The data lake: one root (a local folder or ``s3://bucket[/prefix]``) holding every layer.

Keys are ``/``-separated paths relative to the root, the same on both stores, so
the rest of the project never knows which one it talks to. S3 (and MinIO) use
boto3 with the standard ``AWS_*`` settings, ``AWS_ENDPOINT_URL`` included.
"""

from __future__ import annotations

import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DELETE_BATCH = 1000  # S3 DeleteObjects takes at most 1,000 keys a request


class LakeError(RuntimeError):
    """The lake cannot be reached or a key cannot be read; names endpoint and bucket."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime  # UTC
    # Changes whenever the object is rewritten: S3's ETag; on a local lake the file's
    # modification time and inode (a rewrite by ``put`` replaces the inode even when it
    # keeps the modification time).
    etag: str = ""


class LakeStore(ABC):
    """A key-value view of the lake root."""

    uri: str

    @abstractmethod
    def list_objects(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, in key order, after ``start_after``."""

    @abstractmethod
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def put(self, key: str, data: bytes, last_modified: datetime | None = None) -> None:
        """Write an object. ``last_modified`` is kept where the store allows it
        (a local file's mtime); S3 always stamps the upload time."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object. A key that holds nothing is not an error (S3's DeleteObject
        behaves so), so a delete repeated after a crash or a race succeeds."""

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove objects, as ``delete`` does each (S3: in batches of 1,000 per request)."""
        for key in keys:
            self.delete(key)


class LocalLakeStore(LakeStore):
    # In-flight writes live next to their target as ``.<name>.<token>.partial``.
    _PARTIAL_SUFFIX = ".partial"

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if any(part in ("", ".", "..") for part in parts):
            # S3 would store such a key verbatim; a folder cannot, and ``..`` would
            # escape the root.
            raise LakeError(f"{self.uri}: key {key!r} cannot be stored in a local lake")
        return self.root.joinpath(*parts)

    @classmethod
    def _is_partial(cls, name: str) -> bool:
        return name.startswith(".") and name.endswith(cls._PARTIAL_SUFFIX)

    def list_objects(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        # Walk lazily, in S3's key order (code point order of str is UTF-8 byte
        # order, which is S3's), only the folder the prefix names, skipping
        # sub-folders whose keys all sort before ``start_after``: like S3's
        # StartAfter, the cost follows what is returned, not the folder's history.
        folder, _, _ = prefix.rpartition("/")
        try:
            base = self._path(folder) if folder else self.root
        except LakeError:
            return  # no key can live under such a folder
        if base.is_dir():
            yield from self._walk(base, f"{folder}/" if folder else "", prefix, start_after or "")

    def _walk(
        self, directory: Path, dir_key: str, prefix: str, start_after: str
    ) -> Iterator[ObjectInfo]:
        """Keys under ``directory`` (all starting with ``dir_key``) in key order.

        A folder's keys all start with ``<name>/``, so sorting files by name and
        folders by ``name + "/"`` orders the entries as their keys order.
        """
        try:
            with os.scandir(directory) as scan:
                entries = [
                    (entry.name + "/" if entry.is_dir(follow_symlinks=False) else entry.name, entry)
                    for entry in scan
                    if not (entry.is_symlink() and entry.is_dir())
                ]
        except (FileNotFoundError, NotADirectoryError):
            return  # removed since its parent was read
        for sort_name, entry in sorted(entries, key=lambda item: item[0]):
            key = dir_key + sort_name
            if sort_name.endswith("/"):
                if start_after >= key and not start_after.startswith(key):
                    continue  # every key below sorts before start_after
                if not (key.startswith(prefix) or prefix.startswith(key)):
                    if key > prefix:
                        return  # past the prefix: nothing later can match
                    continue
                yield from self._walk(Path(entry.path), key, prefix, start_after)
                continue
            if self._is_partial(entry.name) or key <= start_after:
                continue  # a write in progress (or one that crashed), or already listed
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
                etag=f"{stat.st_mtime_ns:x}.{stat.st_ino:x}",
            )

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise LakeError(f"{self.uri}: no object {key!r}") from None
        except OSError as exc:
            raise LakeError(f"{self.uri}: cannot read object {key!r}: {exc}") from exc

    def put(self, key: str, data: bytes, last_modified: datetime | None = None) -> None:
        path = self._path(key)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}{self._PARTIAL_SUFFIX}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(data)
            if last_modified is not None:
                if last_modified.tzinfo is None:  # the lake's times are UTC
                    last_modified = last_modified.replace(tzinfo=UTC)
                stamp_ns = (last_modified - _EPOCH) // timedelta(microseconds=1) * 1000
                os.utime(partial, ns=(stamp_ns, stamp_ns))  # os.replace keeps it
            os.replace(partial, path)  # readers never see a half-written file
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise LakeError(f"{self.uri}: cannot write object {key!r}: {exc}") from exc

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            # Empty folders are left in place: a writer may be creating a file in one now.
            path.unlink(missing_ok=True)
        except IsADirectoryError:
            raise LakeError(f"{self.uri}: {key!r} is a folder, not an object") from None
        except OSError as exc:
            raise LakeError(f"{self.uri}: cannot delete object {key!r}: {exc}") from exc


class S3LakeStore(LakeStore):
    def __init__(self, bucket: str, prefix: str = "", client: Any = None):
        import boto3

        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        if client is None:
            try:
                # A session of its own, not boto3's process-wide default one: that
                # caches the first credentials it resolves (later AWS_* changes
                # would be ignored) and is not safe to create clients from in
                # several threads at once. Costs ~70 ms per store.
                client = boto3.session.Session().client("s3")
            except Exception as exc:  # e.g. a malformed AWS_ENDPOINT_URL
                endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get(
                    "AWS_ENDPOINT_URL", "the AWS default"
                )
                raise LakeError(
                    f"S3 client for bucket {bucket!r} at endpoint {endpoint} "
                    f"cannot be created: {exc}"
                ) from exc
        self.client = client
        self.endpoint = self.client.meta.endpoint_url

    def _fail(self, action: str, exc: Exception) -> LakeError:
        return LakeError(
            f"S3 {action} failed on bucket {self.bucket!r} at endpoint {self.endpoint}: {exc}"
        )

    def list_objects(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + prefix}
        if start_after is not None:
            kwargs["StartAfter"] = self.prefix + start_after
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        key=item["Key"][len(self.prefix) :],
                        size=item["Size"],
                        last_modified=item["LastModified"].astimezone(UTC),
                        etag=item.get("ETag", "").strip('"'),
                    )
        except Exception as exc:  # botocore raises many unrelated types
            raise self._fail(f"listing of {prefix!r}", exc) from exc

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
        except Exception as exc:
            raise self._fail(f"read of {key!r}", exc) from exc

    def put(self, key: str, data: bytes, last_modified: datetime | None = None) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)
        except Exception as exc:
            raise self._fail(f"write of {key!r}", exc) from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)
        except Exception as exc:
            raise self._fail(f"delete of {key!r}", exc) from exc

    def delete_many(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            objects = [{"Key": self.prefix + key} for key in batch]
            try:
                answer = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                )
            except Exception as exc:
                raise self._fail(f"delete of {len(batch)} objects from {batch[0]!r}", exc) from exc
            errors = answer.get("Errors", [])
            if errors:
                first = errors[0]
                raise LakeError(
                    f"{self.uri}: {len(errors)} of {len(batch)} deletes failed, e.g. "
                    f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
                )


def open_lake(uri: str, s3_client: Any = None) -> LakeStore:
    """A store for ``uri``: ``s3://bucket[/prefix]`` or a local folder (``file://`` allowed)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("s3", "s3a"):
        if not parsed.netloc:
            raise LakeError(f"{uri}: an S3 lake URI needs a bucket, e.g. s3://data-lake")
        return S3LakeStore(parsed.netloc, parsed.path, client=s3_client)
    if parsed.scheme == "file":
        return LocalLakeStore(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter is a Windows drive
        raise LakeError(
            f"{uri}: unsupported lake URI scheme {parsed.scheme!r} (use s3:// or a path)"
        )
    return LocalLakeStore(uri)
