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
echo "IKMo installed in $(pwd)/.venv"
