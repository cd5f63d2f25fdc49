#!/usr/bin/env bash
# Install IKMo into ./.venv from scratch. torch first, from the pinned CPU wheel, so that no
# resolver ever pulls a CUDA build; then the package with its dev and llm extras.
set -euo pipefail
cd "$(dirname "$0")/.."
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
# System tools the tests use (Debian packages, installed only when missing; CI runs this as root):
# chromium, driven by Playwright in the browser tests (tests/web_fixtures.py; never `playwright install`, no browser
# downloads); Blender (with python3-numpy) checks our BVH and GLB with its own importers and runs the add-on; npm
# installs the glTF validator and three.js into .node/ (scripts/install_node_tools.sh); PostgreSQL for the
# Postgres threads test.
need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v blender >/dev/null || need_apt+=(blender)
# Debian's Blender runs on the system Python; its glTF importer needs that Python's numpy.
/usr/bin/python3 -c "import numpy" 2>/dev/null || need_apt+=(python3-numpy)
command -v npm >/dev/null || need_apt+=(nodejs npm)
# PostgreSQL: the test of studio threads shared through Postgres starts its own server with initdb /
# pg_ctl (Debian keeps them in /usr/lib/postgresql/VERSION/bin).
command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    lock=(); command -v flock >/dev/null && lock=(flock /tmp/apt.lock)  # other installs may run apt too
    "${lock[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${lock[@]}" apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "note: ${need_apt[*]} missing (install with apt as root); the tests that need them are skipped" >&2
  fi
fi
command -v npm >/dev/null && bash scripts/install_node_tools.sh
# `langgraph dev` needs its own protobuf: a side environment over .venv (tests/integration/test_langgraph_dev.py).
bash scripts/install_langgraph_dev.sh || echo "warning: langgraph dev's side environment failed (its test is skipped)" >&2
echo "IKMo installed in $(pwd)/.venv"
