#!/usr/bin/env bash
# Install IKMo into ./.venv from scratch. torch first, from the pinned CPU wheel, so that no
# resolver ever pulls a CUDA build; then the package with its dev and llm extras.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian's chromium, driven by Playwright in the web tests (tests/web_fixtures.py); never
# `playwright install` (no browser downloads). Only when missing, and only where apt can be used.
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
    LOCK=""; command -v flock >/dev/null && LOCK="flock /tmp/apt.lock"
    $LOCK $SUDO apt-get update -qq && $LOCK $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
        || echo "warning: could not install chromium (the browser tests will be skipped)" >&2
fi
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[dev,llm]"
# pip byte-compiles site-packages but not an editable checkout; where PYTHONDONTWRITEBYTECODE is
# set (as on our CI and dev machines) every `ikmo` call would recompile the package from source
# (measured: 0.25 s of each run's imports).
.venv/bin/python -m compileall -q ikmo agents tools motion_model eval prompts >/dev/null
echo "IKMo installed in $(pwd)/.venv"
