#!/usr/bin/env bash
# Set up and run the test suite. Extra arguments go to pytest.
#
#   scripts/test.sh          the whole suite: setup.sh, then the Spark engine (install_spark.sh)
#   scripts/test.sh --fast   everything that needs no JVM, no dbt build, no dagster dev and no
#                            CLI subprocess (pytest markers spark, dbt, dagster_dev, cli): no
#                            Spark install
set -euo pipefail
cd "$(dirname "$0")/.."
fast=0
args=()
for arg in "$@"; do
    if [ "$arg" = --fast ]; then fast=1; else args+=("$arg"); fi
done
scripts/setup.sh
# Two workers (one per core); a test file runs in one worker, so its module fixtures
# (a Spark session, a generated demo) are built once.
parallel=(-n "${PYTEST_WORKERS:-2}" --dist loadfile)
if [ "$fast" = 1 ]; then
    exec .venv/bin/python -m pytest "${parallel[@]}" -m "not spark and not dbt and not dagster_dev and not cli" "${args[@]}"
fi
scripts/install_spark.sh
exec .venv/bin/python -m pytest "${parallel[@]}" "${args[@]}"
