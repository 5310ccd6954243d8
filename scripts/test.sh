#!/usr/bin/env bash
# Set up (setup.sh, then the Spark engine: install_spark.sh) and run the whole
# test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/install_spark.sh
exec .venv/bin/python -m pytest "$@"
