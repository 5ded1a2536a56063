#!/usr/bin/env bash
# Set up (if needed), then start voicebot on 127.0.0.1 and place a demo call with caller clips.
# Extra arguments go to `voicebot demo`, e.g. --wav my-question.wav --json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/voicebot demo "$@"
