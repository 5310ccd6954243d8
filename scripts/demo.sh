#!/usr/bin/env bash
# Set up, generate the scale-1 demo DMS landing into the embedded lake
# (./.lakehouse/data-lake), and build every layer of it: bronze, silver, gold
# and the dbt marts, with every asset check (one run, in process).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

scale=${DEMO_SCALE:-1}
days=${DEMO_DAYS:-7}            # at least 2: the full-load day must be over
last=$(date -u +%F)             # the demo ends today (UTC): its newest commits are of now
start=$(.venv/bin/python -c "import datetime as d; print(d.date.fromisoformat('$last') - d.timedelta(days=$days - 1))")

export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/.lakehouse/dagster}
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || printf 'telemetry:\n  enabled: false\n' > "$DAGSTER_HOME/dagster.yaml"
lake=${LAKEHOUSE_LAKE_URI:-./.lakehouse/data-lake}
# The batch's newest commit is the moment it was generated, and building every layer takes
# minutes: judge freshness within the hour (production default: 5 minutes).
export LAKEHOUSE_FRESHNESS_MAX_LAG_MINUTES=${LAKEHOUSE_FRESHNESS_MAX_LAG_MINUTES:-60}

.venv/bin/lakehouse-demo generate --scale "$scale" --days "$days" --seed 42 --end "$last" \
    --live-load --out "$lake"
.venv/bin/dagster asset materialize -m lakehouse_assets.definitions --select '*' \
    --partition-range "$start...$last" \
    --config-json '{"execution": {"config": {"in_process": {}}}}'
