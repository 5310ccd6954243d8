"""The AWS DMS S3-target format: object keys and CSV files (pure functions, no Dagster)."""

from lakehouse_assets.dms.keys import (
    DmsKeyError,
    DmsObjectKey,
    FileKind,
    date_folder,
    date_folder_prefix,
    parse_object_key,
    table_prefix,
)
from lakehouse_assets.dms.reader import (
    CHANGE_SEQ,
    COMMIT_TS,
    METADATA_COLUMNS,
    OP,
    SOURCE_FILE,
    SOURCE_ROW,
    DmsFormatError,
    raw_schema,
    read_dms_file,
    read_dms_files,
)
from lakehouse_assets.dms.writer import (
    cdc_key,
    change_seq_values,
    encode_csv_rows,
    encode_dms_file,
    full_load_key,
)

__all__ = [
    "CHANGE_SEQ",
    "COMMIT_TS",
    "METADATA_COLUMNS",
    "OP",
    "SOURCE_FILE",
    "SOURCE_ROW",
    "DmsFormatError",
    "DmsKeyError",
    "DmsObjectKey",
    "FileKind",
    "cdc_key",
    "change_seq_values",
    "date_folder",
    "date_folder_prefix",
    "encode_csv_rows",
    "encode_dms_file",
    "full_load_key",
    "parse_object_key",
    "raw_schema",
    "read_dms_file",
    "read_dms_files",
    "table_prefix",
]
