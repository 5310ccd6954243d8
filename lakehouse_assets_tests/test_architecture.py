"""The package's shape: the layer order holds, no private Dagster API is used, and the
definitions do not depend on which optional engines are installed."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from lakehouse_assets.names import LAYERS

PACKAGE = Path(__file__).resolve().parent.parent / "lakehouse_assets"


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _layer(module: str) -> str:
    """``lakehouse_assets.silver.writer`` -> ``silver``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every project module ``path`` imports (at any depth, lazy imports included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_every_package_has_a_layer():
    top_level = {
        path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for path in _modules()
        if path.relative_to(PACKAGE).parts[0] != "__init__.py"
    }
    assert top_level <= set(LAYERS), f"not in names.LAYERS: {sorted(top_level - set(LAYERS))}"


def test_no_module_imports_from_a_layer_above_it():
    rank = {name: index for index, name in enumerate(LAYERS)}
    violations = []
    for path in _modules():
        relative = path.relative_to(PACKAGE)
        own = relative.parts[0].removesuffix(".py")
        if own == "__init__":
            continue
        for line, module in _imports(path):
            if not module.startswith("lakehouse_assets."):
                continue
            target = _layer(module)
            if rank[target] > rank[own]:
                violations.append(f"{relative}:{line} ({own}) imports {module} ({target})")
    assert not violations, "imports from a layer above:\n" + "\n".join(violations)


def test_no_private_dagster_imports():
    private = [
        f"{path.relative_to(PACKAGE)}:{line} imports {module}"
        for path in _modules()
        for line, module in _imports(path)
        if module.startswith(("dagster._", "dagster_dbt._", "dagster_aws._"))
    ]
    assert not private, "\n".join(private)


_GRAPH_SCRIPT = """
import json, sys
if sys.argv[1] == "hide":
    # Any import of pyspark (or dagster-pyspark) now fails, as on a machine without them.
    for name in ("pyspark", "dagster_pyspark"):
        sys.modules[name] = None
import dagster as dg
from lakehouse_assets.definitions import defs
definitions = defs()
graph = definitions.resolve_asset_graph()
assets = {}
for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
    node = graph.get(key)
    assets[key.to_user_string()] = {
        "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
        "partitioned": node.partitions_def is not None,
        "group": node.group_name,
        "pools": sorted(node.pools or ()),
    }
jobs = sorted(job.name for job in definitions.resolve_all_job_defs())
resources = sorted(definitions.resources)
print(json.dumps({"assets": assets, "resources": resources, "jobs": jobs}, sort_keys=True))
"""


def test_the_asset_graph_is_the_same_without_pyspark(tmp_path):
    # Both definitions load at once, in their own processes.
    processes = {
        mode: subprocess.Popen(
            [sys.executable, "-W", "ignore", "-c", _GRAPH_SCRIPT, mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for mode in ("show", "hide")
    }
    graphs = {}
    for mode, process in processes.items():
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
        graphs[mode] = json.loads(stdout.strip().splitlines()[-1])
    with_spark, without_spark = graphs["show"], graphs["hide"]
    assert with_spark["assets"]["silver/core_order"]["deps"] == ["bronze/core_order"]
    assert "pyspark" in with_spark["resources"]
    assert with_spark == without_spark
