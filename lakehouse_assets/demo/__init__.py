"""The demo source: a simulated SaaS database as AWS DMS writes it to S3, and its end state.

``simulator.generate`` runs it: ``simulation`` holds the database (a ``table_log``
per table), ``history`` and ``load_overlap`` build what the full load sees,
``activity`` and ``edge_cases`` make each CDC day from the ``rows`` builders, and
``dms_target`` writes the files; ``oracle`` writes the expected state and manifest.
"""

from lakehouse_assets.demo.oracle import EXPECTED_PREFIX, MANIFEST_KEY
from lakehouse_assets.demo.simulator import generate
from lakehouse_assets.demo.summary import Summary

__all__ = ["EXPECTED_PREFIX", "MANIFEST_KEY", "Summary", "generate"]
