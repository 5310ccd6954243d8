"""A Spark session that sees the silver tables: Iceberg's JDBC catalog ``lakehouse`` over the
same catalog database and warehouse as pyiceberg's SQL catalog.

pyiceberg's ``SqlCatalog`` and Iceberg's ``JdbcCatalog`` keep tables in the same
``iceberg_tables`` rows, keyed by catalog name: both must be named ``lakehouse``
or each sees none of the other's tables. Locally the jars come from
``scripts/install_spark.sh`` (no Maven); on a cluster ``spark.jars.packages``
brings them (README.md, "Silver on Spark").

Nothing here imports pyspark at module import time, so the project loads without it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse

import dagster as dg
from pydantic import Field, PrivateAttr

from lakehouse_assets.lake.catalog import warehouse_for_lake
from lakehouse_assets.names import CATALOG_NAME

JARS_DIR_VAR = "LAKEHOUSE_SPARK_JARS_DIR"  # where install_spark.sh put the jars
MASTER_VAR = "LAKEHOUSE_SPARK_MASTER"  # e.g. spark://host:7077, yarn, k8s://...; default local[2]
# Maven coordinates for spark.jars.packages (comma-separated); set: the local jars are not used.
PACKAGES_VAR = "LAKEHOUSE_SPARK_PACKAGES"
ICEBERG_RUNTIME_PACKAGE = "org.apache.iceberg:iceberg-spark-runtime-3.5_2.12:1.10.1"
_SQL_EXTENSIONS = "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"


class SparkNotInstalled(RuntimeError):
    """pyspark or the Iceberg jars are missing on this machine."""


def spark_jars_dir() -> Path:
    configured = os.environ.get(JARS_DIR_VAR)
    return Path(configured) if configured else Path(sys.prefix, "share", "lakehouse-spark", "jars")


def spark_jars() -> list[str]:
    """The local jars (Iceberg runtime, its relocated Jackson, JDBC drivers)."""
    folder = spark_jars_dir()
    jars = sorted(str(path.resolve()) for path in folder.glob("*.jar") if path.resolve().is_file())
    if not any("iceberg-spark-runtime" in jar for jar in jars) or not any(
        "shaded-jackson" in jar for jar in jars
    ):
        raise SparkNotInstalled(
            f"the Iceberg Spark jars are not in {folder}: run scripts/install_spark.sh "
            f"(or set {JARS_DIR_VAR}, or spark.jars.packages={ICEBERG_RUNTIME_PACKAGE} "
            "on a cluster)"
        )
    return jars


def jdbc_catalog_properties(catalog_uri: str) -> dict[str, str]:
    """Iceberg JDBC catalog properties for a pyiceberg SQL catalog URI (SQLite or PostgreSQL)."""
    parsed = urlparse(catalog_uri)
    scheme = parsed.scheme.split("+")[0]
    if scheme == "sqlite":
        path = catalog_uri.split(":///", 1)[1] if ":///" in catalog_uri else ""
        if not path or path == ":memory:":
            raise ValueError(
                f"{catalog_uri}: an in-memory SQLite catalog cannot be shared with Spark"
            )
        return {"uri": f"jdbc:sqlite:{Path(path).resolve()}"}
    if scheme in ("postgresql", "postgres"):
        host = parsed.hostname or "localhost"
        port = f":{parsed.port}" if parsed.port else ""
        query = [(k, v) for k, v in parse_qsl(parsed.query) if k not in ("user", "password")]
        params = "&".join(f"{k}={v}" for k, v in query)
        properties = {
            "uri": f"jdbc:postgresql://{host}{port}{parsed.path}{'?' + params if params else ''}"
        }
        user = parsed.username or dict(parse_qsl(parsed.query)).get("user")
        password = parsed.password or dict(parse_qsl(parsed.query)).get("password")
        if user:
            properties["jdbc.user"] = unquote(user)
        if password:
            properties["jdbc.password"] = unquote(password)
        return properties
    raise ValueError(
        f"{catalog_uri}: Spark's JDBC catalog supports sqlite:/// and postgresql:// catalog URIs"
    )


def s3_conf(catalog_prefix: str) -> dict[str, str]:
    """S3/MinIO access from the standard AWS variables: Iceberg's S3FileIO for the tables
    (iceberg-aws-bundle) and Hadoop's s3a for the bronze files (hadoop-aws); credentials
    come from the AWS default chain (AWS_ACCESS_KEY_ID, ..., instance roles)."""
    conf = {
        f"{catalog_prefix}.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        "spark.hadoop.fs.s3a.aws.credentials.provider": (
            "com.amazonaws.auth.DefaultAWSCredentialsProviderChain"
        ),
    }
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:  # MinIO and other S3 APIs: path-style addressing
        conf.update(
            {
                f"{catalog_prefix}.s3.endpoint": endpoint,
                f"{catalog_prefix}.s3.path-style-access": "true",
                "spark.hadoop.fs.s3a.endpoint": endpoint,
                "spark.hadoop.fs.s3a.path.style.access": "true",
            }
        )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        conf[f"{catalog_prefix}.client.region"] = region
        conf["spark.hadoop.fs.s3a.endpoint.region"] = region
    return conf


def lakehouse_spark_conf(
    catalog_uri: str, warehouse: str, local_jars: bool | None = None
) -> dict[str, str]:
    """Spark settings that register the Iceberg catalog ``lakehouse``.

    ``local_jars``: load the jars of install_spark.sh (``spark.jars``); default: yes unless
    ``LAKEHOUSE_SPARK_PACKAGES`` names Maven packages (``spark.jars.packages``) instead.
    Anything else (executor sizes, ...) goes in ``$SPARK_CONF_DIR/spark-defaults.conf``.
    """
    prefix = f"spark.sql.catalog.{CATALOG_NAME}"
    packages = os.environ.get(PACKAGES_VAR, "").strip()
    if local_jars is None:
        local_jars = not packages
    conf = {
        "spark.sql.extensions": _SQL_EXTENSIONS,
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        f"{prefix}.type": "jdbc",
        f"{prefix}.warehouse": warehouse,
        # pyiceberg commits to the same tables: never serve a cached (stale) table state.
        f"{prefix}.cache-enabled": "false",
        # pyiceberg's SqlCatalog creates the catalog tables (the engines open it first). Iceberg's
        # own check leaves a JDBC metadata result set open, whose SQLite read lock then blocks
        # every later pyiceberg commit ("database is locked").
        f"{prefix}.jdbc.init-catalog-tables": "false",
        # Timestamps: DMS commit times and timestamptz values are UTC, as in the arrow engine.
        "spark.sql.session.timeZone": "UTC",
        # Tables are created by pyiceberg (format v2); a table Spark creates stays v2 too.
        "spark.sql.iceberg.default-format-version": "2",
        # The Spark engine's typing relies on casts that give NULL, not errors, on bad values.
        "spark.sql.ansi.enabled": "false",
    }
    conf.update(
        {f"{prefix}.{key}": value for key, value in jdbc_catalog_properties(catalog_uri).items()}
    )
    if urlparse(warehouse).scheme in ("s3", "s3a"):
        conf.update(s3_conf(prefix))
    if packages:
        conf["spark.jars.packages"] = packages
    if local_jars:
        jars = spark_jars()
        conf["spark.jars"] = ",".join(jars)
        # The JDBC driver must be visible to java.sql.DriverManager: the driver's class path.
        conf["spark.driver.extraClassPath"] = ":".join(jars)
    return conf


def local_spark_conf(cores: int = 2, shuffle_partitions: int = 4) -> dict[str, str]:
    """Local-mode defaults for one machine: small shuffles, no UI. With ``LAKEHOUSE_SPARK_MASTER``
    set, only the master: the cluster's spark-defaults.conf sizes everything else."""
    master = os.environ.get(MASTER_VAR, "").strip()
    if master and not master.startswith("local"):
        return {"spark.master": master}
    return {
        "spark.master": master or f"local[{cores}]",
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.default.parallelism": str(cores),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.adaptive.enabled": "true",
        "spark.driver.memory": "2g",
        # Python UDF workers (JSON validation, reject reasons) run this interpreter.
        "spark.pyspark.python": sys.executable,
    }


