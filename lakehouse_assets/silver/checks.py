"""Asset checks on every silver table: key unique, required columns set, few rejects, no
bronze file waiting in quarantine."""

from collections.abc import Iterator

import dagster as dg
import pyarrow.compute as pc
from pyiceberg.expressions import EqualTo

from lakehouse_assets.contracts import Contracts, TableContract
from lakehouse_assets.names import QUARANTINE_CHECK, silver_asset_key
from lakehouse_assets.resources import IcebergCatalogResource
from lakehouse_assets.silver.merge import IS_DELETED, key_array
from lakehouse_assets.silver.quarantine import quarantine_identifier, read_quarantine
from lakehouse_assets.silver.tables import rejects_identifier, table_identifier

DEFAULT_MAX_REJECT_RATIO = 0.01


def build_silver_checks(
    contracts: Contracts, max_reject_ratio: float = DEFAULT_MAX_REJECT_RATIO
) -> list[dg.AssetChecksDefinition]:
    return [_checks(contract, max_reject_ratio) for contract in contracts.tables.values()]


def _checks(contract: TableContract, max_reject_ratio: float) -> dg.AssetChecksDefinition:
    asset = silver_asset_key(contract.name)
    required = [c.name for c in contract.columns if not c.nullable]

    @dg.multi_asset_check(
        name=f"silver_{contract.name}_checks",
        specs=[
            dg.AssetCheckSpec(
                "primary_key_unique", asset=asset, description="No two live rows share a key."
            ),
            dg.AssetCheckSpec(
                "required_columns_not_null",
                asset=asset,
                description=f"Live rows have {', '.join(required)} set (NOT NULL in the contract).",
            ),
            dg.AssetCheckSpec(
                "rejects_below_threshold",
                asset=asset,
                description=f"Rejected rows are at most {max_reject_ratio:.1%} of the rows merged.",
            ),
            dg.AssetCheckSpec(
                QUARANTINE_CHECK,
                asset=asset,
                description=(
                    f"No structurally bad bronze file waits in {quarantine_identifier(contract)} "
                    "(fix, replace or delete it in bronze: the next run applies or releases it)."
                ),
            ),
        ],
    )
    def silver_checks(iceberg: IcebergCatalogResource) -> Iterator[dg.AssetCheckResult]:
        catalog = iceberg.catalog()
        table = catalog.load_table(table_identifier(contract))
        live = table.scan(
            row_filter=EqualTo(IS_DELETED, False), selected_fields=tuple(required)
        ).to_arrow()
        keys = key_array(live, contract.primary_key)
        duplicates = live.num_rows - len(pc.unique(keys))
        yield dg.AssetCheckResult(
            check_name="primary_key_unique",
            asset_key=asset,
            passed=duplicates == 0,
            metadata={"live_rows": live.num_rows, "duplicate_keys": duplicates},
        )
        nulls = {name: live[name].null_count for name in required if live[name].null_count}
        yield dg.AssetCheckResult(
            check_name="required_columns_not_null",
            asset_key=asset,
            passed=not nulls,
            metadata={"null_counts": dg.MetadataValue.json(nulls)},
        )
        rows = len(table.scan(selected_fields=(contract.primary_key[0],)).to_arrow())
        rejected = 0
        if catalog.table_exists(rejects_identifier(contract)):
            rejected = len(
                catalog.load_table(rejects_identifier(contract))
                .scan(selected_fields=("_source_row",))
                .to_arrow()
            )
        ratio = rejected / (rows + rejected) if rows + rejected else 0.0
        yield dg.AssetCheckResult(
            check_name="rejects_below_threshold",
            asset_key=asset,
            passed=ratio <= max_reject_ratio,
            metadata={
                "rejected": rejected,
                "rows": rows,
                "ratio": ratio,
                "threshold": max_reject_ratio,
            },
        )

        waiting = read_quarantine(catalog, contract)
        yield dg.AssetCheckResult(
            check_name=QUARANTINE_CHECK,
            asset_key=asset,
            passed=not waiting,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(
                f"{len(waiting)} bronze file(s) quarantined: "
                + "; ".join(f"{key}: {entry.error}" for key, entry in sorted(waiting.items())[:5])
                if waiting
                else "no bronze file is quarantined"
            ),
            metadata={
                "quarantined_files": len(waiting),
                "files": dg.MetadataValue.json(
                    {key: entry.error for key, entry in sorted(waiting.items())}
                ),
            },
        )

    return silver_checks
