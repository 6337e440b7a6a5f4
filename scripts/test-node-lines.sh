#!/usr/bin/env bash
# The LTS lines users have besides the one CI runs everything on: Node 22 and 24. Each line's official
# binary comes from the npm registry (`node-<platform>-<arch>`: the binary itself in a package, no install
# script, nothing fetched from nodejs.org), cached under node_modules/.cache/weft-node-lines; a representative subset of the
# suite then runs on it (< 3 minutes for both on an idle machine): CommonJS and ESM use as the README shows,
# the engine on real worker threads (EOS stops, batching, sampling parameters, a model registered by
# module), the shared-memory collectives, safetensors and the tokenizer, the HTTP server, the built CLI.
# Needs the build (npm ci). WEFT_NODE_LINES="22.23.5 24.22.3" picks the versions.
set -euo pipefail
cd "$(dirname "$0")/.."
versions=${WEFT_NODE_LINES:-"22.23.5 24.22.3"}
pkg="node-$(node -p 'process.platform + "-" + process.arch')"
root=$PWD
cache="$root/node_modules/.cache/weft-node-lines"
start=$SECONDS
for v in $versions; do
  dir="$cache/$v"
  bin="$dir/node_modules/$pkg/bin"
  if [ ! -x "$bin/node" ]; then
    mkdir -p "$dir"
    echo '{"private": true}' > "$dir/package.json"
    npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund "$pkg@$v" >/dev/null
  fi
  echo "== Node $("$bin/node" --version) ($pkg@$v from the npm registry)"
  vitest() { (cd "$1" && shift && PATH="$bin:$PATH" "$bin/node" "$root/node_modules/vitest/vitest.mjs" run "$@"); }
  vitest packages/core src/safetensors.test.ts src/tokenizer.test.ts
  # world size 8 left to the main run (the slowest case; nothing Node-version specific beyond size 4)
  vitest packages/comm src/collectives.test.ts src/message-queue.test.ts -t '^(?!.*world size 8$)'
  vitest packages/engine src/stop-conditions.test.ts src/registry.test.ts src/sampling-params.test.ts src/output-processor.test.ts
  vitest packages/serve src/server.test.ts
  vitest examples src/cli/generate-output.test.ts
  vitest examples src/readme.test.ts -t 'js block' 
done
echo "Node lines ${versions}: passed in $((SECONDS - start)) s"
