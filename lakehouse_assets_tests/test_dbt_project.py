"""The dbt project: prepared from a fresh checkout, wired as marts/<model> with checks."""

import shutil
from pathlib import Path

import dagster as dg
import pytest

from lakehouse_assets import marts as marts_module
from lakehouse_assets.marts import DBT_PROJECT_DIR, build_marts, manifest_is_stale, prepare_manifest

pytestmark = pytest.mark.dbt


@pytest.fixture
def fresh_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of dbt_project/ as git has it: no target/, no manifest."""
    copy = tmp_path / "dbt_project"
    shutil.copytree(
        DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target", "logs", ".user.yml")
    )
    monkeypatch.setattr(marts_module, "DBT_PROJECT_DIR", copy)
    return copy


def test_fresh_checkout_prepares_its_manifest_and_wires_assets(fresh_checkout: Path):
    project = marts_module.dbt_project()
    assert manifest_is_stale(project)
    manifest = prepare_manifest(project)
    assert manifest.exists() and manifest.parent == fresh_checkout / "target"
    assert not manifest_is_stale(project)

    daily = dg.DailyPartitionsDefinition(start_date="2024-01-01")
    marts_daily, marts = build_marts(daily)
    assert {key.to_user_string() for key in marts_daily.keys} == {"marts/tenant_kpis"}
    assert {key.to_user_string() for key in marts.keys} == {"marts/customer_segments"}
    assert marts_daily.partitions_def == daily and marts.partitions_def is None
    # Sources are the gold assets: one lineage graph.
    deps = {
        dep.to_user_string()
        for dep in marts_daily.asset_deps[dg.AssetKey(["marts", "tenant_kpis"])]
    }
    assert deps == {"gold/daily_revenue", "gold/mrr", "gold/event_funnel", "gold/tenants"}
    # Every dbt test is an asset check on its model, the custom generic tests included.
    checks = {key.name for key in marts_daily.check_keys} | {key.name for key in marts.check_keys}
    assert "unique_combination_tenant_kpis_day__tenant_id" in checks
    assert "non_negative_customer_segments_lifetime_value" in checks
    assert "relationships_customer_segments_tenant_id__tenant_id__source_gold_tenants_" in checks
    assert (
        "accepted_values_customer_segments_segment__prospect__subscriber_only__at_risk__champion__loyal__occasional"
        in checks
    )


def test_editing_a_model_makes_the_manifest_stale(fresh_checkout: Path):
    project = marts_module.dbt_project()
    prepare_manifest(project)
    model = fresh_checkout / "models" / "marts" / "customer_segments.sql"
    model.write_text(model.read_text() + "\n-- edited\n")
    future = Path(project.manifest_path).stat().st_mtime + 5
    import os

    os.utime(model, (future, future))
    assert manifest_is_stale(project)
