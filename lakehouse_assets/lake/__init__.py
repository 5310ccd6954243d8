"""The data lake root: a local folder or an S3/MinIO bucket, behind one interface."""

from lakehouse_assets.lake.store import (
    LakeError,
    LakeStore,
    LocalLakeStore,
    ObjectInfo,
    S3LakeStore,
    open_lake,
)

__all__ = ["LakeError", "LakeStore", "LocalLakeStore", "ObjectInfo", "S3LakeStore", "open_lake"]
