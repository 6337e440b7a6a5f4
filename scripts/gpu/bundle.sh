#!/usr/bin/env bash
# Packs what a bare GPU machine needs to run weft on WebGPU into .gpu/weft.tar.xz:
# the built packages' dist/ (the repo layout is kept, since worker threads load
# rank entries by URL next to their package), and a trimmed node_modules with
# only the runtime files (@tensorflow/* node builds, @huggingface/tokenizers,
# seedrandom, webgpu's linux-x64 Dawn build, @weft/* links). Unpacked in the
# repo root on the GPU machine by scripts/gpu/device.sh.
#
# usage (repo root, development machine): bash scripts/gpu/bundle.sh
#   needs: npm ci done; ../shared/gpu/prepare-bundle.sh (node + Vulkan loader
#   .debs in .gpu/); the npm package webgpu@0.6.2, taken from node_modules or,
#   when absent, installed into a temporary folder (scripts ignored).
#   SKIP_BUILD=1: pack the dist/ folders as they are. Run it in a clean checkout (git archive of
#   HEAD + node_modules links) when others' uncommitted work in the shared tree does not build;
#   SHARED_GPU names the folder holding prepare-bundle.sh (default ../shared/gpu).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
[ -f .gpu/setup.sh ] || bash "${SHARED_GPU:-../shared/gpu}/prepare-bundle.sh"
# A run carries 64 MiB with the working tree (fixtures and models are ~36 MB):
# a stripped node packs 2 MB smaller. Keep the GL/X11 .debs: NVIDIA's Vulkan
# ICD is libGLX_nvidia.so.0, which needs libglvnd and libX11 to load.
if [ ! -f .gpu/node.stripped ]; then
  cp "$(command -v node)" /tmp/weft-node && strip /tmp/weft-node && xz -T0 -9e -c /tmp/weft-node > .gpu/node.xz && rm /tmp/weft-node && touch .gpu/node.stripped
fi

[ "${SKIP_BUILD:-0}" = 1 ] || npx nx run-many -t build --output-style=static >/dev/null

wg=node_modules/webgpu
if [ ! -f "$wg/dist/linux-x64/dawn.node" ]; then
  tmp="${TMPDIR:-/tmp}/weft-webgpu-0.6.2"
  if [ ! -f "$tmp/node_modules/webgpu/dist/linux-x64/dawn.node" ]; then
    mkdir -p "$tmp" && (cd "$tmp" && echo '{"private":true}' > package.json && npm i --no-save --ignore-scripts --no-audit --no-fund webgpu@0.6.2 >/dev/null)
  fi
  wg="$tmp/node_modules/webgpu"
fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
for p in packages/*/ examples/; do
  p="${p%/}"
  [ -d "$p/dist" ] || continue
  (cd "$p" && find dist -name '*.js' | while read -r f; do mkdir -p "$stage/$p/$(dirname "$f")"; cp "$f" "$stage/$p/$f"; done)
done
nm="$stage/node_modules"
mkdir -p "$nm/@weft" "$nm/@tensorflow" "$nm/@huggingface" "$nm/webgpu/dist"
for d in packages/*/; do n="$(basename "$d")"; ln -s "../../packages/$n" "$nm/@weft/$n"; done
ln -s ../../examples "$nm/@weft/examples"
for p in tfjs-core:tf-core tfjs-backend-cpu:tf-backend-cpu tfjs-backend-webgpu:tf-backend-webgpu tfjs-backend-wasm:tf-backend-wasm; do
  pkg="${p%%:*}" file="${p##*:}"
  mkdir -p "$nm/@tensorflow/$pkg/dist"
  cp "node_modules/@tensorflow/$pkg/package.json" "$nm/@tensorflow/$pkg/"
  cp "node_modules/@tensorflow/$pkg/dist/$file.node.js" "$nm/@tensorflow/$pkg/dist/"
done
cp node_modules/@tensorflow/tfjs-backend-wasm/dist/*.wasm "$nm/@tensorflow/tfjs-backend-wasm/dist/"
cp -r node_modules/@huggingface/tokenizers "$nm/@huggingface/"
cp -r node_modules/seedrandom "$nm/"
cp "$wg/package.json" "$wg/index.js" "$nm/webgpu/"
cp -r "$wg/dist/linux-x64" "$nm/webgpu/dist/"

tar -C "$stage" -cf - . | xz -T0 -6 > .gpu/weft.tar.xz
du -sh .gpu .gpu/weft.tar.xz
