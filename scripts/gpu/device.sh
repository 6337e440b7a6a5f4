#!/usr/bin/env bash
# Runs ON the GPU machine (repo root), after scripts/gpu/bundle.sh here and a
# device run with carry [".gpu"]: unpacks node, the Vulkan loader and the weft
# bundle, then probes Dawn in worker threads, checks fixture parity on webgpu at
# tp 1 and 2, and runs the GPU bench (weft webgpu + transformers). Logs and
# JSON go to $OUT (or ./gpu-out).
#   usage: bash scripts/gpu/device.sh [check|bench|all]   (default all)
set -uo pipefail
what="${1:-all}"
out="${OUT:-gpu-out}"; mkdir -p "$out"
bash .gpu/setup.sh >/dev/null && . .gpu/env.sh || { echo 'setup failed'; exit 1; }
tar xJf .gpu/weft.tar.xz
{ nvidia-smi -L; node --version; python3 -c 'import torch, transformers; print(torch.__version__, transformers.__version__)'; } > "$out/env.txt" 2>&1
rc=0
timeout 60 node scripts/gpu/worker-probe.mjs 2 2>&1 | tee "$out/probe.log" || rc=1
if [ "$what" != bench ]; then
  timeout 240 node examples/dist/bench/gpu-check.js --backend webgpu --out "$out/check.json" 2>&1 | tee "$out/check.log" || rc=1
fi
if [ "$what" != check ]; then
  timeout 420 node examples/dist/bench/gpu.js --backend webgpu --out "$out/bench.json" ${BENCH_ARGS:-} 2>&1 | tee "$out/bench.log" || rc=1
fi
exit $rc
