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

# Built in a temporary folder and moved into place at the end: tests that load the addon while this runs
# (others working in the checkout) keep the previous build, never a half-built or missing one (they would
# silently run the portable kernels). The sources are linked, not copied; build/'s Makefile then names the
# temporary folder, so rebuild with this script (or `node-gyp rebuild`), not an incremental `make`.
work="$(mktemp -d "${TMPDIR:-/tmp}/weft-cpu-kernels.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cp binding.gyp "$work/"
ln -s "$PWD/native" "$work/native"
if ! (cd "$work" && node "$NODE_GYP" rebuild --loglevel=error) >build.log 2>&1; then
  tail -20 build.log >&2
  say "the addon build failed (log: packages/cpu-kernels/build.log): the portable JS kernels will run"
  exit 0
fi
isas="$(node -e "console.log(require(process.argv[1]).info().isas.join(', '))" "$work/build/Release/weft_cpu_kernels.node")"
# Copied beside build/ (the same file system), then two renames: the swap leaves no build/ only between them.
rm -rf build.next build.prev
cp -a "$work/build" build.next
if [ -d build ]; then mv build build.prev; fi
mv build.next build
rm -rf build.prev
say "built; ISA paths on this CPU: $isas"
