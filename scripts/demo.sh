#!/usr/bin/env bash
# Set up, generate the scale-1 demo DMS landing into the embedded lake
# (./.lakehouse/data-lake), and materialize every bronze and silver partition of it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

scale=${DEMO_SCALE:-1}
days=${DEMO_DAYS:-7}
start=2024-01-01
last=$(.venv/bin/python -c "import datetime as d; print(d.date.fromisoformat('$start') + d.timedelta(days=$days - 1))")

export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/.lakehouse/dagster}
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || printf 'telemetry:\n  enabled: false\n' > "$DAGSTER_HOME/dagster.yaml"
lake=${LAKEHOUSE_LAKE_URI:-./.lakehouse/data-lake}

.venv/bin/lakehouse-demo generate --scale "$scale" --days "$days" --seed 42 --start "$start" --out "$lake"
.venv/bin/dagster asset materialize -m lakehouse_assets.definitions \
    --select 'bronze/*,silver/*' --partition-range "$start...$last"
