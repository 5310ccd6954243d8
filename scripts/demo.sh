#!/usr/bin/env bash
# Set up, generate the scale-1 demo DMS landing into the embedded lake
# (./.lakehouse/data-lake), and build every layer of it: bronze, silver, gold
# and the dbt marts, with every asset check (one run, in process).
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
# The demo's changes were committed in 2024: judge silver's freshness on them
# by a lag measured in years, not the production default of 5 minutes.
export LAKEHOUSE_FRESHNESS_MAX_LAG_MINUTES=${LAKEHOUSE_FRESHNESS_MAX_LAG_MINUTES:-100000000}

.venv/bin/lakehouse-demo generate --scale "$scale" --days "$days" --seed 42 --start "$start" --out "$lake"
.venv/bin/dagster asset materialize -m lakehouse_assets.definitions --select '*' \
    --partition-range "$start...$last" \
    --config-json '{"execution": {"config": {"in_process": {}}}}'
