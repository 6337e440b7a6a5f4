#!/usr/bin/env bash
# Runs ON the GPU machine (repo root), after scripts/gpu/check.sh here and a device run with
# carry [".gpu"]: unpacks node, the Vulkan loader and the weft bundle, then (in this order, so
# a time limit cuts the least important part):
#   1. Dawn in worker threads (probe.log)
#   2. the device plan on weft's WebGPU executor against the Llama fixtures (fp32, bf16, Q8_0 / Q4_0
#      weight-only) and the tfjs forward (plan-check.json)
#   3. the bench: transformers eager + static cache/compile (torch.json), the device plan on the WebGPU
#      executor (PLAN_FORMATS, default bf16,q4_0,fp32) and the tfjs path with weft's kernels (bench.json, bench.log)
#   4. the exit test: Dawn threads and weft at tp 2, with and without the loader pin (exit.log)
#   5. fixture parity of the tfjs path at tp 1 and 2 (check.json, check.log)
# Files in $OUT (or ./gpu-out; a device run returns at most 8): env.txt, run.log (everything printed),
# plan-check.json, torch.json, bench.json, exit.log, check.json. Stages that would start after
# DEADLINE_S seconds (default 540) are skipped, and say so in run.log.
#   usage: bash scripts/gpu/device.sh [all|check|bench|exit]   (default all; check = 2, 4, 5; exit = 4)
set -uo pipefail
what="${1:-all}"
out="${OUT:-gpu-out}"; mkdir -p "$out"
start=$(date +%s)
deadline="${DEADLINE_S:-540}"
left() { echo $(( deadline - ($(date +%s) - start) )); }
stage() { local s; s=$(left); if [ "$s" -lt "${2:-20}" ]; then echo "SKIPPED $1: ${s}s left"; return 1; fi; echo "== $1 (${s}s left)"; }
exec > >(tee -a "$out/run.log") 2>&1
bash .gpu/setup.sh >/dev/null && . .gpu/env.sh || { echo 'setup failed'; exit 1; }
tar xJf .gpu/weft.tar.xz
{ nvidia-smi -L; node --version; python3 -c 'import torch, transformers; print(torch.__version__, transformers.__version__)'; } > "$out/env.txt" 2>&1
rc=0
timeout 60 node scripts/gpu/worker-probe.mjs 2 2>&1 | tee -a "$out/env.txt" || rc=1

if [[ "$what" =~ ^(all|check)$ ]] && stage plan-check; then
  timeout 90 node examples/dist/bench/gpu.js --plan-check fixtures --out "$out/plan-check.json" 2>&1 | grep -v 'artificially reduced' || rc=1
fi

ck=/tmp/weft-bench-tinyllama-1.1b-22l
if [[ "$what" =~ ^(all|bench)$ ]] && stage bench 120; then
  # The checkpoint first (weft writes it), then transformers in its own process, then weft.
  timeout 120 node examples/dist/bench/gpu.js --backend cpu --layers 22 --prompt 1 --decode 0 --batches 1 --no-torch --no-profile --write-only --out /tmp/unused.json 2>&1
  PYTHONUNBUFFERED=1 timeout "${TORCH_S:-200}" python3 scripts/gpu/torch_bench.py --model "$ck" --out "$out/torch.json" ${TORCH_ARGS:-} > /dev/null || echo "torch bench ended early (rc $?): rows so far kept"
  timeout "$(( $(left) > 60 ? $(left) - 30 : 30 ))" node examples/dist/bench/gpu.js --backend webgpu --torch-json "$out/torch.json" --tfjs-variants "${TFJS_VARIANTS:-default}" --plan-formats "${PLAN_FORMATS:-bf16,q4_0,fp32}" --no-profile --out "$out/bench.json" ${BENCH_ARGS:-} 2>&1 | grep -v 'artificially reduced' || rc=1
fi

if [[ "$what" =~ ^(all|check|exit)$ ]] && stage exit-test 30; then
  {
    for pin in 0 1; do
      codes=""
      for i in $(seq 1 "$([ $pin = 1 ] && echo "${EXIT_RUNS:-20}" || echo "${EXIT_RUNS_UNPINNED:-8}")"); do
        if [ "$pin" = 1 ]; then PIN_MODULE="$PWD/packages/layers/dist/index.js" timeout 30 node scripts/gpu/dawn-exit.mjs 2 vulkan >/dev/null 2>&1; else timeout 30 node scripts/gpu/dawn-exit.mjs 2 vulkan >/dev/null 2>&1; fi
        codes="$codes $?"
      done
      echo "dawn-exit (2 Vulkan threads) pin=$pin: exit codes$codes"
    done
    for pin in 0 1; do
      codes=""
      for i in $(seq 1 "$([ $pin = 1 ] && echo "${EXIT_RUNS:-20}" || echo "${EXIT_RUNS_UNPINNED:-4}")"); do
        [ "$(left)" -lt 15 ] && { codes="$codes (out of time)"; break; }
        WEFT_PIN="$pin" timeout 60 node scripts/gpu/exit-test.mjs fixtures/llama-tiny 2 >/dev/null 2>&1
        codes="$codes $?"
      done
      echo "weft logits at tp 2 on webgpu, pin=$pin: exit codes$codes"
    done
  } 2>&1 | tee "$out/exit.log"
fi

if [[ "$what" =~ ^(all|check)$ ]] && stage tfjs-check 40; then
  # One process per layout.
  rm -rf /tmp/weft-check && mkdir -p /tmp/weft-check
  for f in llama-tiny llama-bf16 deepseek-v3-tiny deepseek-v2-lite-tiny; do for tp in 1 2; do
    [ "$(left)" -lt 15 ] && { echo "SKIPPED tfjs check $f tp $tp"; continue; }
    timeout 60 node examples/dist/bench/gpu-check.js --backend webgpu --fixtures $f --tp $tp --out /tmp/weft-check/$f-tp$tp.json 2>&1 | grep -v 'artificially reduced' || rc=1
  done; done
  node -e 'const fs=require("fs");const d="/tmp/weft-check";const rows=fs.readdirSync(d).flatMap(f=>JSON.parse(fs.readFileSync(d+"/"+f)).rows);fs.writeFileSync(process.argv[1],JSON.stringify({date:new Date().toISOString(),backend:"webgpu",rows},null,1));console.log("parity:",rows.filter(r=>r.pass).length+"/"+rows.length,"cases pass")' "$out/check.json"
fi
echo "device.sh done in $(( $(date +%s) - start )) s, rc $rc"
exit $rc
