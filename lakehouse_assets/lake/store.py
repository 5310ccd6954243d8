"""The data lake: one root (a local folder or ``s3://bucket[/prefix]``) holding every layer.

Keys are ``/``-separated paths relative to the root, the same on both stores, so
the rest of the project never knows which one it talks to. S3 (and MinIO) use
boto3 with the standard ``AWS_*`` settings, ``AWS_ENDPOINT_URL`` included.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


class LakeError(RuntimeError):
    """The lake cannot be reached or a key cannot be read; names endpoint and bucket."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime  # UTC


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


class LocalLakeStore(LakeStore):
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def list_objects(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        # Walk only the folder the prefix names, in S3's key order.
        folder, _, _ = prefix.rpartition("/")
        base = self._path(folder) if folder else self.root
        if not base.is_dir():
            return
        keys: list[tuple[str, Path]] = []
        for directory, _, files in os.walk(base):
            relative = Path(directory).relative_to(self.root).as_posix()
            for name in files:
                key = name if relative == "." else f"{relative}/{name}"
                if key.startswith(prefix) and (start_after is None or key > start_after):
                    keys.append((key, Path(directory, name)))
        for key, path in sorted(keys):
            stat = path.stat()
            yield ObjectInfo(
                key=key,
                size=stat.st_size,
                last_modified=datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc),
            )

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise LakeError(f"{self.uri}: no object {key!r}") from None

    def put(self, key: str, data: bytes, last_modified: datetime | None = None) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_bytes(data)
        os.replace(partial, path)  # readers never see a half-written file
        if last_modified is not None:
            stamp = last_modified.timestamp()
            os.utime(path, (stamp, stamp))


class S3LakeStore(LakeStore):
    def __init__(self, bucket: str, prefix: str = "", client: Any = None):
        import boto3

        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = client or boto3.client("s3")
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
                        last_modified=item["LastModified"].astimezone(timezone.utc),
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
        raise LakeError(f"{uri}: unsupported lake URI scheme {parsed.scheme!r} (use s3:// or a path)")
    return LocalLakeStore(uri)
