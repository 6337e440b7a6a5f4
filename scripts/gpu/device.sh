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
  # One process per layout: a process whose Dawn-holding worker threads were
  # terminated has been seen to segfault at its next step.
  rm -rf /tmp/weft-check && mkdir -p /tmp/weft-check
  for f in llama-tiny llama-bf16 deepseek-v3-tiny deepseek-v2-lite-tiny; do for tp in 1 2; do
    timeout 120 node examples/dist/bench/gpu-check.js --backend webgpu --fixtures $f --tp $tp --out /tmp/weft-check/$f-tp$tp.json 2>&1 | tee -a "$out/check.log" || rc=1
  done; done
  node -e 'const fs=require("fs");const d="/tmp/weft-check";const rows=fs.readdirSync(d).flatMap(f=>JSON.parse(fs.readFileSync(d+"/"+f)).rows);fs.writeFileSync(process.argv[1],JSON.stringify({date:new Date().toISOString(),backend:"webgpu",rows},null,1));console.log("parity:",rows.filter(r=>r.pass).length+"/"+rows.length,"cases pass")' "$out/check.json"
fi
if [ "$what" != check ]; then
  # The checkpoint first (weft writes it), then transformers in its own process, then weft.
  timeout 120 node examples/dist/bench/gpu.js --backend cpu --layers 22 --prompt 1 --decode 0 --batches 1 --no-torch --no-profile --write-only --out /tmp/unused.json 2>&1 | tee "$out/bench.log"
  PYTHONUNBUFFERED=1 timeout 200 python3 scripts/gpu/torch_bench.py --model /tmp/weft-bench-tinyllama-1.1b-22l > "$out/torch.json" 2>> "$out/bench.log" || rc=1
  timeout 450 node examples/dist/bench/gpu.js --backend webgpu --torch-json "$out/torch.json" --out "$out/bench.json" ${BENCH_ARGS:-} 2>&1 | tee -a "$out/bench.log" || rc=1
fi
exit $rc
