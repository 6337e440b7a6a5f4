#!/usr/bin/env bash
# npm run setup:cpu-kernels
#
# Builds @weft/cpu-kernels' native addon (packages/cpu-kernels/native/*.c) with npm's bundled node-gyp
# against the installed Node headers: nothing is downloaded. The AVX-512 (VNNI) and AVX2 paths are both
# compiled; the addon picks what the CPU has at run time. Without the addon (no compiler, not x86-64),
# @weft/cpu-kernels runs its portable JS path: this script then says why and exits 0, so CI goes on.
set -euo pipefail
cd "$(dirname "$0")/../packages/cpu-kernels"
say() { echo "setup:cpu-kernels: $*"; }

if [ "$(uname -m)" != x86_64 ]; then say "$(uname -m) is not x86-64: the portable JS kernels will run"; exit 0; fi
for tool in cc make python3; do
  command -v "$tool" >/dev/null || { say "$tool is missing (node-gyp needs cc, make, python3): the portable JS kernels will run"; exit 0; }
done
NODE_PREFIX="$(dirname "$(dirname "$(command -v node)")")"
if [ -z "${npm_config_nodedir:-}" ] && [ -f "$NODE_PREFIX/include/node/node_api.h" ]; then export npm_config_nodedir="$NODE_PREFIX"; fi
NODE_GYP="$(dirname "$(dirname "$(command -v npm)")")/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
[ -f "$NODE_GYP" ] || NODE_GYP="$(npm prefix -g)/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
[ -f "$NODE_GYP" ] || { say "npm's bundled node-gyp was not found: the portable JS kernels will run"; exit 0; }

if ! node "$NODE_GYP" rebuild --loglevel=error >build.log 2>&1; then
  tail -20 build.log >&2
  say "the addon build failed (log: packages/cpu-kernels/build.log): the portable JS kernels will run"
  exit 0
fi
node -e "const a = require('./build/Release/weft_cpu_kernels.node'); console.log('setup:cpu-kernels: built; ISA paths on this CPU: ' + a.info().isas.join(', '))"
