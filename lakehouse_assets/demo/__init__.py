"""The demo source: a simulated SaaS database as AWS DMS writes it to S3, and its end state.

``simulator.generate`` runs it in batch: ``simulation`` holds the database (a
``table_log`` per table), ``history`` and ``load_overlap`` build what the full load
sees, ``activity`` makes each ``period`` (a CDC day) from the ``rows`` builders and
``edge_cases`` adds crafted churn, ``live_load`` and ``reload`` make the full load run
while the source commits and reload a table, and ``dms_target`` writes the files;
``oracle`` writes the expected state and manifest. ``stream`` runs the same source in
real time, continuing a ``landing``.
"""

from lakehouse_assets.demo.oracle import EXPECTED_PREFIX, MANIFEST_KEY
from lakehouse_assets.demo.simulator import generate
from lakehouse_assets.demo.summary import Summary

__all__ = ["EXPECTED_PREFIX", "MANIFEST_KEY", "Summary", "generate"]
