#!/usr/bin/env bash
# The GPU targets of the earlier issues in one command (see benchmarks/gpu_suite.py):
#   SKADVREC_DATA=../shared/data bash benchmarks/gpu_suite.sh [--device cuda] [--out gpu_suite.md]
# Smoke check without a GPU (minutes, numbers not comparable with the targets):
#   bash benchmarks/gpu_suite.sh --device cpu --quick --out /tmp/gpu_suite.md
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
PY="${PYTHON:-python}"
exec "$PY" gpu_suite.py "$@"