def build_spark_session(conf: dict[str, Any], app_name: str = "lakehouse-silver"):
    """``SparkSession.builder.getOrCreate()`` with ``conf`` (a running session is reused)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkNotInstalled("pyspark is not installed: run scripts/install_spark.sh") from exc
    if str(conf.get("spark.master", "local")).startswith("local"):
        # Python UDF workers run this interpreter unless told otherwise.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    for key, value in conf.items():
        builder = builder.config(key, str(value))
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


def lakehouse_spark_session(catalog_uri: str, warehouse: str, extra: dict[str, Any] | None = None):
    """A local Spark session on the lakehouse catalog (tests, benchmarks, scripts)."""
    conf = {**local_spark_conf(), **lakehouse_spark_conf(catalog_uri, warehouse), **(extra or {})}
    return build_spark_session(conf)


class LakehouseSparkResource(dg.ConfigurableResource):
    """The Spark session of the silver Spark engine, on the ``lakehouse`` Iceberg catalog.

    A resource of its own rather than dagster-pyspark's ``PySparkResource``, so the
    definitions (assets, resources) are the same whether or not pyspark is installed; pyspark
    is imported, and the session started, on first use of ``spark_session``, so arrow-engine
    runs never pay for a JVM. ``spark_config`` entries win over the defaults: set
    ``spark.master`` and friends there, or through ``LAKEHOUSE_SPARK_MASTER``. ``local_jars``
    off: the cluster brings Iceberg (``LAKEHOUSE_SPARK_PACKAGES``, its image).
    """

    catalog_uri: str
    lake_uri: str
    warehouse: str = ""  # empty: <lake_uri>/warehouse, as IcebergCatalogResource
    local_jars: bool | None = None  # None: unless LAKEHOUSE_SPARK_PACKAGES is set
    spark_config: dict[str, Any] = Field(default_factory=dict)
    _lazy_session: Any = PrivateAttr(default=None)

    def full_spark_config(self) -> dict[str, Any]:
        warehouse = self.warehouse or warehouse_for_lake(self.lake_uri)
        base = local_spark_conf() if "spark.master" not in self.spark_config else {}
        return {
            **base,
            **lakehouse_spark_conf(self.catalog_uri, warehouse, self.local_jars),
            **self.spark_config,
        }

    @property
    def spark_session(self) -> Any:
        if self._lazy_session is None:
            self._lazy_session = build_spark_session(self.full_spark_config())
        return self._lazy_session
