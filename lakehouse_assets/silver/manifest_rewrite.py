"""Rewriting a table's manifests into a few, as a snapshot that changes no data.

Every overwrite adds manifests (the new files, the rewritten survivors, the deleted entries)
and pyiceberg merges manifests only on appends with ``commit.manifest-merge.enabled``, never
on overwrites, so after months of merges a scan plans over thousands of small manifests.
``ManifestRewrite`` packs the current snapshot's data manifests, per partition spec and in
their order, into manifests of up to ``commit.manifest.target-size-bytes`` (8 MB by default)
and commits them as an Iceberg ``replace`` snapshot: the same data files, with their original
snapshot ids and sequence numbers, as ``existing`` entries. Manifests that hold no live file
any more (only deleted entries, which overwrites carry forward) are dropped.

pyiceberg 0.12 has no public way to commit a snapshot with rewritten manifests: this is a
``_SnapshotProducer`` (the base of its own append, overwrite and delete), as its
``_MergeAppendFiles`` and ``_ManifestMergeManager`` do for merged appends. Delete manifests
(merge-on-read writers) are kept as they are: pyiceberg writes data manifests only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from pyiceberg.io import FileIO
from pyiceberg.manifest import ManifestContent, ManifestFile
from pyiceberg.table import TableProperties, Transaction
from pyiceberg.table.snapshots import Operation, Summary
from pyiceberg.table.update.snapshot import _SnapshotProducer
from pyiceberg.typedef import EMPTY_DICT
from pyiceberg.utils.properties import property_as_int

# The summary keys Iceberg's Java RewriteManifests writes, so tools that read them agree.
MANIFESTS_CREATED = "manifests-created"
MANIFESTS_REPLACED = "manifests-replaced"
MANIFESTS_KEPT = "manifests-kept"


def manifest_target_bytes(properties: dict[str, str]) -> int:
    return property_as_int(  # type: ignore[return-value]  # the default is an int
        properties,
        TableProperties.MANIFEST_TARGET_SIZE_BYTES,
        TableProperties.MANIFEST_TARGET_SIZE_BYTES_DEFAULT,
    )


def is_live(manifest: ManifestFile) -> bool:
    """Does the manifest list a file of its snapshot (an added or existing entry)?"""
    return manifest.content != ManifestContent.DATA or bool(
        manifest.has_added_files() or manifest.has_existing_files()
    )


@dataclass(frozen=True)
class ManifestPlan:
    """The current manifests, as the rewrite would leave them."""

    bins: tuple[tuple[ManifestFile, ...], ...]  # data manifests merged into one each (or kept)
    kept: tuple[ManifestFile, ...]  # delete manifests, as they are
    dropped: tuple[ManifestFile, ...]  # data manifests without a live file

    @property
    def created(self) -> int:
        """Manifests written: one per bin of two or more."""
        return sum(1 for group in self.bins if len(group) > 1)

    @property
    def replaced(self) -> int:
        """Manifests no longer listed: merged into a new one, or dropped."""
        return sum(len(group) for group in self.bins if len(group) > 1) + len(self.dropped)

    @property
    def unchanged(self) -> int:
        return sum(1 for group in self.bins if len(group) == 1) + len(self.kept)

    @property
    def worthwhile(self) -> bool:
        return self.replaced > self.created


def plan_manifests(manifests: Sequence[ManifestFile], target_bytes: int) -> ManifestPlan:
    """Pack the live data manifests of each partition spec, in order, into bins of at most
    ``target_bytes`` (a manifest larger than that is a bin of its own)."""
    by_spec: dict[int, list[ManifestFile]] = defaultdict(list)
    kept, dropped = [], []
    for manifest in manifests:
        if manifest.content != ManifestContent.DATA:
            kept.append(manifest)
        elif not is_live(manifest):
            dropped.append(manifest)
        else:
            by_spec[manifest.partition_spec_id].append(manifest)
    bins: list[tuple[ManifestFile, ...]] = []
    for spec_manifests in by_spec.values():
        current: list[ManifestFile] = []
        size = 0
        for manifest in spec_manifests:
            if current and size + manifest.manifest_length > target_bytes:
                bins.append(tuple(current))
                current, size = [], 0
            current.append(manifest)
            size += manifest.manifest_length
        if current:
            bins.append(tuple(current))
    return ManifestPlan(tuple(bins), tuple(kept), tuple(dropped))


class ManifestRewrite(_SnapshotProducer["ManifestRewrite"]):
    """A ``replace`` snapshot holding the branch head's files in the manifests of
    ``plan_manifests``; planned on whatever head the commit is built on."""

    def __init__(
        self,
        transaction: Transaction,
        io: FileIO,
        target_bytes: int,
        snapshot_properties: dict[str, str] = EMPTY_DICT,
    ) -> None:
        super().__init__(
            Operation.REPLACE, transaction, io, snapshot_properties=snapshot_properties
        )
        self._target_bytes = target_bytes
        self.plan = ManifestPlan((), (), ())

    def _deleted_entries(self) -> list:
        return []  # no data file changes

    def _existing_manifests(self) -> list[ManifestFile]:
        head = self._transaction.table_metadata.snapshot_by_name(self._target_branch)
        return list(head.manifests(self._io)) if head is not None else []

    def _process_manifests(self, manifests: list[ManifestFile]) -> list[ManifestFile]:
        self.plan = plan_manifests(manifests, self._target_bytes)
        merged = [group[0] if len(group) == 1 else self._merge(group) for group in self.plan.bins]
        return merged + list(self.plan.kept)

    def _merge(self, group: Sequence[ManifestFile]) -> ManifestFile:
        with self.new_manifest_writer(self.spec(group[0].partition_spec_id)) as writer:
            for manifest in group:
                for entry in self.fetch_manifest_entry(manifest, discard_deleted=True):
                    writer.existing(entry)
        return writer.to_manifest_file()

    def _summary(self, snapshot_properties: dict[str, str] = EMPTY_DICT) -> Summary:
        # pyiceberg's summary builder refuses ``replace``: no file is added or removed, so the
        # parent's totals carry over unchanged.
        metadata = self._transaction.table_metadata
        parent = (
            metadata.snapshot_by_id(self._parent_snapshot_id)
            if self._parent_snapshot_id is not None
            else None
        )
        previous = dict(parent.summary.additional_properties) if parent and parent.summary else {}
        totals = {key: value for key, value in previous.items() if key.startswith("total-")}
        counts = {
            MANIFESTS_CREATED: str(self.plan.created),
            MANIFESTS_REPLACED: str(self.plan.replaced),
            MANIFESTS_KEPT: str(self.plan.unchanged),
        }
        return Summary(Operation.REPLACE, **totals, **counts, **snapshot_properties)
