#!/usr/bin/env bash
# Install IKMo into ./.venv from scratch. torch first, from the pinned CPU wheel, so that no
# resolver ever pulls a CUDA build; then the package with its dev and llm extras.
set -euo pipefail
cd "$(dirname "$0")/.."
# apt packages the tests use, each installed only when missing (apt-get update first; flock because
# other jobs may run apt at the same time; sudo when not root). A failure is a warning: the tests
# that need the package are then skipped.
apt_install() {  # PACKAGE: install it with apt-get
    command -v apt-get >/dev/null || { echo "warning: no apt-get to install $1" >&2; return 0; }
    local sudo="" lock=""
    [ "$(id -u)" = 0 ] || sudo="sudo -n"
    command -v flock >/dev/null && lock="flock /tmp/apt.lock"
    $lock $sudo apt-get update -qq && $lock $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" \
        || echo "warning: could not install $1 (the tests that need it will be skipped)" >&2
}
# Debian's chromium, driven by Playwright in the web tests (tests/web_fixtures.py); never
# `playwright install` (no browser downloads).
command -v chromium >/dev/null || apt_install chromium
# PostgreSQL, for the test of threads shared through Postgres (it starts its own server with
# initdb / pg_ctl, which Debian keeps in /usr/lib/postgresql/VERSION/bin).
command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql
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
