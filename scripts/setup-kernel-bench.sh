#!/usr/bin/env bash
# bash scripts/setup-kernel-bench.sh — the outside kernel libraries bench:kernels compares against, installed
# into a cache directory (never into the workspace, so `npm ci` and other packages' no-save installs are untouched):
#   onnxruntime-node 1.30.0 (its install script, which downloads from a host these machines cannot reach, is
#   skipped: the CPU binary ships in the package) and wabt 1.0.39 (wat2wasm in JS, for our own wasm kernels).
set -euo pipefail
DIR="${WEFT_KERNEL_BENCH_DEPS:-${XDG_CACHE_HOME:-$HOME/.cache}/weft/kernel-bench}"
mkdir -p "$DIR"
[ -f "$DIR/package.json" ] || echo '{"name":"weft-kernel-bench-deps","private":true}' >"$DIR/package.json"
(cd "$DIR" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error onnxruntime-node@1.30.0 wabt@1.0.39 >/dev/null)
(cd "$DIR" && node -e "const o = require('onnxruntime-node'); console.log('setup-kernel-bench: onnxruntime-node ' + o.env.versions.node + ' loads; wabt ' + require('wabt/package.json').version)")
