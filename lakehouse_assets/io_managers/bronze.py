"""Bronze IO manager: loads a table's DMS files for the requested days as one Arrow table.

DMS writes bronze, so there is nothing to store: bronze assets only observe
their files. Downstream assets get the raw rows (contract column names, string
values, DMS metadata columns) of exactly the partitions they ask for.
"""

from datetime import date

import dagster as dg
import pyarrow as pa

from lakehouse_assets.bronze.files import list_partition_files, read_partition_files
from lakehouse_assets.resources import ContractsResource, LakeResource


class BronzeIOManager(dg.ConfigurableIOManager):
    lake: dg.ResourceDependency[LakeResource]
    contracts: dg.ResourceDependency[ContractsResource]

    def handle_output(self, context: dg.OutputContext, obj: None) -> None:
        if obj is not None:
            raise TypeError(
                f"{context.asset_key.to_user_string()}: bronze is written by DMS; "
                "a bronze asset returns a MaterializeResult, not data"
            )

    def load_input(self, context: dg.InputContext) -> pa.Table:
        contracts = self.contracts.load()
        contract = contracts.table(context.asset_key.path[-1])
        days = [date.fromisoformat(key) for key in context.asset_partition_keys]
        store = self.lake.store()
        files = list_partition_files(store, contracts.dms, contract, days)
        table = read_partition_files(store, contracts.dms, contract, files)
        context.log.info(
            f"loaded {table.num_rows} rows from {len(files)} DMS files of "
            f"{context.asset_key.to_user_string()} for {len(days)} day(s)"
        )
        return table
