"""The production shape: docker-compose validated by the real compose binary, every
environment variable the project reads documented in .env.example, MinIO retention."""

import json
import re
import subprocess
from pathlib import Path

import compose
import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = Path(compose.__file__).parent / "docker-compose"
# Variables the code reads: LAKEHOUSE_* and the standard AWS_* ones, as string literals.
READ_VARIABLE = re.compile(r"""["'](LAKEHOUSE_[A-Z_]+|AWS_[A-Z_]+)["']""")
DBT_ENV_VAR = re.compile(r"""env_var\(\s*['"]([A-Z_]+)['"]""")


def compose_config(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(COMPOSE), "-f", str(ROOT / "docker-compose.yml"), *args, "config", "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT)},
    )


@pytest.fixture(scope="module")
def stack() -> dict:
    result = compose_config("--env-file", str(ROOT / ".env.example"))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_file_is_valid_and_has_the_whole_platform(stack):
    assert set(stack["services"]) == {
        "minio",
        "minio-init",
        "postgres",
        "dagster-code",
        "dagster-webserver",
        "dagster-daemon",
    }
    for name in ("minio", "postgres", "dagster-code"):
        assert stack["services"][name]["healthcheck"]["test"], name


def test_services_wait_for_healthy_dependencies(stack):
    services = stack["services"]
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    for name in ("dagster-code", "dagster-webserver", "dagster-daemon"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
    assert services["dagster-code"]["depends_on"]["minio-init"]["condition"] == (
        "service_completed_successfully"
    )
    assert (
        services["dagster-webserver"]["depends_on"]["dagster-code"]["condition"]
        == "service_healthy"
    )


def test_dagster_services_point_at_minio_and_postgres(stack):
    environment = stack["services"]["dagster-code"]["environment"]
    assert environment["LAKEHOUSE_LAKE_URI"] == "s3://data-lake"
    assert environment["AWS_ENDPOINT_URL"] == "http://minio:9000"
    assert environment["LAKEHOUSE_CATALOG_URI"].startswith("postgresql+psycopg2://iceberg_catalog:")
    assert environment["LAKEHOUSE_POSTGRES_URL"].startswith("postgresql://lakehouse_gold:")


def test_secrets_are_required_from_the_env_file():
    result = compose_config()  # no .env: every secret is missing
    assert result.returncode != 0
    assert "set in .env" in result.stderr


def test_every_variable_the_project_reads_is_in_env_example():
    documented = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#") and "=" in line
    }
    read: dict[str, str] = {}
    for path in (ROOT / "lakehouse_assets").rglob("*.py"):
        for name in READ_VARIABLE.findall(path.read_text()):
            read.setdefault(name, str(path.relative_to(ROOT)))
    for path in (ROOT / "dbt_project").rglob("*.yml"):
        if not path.is_file() or "target" in path.parts:
            continue
        for name in DBT_ENV_VAR.findall(path.read_text()):
            read.setdefault(name, str(path.relative_to(ROOT)))
    assert "LAKEHOUSE_LAKE_URI" in read  # the scan finds what the code reads
    missing = {name: where for name, where in read.items() if name not in documented}
    assert not missing, f"read but not documented in .env.example: {missing}"


def test_minio_retention_keeps_raw_dms_files_90_days():
    rules = json.loads((ROOT / "minio" / "lifecycle.json").read_text())["Rules"]
    bronze = [rule for rule in rules if rule["Filter"]["Prefix"] == "bronze/"]
    assert bronze and bronze[0]["Expiration"]["Days"] == 90 and bronze[0]["Status"] == "Enabled"
    # The bootstrap script applies exactly this file.
    assert "mc ilm import" in (ROOT / "minio" / "bootstrap.sh").read_text()
