#!/usr/bin/env bash
# Set up the environment, then run the benchmark and write bench/RESULTS.md.
# Arguments go to `python -m bench.run`, for example: scripts/bench.sh --only calls
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m bench.run "$@"
