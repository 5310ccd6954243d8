"""A Spark session that sees the silver tables: Iceberg's catalog ``lakehouse`` on the same
catalog as pyiceberg's (``lakehouse_assets.lake.catalog`` decides which).

- A SQL catalog becomes Iceberg's JDBC catalog over the same database and warehouse.
  pyiceberg's ``SqlCatalog`` and Iceberg's ``JdbcCatalog`` keep tables in the same
  ``iceberg_tables`` rows, keyed by catalog name: both must be named ``lakehouse`` or each
  sees none of the other's tables.
- A Glue catalog becomes ``org.apache.iceberg.aws.glue.GlueCatalog``, a REST catalog
  ``type=rest``, with the properties both implementations share.

Locally the jars come from ``scripts/install_spark.sh`` (no Maven); on a cluster
``spark.jars.packages`` brings them (README.md, "Silver on Spark"). Glue, S3 and SigV4 need
Iceberg's AWS bundle (AWS SDK v2) and hadoop-aws, which neither PyPI nor Debian ships: with
local jars missing them a session is refused with what to install.

Nothing here imports pyspark at module import time, so the project loads without it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse

import dagster as dg
from pydantic import Field, PrivateAttr

from lakehouse_assets.lake.catalog import (
    GLUE,
    REST,
    SQL,
    CatalogChoice,
    resolve_catalog,
    warehouse_for_lake,
)
from lakehouse_assets.names import CATALOG_NAME

JARS_DIR_VAR = "LAKEHOUSE_SPARK_JARS_DIR"  # where install_spark.sh put the jars
MASTER_VAR = "LAKEHOUSE_SPARK_MASTER"  # e.g. spark://host:7077, yarn, k8s://...; default local[2]
# Maven coordinates for spark.jars.packages (comma-separated); set: the local jars are not used.
PACKAGES_VAR = "LAKEHOUSE_SPARK_PACKAGES"
ICEBERG_RUNTIME_PACKAGE = "org.apache.iceberg:iceberg-spark-runtime-3.5_2.12:1.10.1"
# Glue, S3FileIO and SigV4 need the AWS SDK v2 (Iceberg's bundle); s3a needs hadoop-aws and
# the AWS SDK v1 bundle it was built with (pyspark 3.5 ships Hadoop 3.3.4).
ICEBERG_AWS_PACKAGE = "org.apache.iceberg:iceberg-aws-bundle:1.10.1"
HADOOP_AWS_PACKAGE = "org.apache.hadoop:hadoop-aws:3.3.4"
AWS_SDK_V1_PACKAGE = "com.amazonaws:aws-java-sdk-bundle:1.12.262"
GLUE_CATALOG_IMPL = "org.apache.iceberg.aws.glue.GlueCatalog"
# pyiceberg's Glue properties and the Java GlueCatalog's names for them.
_GLUE_PROPERTIES = {
    "glue.id": "glue.id",
    "glue.skip-archive": "glue.skip-archive",
    "glue.endpoint": "glue.endpoint",
    "glue.region": "client.region",
    "client.region": "client.region",
}
# REST catalog properties pyiceberg and Iceberg's RESTCatalog spell the same (plus header.*).
_REST_PROPERTIES = (
    "uri",
    "warehouse",
    "credential",
    "token",
    "scope",
    "oauth2-server-uri",
    "audience",
    "resource",
    "rest.sigv4-enabled",
    "rest.signing-name",
    "rest.signing-region",
)
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


def catalog_properties(choice: CatalogChoice) -> dict[str, str]:
    """Iceberg's Spark catalog properties for pyiceberg's catalog ``choice``: the same tables."""
    properties = choice.properties
    if choice.type == SQL:
        return {
            "type": "jdbc",
            "warehouse": choice.warehouse,
            # pyiceberg's SqlCatalog creates the catalog tables (the engines open it first).
            # Iceberg's own check leaves a JDBC metadata result set open, whose SQLite read lock
            # then blocks every later pyiceberg commit ("database is locked").
            "jdbc.init-catalog-tables": "false",
            **jdbc_catalog_properties(properties["uri"]),
        }
    if choice.type == GLUE:
        conf = {"catalog-impl": GLUE_CATALOG_IMPL, "warehouse": choice.warehouse}
        conf.update(
            {java: properties[py] for py, java in _GLUE_PROPERTIES.items() if properties.get(py)}
        )
        return {**conf, **_s3_endpoint(properties)}
    if choice.type == REST:
        conf = {"type": "rest"}
        conf.update(
            {
                key: value
                for key, value in properties.items()
                if key in _REST_PROPERTIES or key.startswith("header.")
            }
        )
        return {**conf, **_s3_endpoint(properties)}
    raise ValueError(
        f"{choice.describe()}: the Spark engine reaches sql, glue and rest catalogs; "
        "use the arrow engine with this one"
    )


def _s3_endpoint(properties: Mapping[str, str]) -> dict[str, str]:
    """S3FileIO's endpoint from pyiceberg's ``s3.endpoint`` (MinIO and other S3 APIs are
    addressed path-style). Keys are not copied: Spark takes them from the AWS default chain."""
    endpoint = properties.get("s3.endpoint")
    return {"s3.endpoint": endpoint, "s3.path-style-access": "true"} if endpoint else {}


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


def _aws_jars_needed(choice: CatalogChoice, lake_on_s3: bool) -> dict[str, str]:
    """Jar name -> Maven coordinates of the AWS jars this catalog and lake need."""
    needed: dict[str, str] = {}
    sigv4 = str(choice.properties.get("rest.sigv4-enabled", "")).lower() == "true"
    if choice.type == GLUE or sigv4 or lake_on_s3:
        needed["iceberg-aws-bundle"] = ICEBERG_AWS_PACKAGE
    if lake_on_s3:  # the bronze files, read through s3a
        needed["hadoop-aws"] = HADOOP_AWS_PACKAGE
        needed["aws-java-sdk-bundle"] = AWS_SDK_V1_PACKAGE
    return needed


def _require_aws_jars(jars: list[str], choice: CatalogChoice, lake_on_s3: bool) -> None:
    missing = {
        name: coordinates
        for name, coordinates in _aws_jars_needed(choice, lake_on_s3).items()
        if not any(name in Path(jar).name for jar in jars)
    }
    if missing:
        what = f"the {choice.type} catalog" if choice.type != SQL else "an S3 lake"
        raise SparkNotInstalled(
            f"Spark on {what} needs {', '.join(missing)} in {spark_jars_dir()}, which "
            "scripts/install_spark.sh cannot install (Iceberg's AWS bundle is on neither PyPI "
            "nor Debian; hadoop-aws and the AWS SDK v1 bundle come only inside "
            "sagemaker-pyspark). Put the jars there, or set "
            f"{PACKAGES_VAR}={ICEBERG_RUNTIME_PACKAGE},{','.join(missing.values())} where "
            'Maven is reachable (README.md, "Silver on Spark")'
        )


def lakehouse_spark_conf(
    catalog_uri: str, warehouse: str, local_jars: bool | None = None
) -> dict[str, str]:
    """Spark settings that register the Iceberg catalog ``lakehouse``: the catalog pyiceberg
    opens for ``catalog_uri`` (empty: pyiceberg's configuration, else the embedded default)
    and the lake's ``warehouse``.

    ``local_jars``: load the jars of install_spark.sh (``spark.jars``); default: yes unless
    ``LAKEHOUSE_SPARK_PACKAGES`` names Maven packages (``spark.jars.packages``) instead.
    Anything else (executor sizes, ...) goes in ``$SPARK_CONF_DIR/spark-defaults.conf``.
    """
    choice = resolve_catalog(catalog_uri, warehouse)
    prefix = f"spark.sql.catalog.{CATALOG_NAME}"
    packages = os.environ.get(PACKAGES_VAR, "").strip()
    if local_jars is None:
        local_jars = not packages
    conf = {
        "spark.sql.extensions": _SQL_EXTENSIONS,
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        # pyiceberg commits to the same tables: never serve a cached (stale) table state.
        f"{prefix}.cache-enabled": "false",
        # Timestamps: DMS commit times and timestamptz values are UTC, as in the arrow engine.
        "spark.sql.session.timeZone": "UTC",
        # Tables are created by pyiceberg (format v2); a table Spark creates stays v2 too.
        "spark.sql.iceberg.default-format-version": "2",
        # The Spark engine's typing relies on casts that give NULL, not errors, on bad values.
        "spark.sql.ansi.enabled": "false",
    }
    lake_on_s3 = urlparse(warehouse).scheme in ("s3", "s3a")
    if lake_on_s3 or urlparse(choice.warehouse).scheme in ("s3", "s3a"):
        conf.update(s3_conf(prefix))
    # After the AWS variables' defaults: what the catalog's configuration says wins.
    conf.update({f"{prefix}.{key}": value for key, value in catalog_properties(choice).items()})
    if packages:
        conf["spark.jars.packages"] = packages
    if local_jars:
        jars = spark_jars()
        _require_aws_jars(jars, choice, lake_on_s3)
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

    catalog_uri: str = ""  # empty: as IcebergCatalogResource, pyiceberg's config or the default
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
