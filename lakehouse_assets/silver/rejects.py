"""``silver.<table>__rejects``: rows that failed typing, replaced per source file.

Both engines hand their rejects here as Arrow (a run's rejects are few), so one rule
decides what a rerun does: the rejects of the files a batch read replace every earlier
reject of those files, in one commit. Rerunning the same files leaves the same rejects.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import In

from lakehouse_assets.contracts import TableContract
from lakehouse_assets.dms import SOURCE_FILE
from lakehouse_assets.silver.result import with_commit_retries
from lakehouse_assets.silver.tables import load_or_create_rejects_table, rejects_identifier


def replace_rejects(
    catalog: Catalog, contract: TableContract, files: Sequence[str], rejects: pa.Table
) -> None:
    """The rejects of ``files`` become ``rejects`` (rows with ``_reason``)."""
    if not files or (
        rejects.num_rows == 0 and not catalog.table_exists(rejects_identifier(contract))
    ):
        return

    def replace() -> None:
        table = load_or_create_rejects_table(catalog, contract)
        arrow_schema = table.schema().as_arrow()
        with table.transaction() as transaction:
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", message="Delete operation did not match any records"
                )
                transaction.delete(In(SOURCE_FILE, list(files)))
            if rejects.num_rows:
                transaction.append(rejects.select(arrow_schema.names).cast(arrow_schema))

    with_commit_retries(replace)
