"""The demo source: a simulated SaaS database as AWS DMS writes it to S3, and its end state."""

from lakehouse_assets.demo.simulator import EXPECTED_PREFIX, MANIFEST_KEY, Summary, generate

__all__ = ["EXPECTED_PREFIX", "MANIFEST_KEY", "Summary", "generate"]
