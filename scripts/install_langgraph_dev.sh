#!/usr/bin/env bash
# `langgraph dev` in a side environment over IKMo's: langgraph-cli[inmem] needs protobuf >= 5 while
# mediapipe 0.10.21 (the photo reader) needs protobuf < 5, so the two cannot share .venv. The side
# environment (.langgraph-env/, ignored) sees .venv's packages through a .pth file and the editable
# IKMo install, and has its own langgraph-cli (and protobuf) in front of them.
# Usage: bash scripts/install_langgraph_dev.sh   then   .langgraph-env/bin/langgraph dev --host 127.0.0.1 --no-browser
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "run scripts/install.sh first (.venv is missing)" >&2; exit 2; }
PY=$(.venv/bin/python -c 'import sys; print(sys._base_executable)')
SITE=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
[ -x .langgraph-env/bin/python ] || "$PY" -m venv .langgraph-env
LG_SITE=$(.langgraph-env/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# IKMo's editable install (its finder and .pth) first, then .venv's site-packages after the side env's own.
cp "$SITE"/__editable__*ikmo* "$LG_SITE"/
echo "$SITE" > "$LG_SITE/zz_ikmo_venv.pth"
.langgraph-env/bin/python -m pip install -q "langgraph-cli[inmem]>=0.4"
echo "langgraph dev installed in $(pwd)/.langgraph-env"
