#!/usr/bin/env bash
# Node tools the tests use, installed into the project-local, git-ignored folder .node/ (never
# globally): the Khronos glTF validator (checks motion.glb) and three.js (reads motion.glb with the
# same GLTFLoader a web page uses). Pinned; only dev builds of gltf-validator 2.x are published.
# Called by scripts/install.sh; needs npm (installed there through apt when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
GLTF_VALIDATOR=2.0.0-dev.3.10
THREE=0.187.0
have() { [ -f ".node/node_modules/$1/package.json" ] && grep -q "\"version\": \"$2\"" ".node/node_modules/$1/package.json"; }
if have gltf-validator "$GLTF_VALIDATOR" && have three "$THREE"; then
  echo "node tools already in $(pwd)/.node"
  exit 0
fi
mkdir -p .node
[ -f .node/package.json ] || echo '{"name": "ikmo-node-tools", "private": true}' > .node/package.json
npm install --prefix .node --no-audit --no-fund --loglevel=error \
  "gltf-validator@$GLTF_VALIDATOR" "three@$THREE"
echo "node tools installed in $(pwd)/.node"
