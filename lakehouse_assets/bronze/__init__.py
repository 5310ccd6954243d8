"""Bronze layer: the DMS files of each table, as daily-partitioned assets."""
