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
# `extra` (issue 20's measurements beside the bench; one call, DEADLINE_S default 420 there):
#   6. the per-step cost of each collective of the WebGPU plan at tp 2, two ranks on one GPU (collectives.json)
#   7. a DeepSeek-V2-Lite-shaped checkpoint (DS_LAYERS layers of the exact per-layer shape, default 4: the
#      dense first + 3 MoE; a list such as "4 2" runs each and the later ones give the MoE layer's cost and
#      the 27-layer model by difference), random, written by transformers on the GPU; transformers eager
#      bf16 and weft's engine on webgpu (dtype bfloat16, the device plan) at batch 1 and 16 plus prefill
#      (deepseek-<layers>l.json)
#   8. bench:serving's GPU mode: 64 requests (prompts 32–256, 64 output tokens each) through weft's engine on
#      webgpu (bf16, fp32) and transformers' continuous batching (generate_batch, fp32, bf16) on bench:gpu's
#      TinyLlama checkpoint (serving.json: weft's rows, transformers' rows, the ratio)
#   EXTRA names the extra stages to run (default "collectives deepseek serving").
#   DS_ARGS adds options to the DeepSeek bench (e.g. --profile: the plan's GPU time per kernel tag).
# `step` (issue 20's decode step end to end, examples/src/bench/gpu-step.ts): the GPU's clocks and power every
#   50 ms (clocks.csv) while bench gpu-step runs on bench:gpu's checkpoint (gpu-step.json; STEP_ARGS adds
#   options, e.g. --variants), then the device plan's parity (plan-check.json). DEADLINE_S default 300 there.
# `gemv` (issue 20's GEMV shapes, clocks logged as in `step`): bench gpu-kernels sweeps TinyLlama's linears per
#   format × rows × GEMV shape (SWEEP_FORMATS default bf16,q4_0,q8_0; SWEEP_ROWS 1,16; SWEEP_SHAPES; SWEEP_S: its
#   time budget, default 180 s; SWEEP_WARM_MS: ms of the same work before each point, default 100; SWEEP_STREAM_MB: each point runs copies of
#   its linear totalling this many MB, streamed from HBM as in a step, default 120, 0 = one L2-resident matrix) and writes the fastest shape per linear (gemv-choice.json); then bench gpu-step runs
#   whole decode steps with the defaults and the variants `convert` (int → float weight decoding) and `swept` (the
#   sweep's shapes) (gpu-step.json; STEP_FORMATS default bf16,q4_0,q8_0; STEP_ARGS adds options); then plan-check.
#   DEADLINE_S default 540 there.
#   usage: bash scripts/gpu/device.sh [all|check|bench|exit|extra|step|gemv]   (default all; check = 2, 4, 5; exit = 4)
set -uo pipefail
what="${1:-all}"
out="${OUT:-gpu-out}"; mkdir -p "$out"
start=$(date +%s)
deadline="${DEADLINE_S:-$([ "$what" = extra ] && echo 420 || { [ "$what" = step ] && echo 300; } || echo 540)}"
left() { echo $(( deadline - ($(date +%s) - start) )); }
want() { [ "$what" = extra ] && [[ " ${EXTRA:-collectives deepseek serving} " == *" $1 "* ]]; }
stage() { local s; s=$(left); if [ "$s" -lt "${2:-20}" ]; then echo "SKIPPED $1: ${s}s left"; return 1; fi; echo "== $1 (${s}s left)"; }
exec > >(tee -a "$out/run.log") 2>&1
bash .gpu/setup.sh >/dev/null && . .gpu/env.sh || { echo 'setup failed'; exit 1; }
tar xJf .gpu/weft.tar.xz
{ nvidia-smi -L; node --version; python3 -c 'import torch, transformers; print(torch.__version__, transformers.__version__)'; } > "$out/env.txt" 2>&1
rc=0
timeout 60 node scripts/gpu/worker-probe.mjs 2 2>&1 | tee -a "$out/env.txt" || rc=1

# The GPU's clocks, power and utilisation every 50 ms into clocks.csv (pid in $smi).
clocks_start() {
  local q=timestamp,pstate,clocks.sm,clocks.mem,power.draw,utilization.gpu,temperature.gpu
  nvidia-smi --query-gpu=$q,clocks_event_reasons.active --format=csv -lms 50 > "$out/clocks.csv" 2>&1 &
  smi=$!
  sleep 0.5
  kill -0 "$smi" 2>/dev/null || { nvidia-smi --query-gpu=$q --format=csv -lms 50 > "$out/clocks.csv" 2>&1 & smi=$!; }
}

ck=/tmp/weft-bench-tinyllama-1.1b-22l
if [ "$what" = gemv ] && stage gemv-sweep 120; then
  clocks_start
  timeout 120 node examples/dist/bench/gpu.js --backend cpu --layers 22 --prompt 1 --decode 0 --batches 1 --no-torch --no-profile --write-only --out /tmp/unused.json 2>&1 &
  ckw=$!
  sweep_s="${SWEEP_S:-180}"
  timeout "$(( sweep_s + 60 ))" node examples/dist/bench/gpu-kernels.js --formats "${SWEEP_FORMATS:-bf16,q4_0,q8_0}" --rows "${SWEEP_ROWS:-1,16}" \
    --shapes "${SWEEP_SHAPES:-default,convert,64x1,64x2,64x4,64x8,32x2,32x4,32x8,16x4,16x8,128x1,128x2,128x4,256x1,64x2u2,64x4u2,128x2u2,128x1u4,32x4sg,32x8sg}" \
    --gemm-rows "" --attention-rows "" --warm-ms "${SWEEP_WARM_MS:-100}" --stream-mb "${SWEEP_STREAM_MB:-120}" --budget-s "$sweep_s" --choice-out "$out/gemv-choice.json" --out "$out/gpu-kernels.json" 2>&1 | grep -v 'artificially reduced\|^\[gpu-kernels\] {' || rc=1
  wait "$ckw"
  if stage gpu-step 100; then
    timeout "$(( $(left) > 100 ? $(left) - 60 : 30 ))" node examples/dist/bench/gpu-step.js --dir "$ck" --formats "${STEP_FORMATS:-bf16,q4_0,q8_0}" --rows 1,16 --chunk-rows '' \
      $([ -f "$out/gemv-choice.json" ] && echo --gemv-table "$out/gemv-choice.json") --variants convert,swept --out "$out/gpu-step.json" ${STEP_ARGS:-} 2>&1 | grep -v 'artificially reduced' || rc=1
  fi
  kill "$smi" 2>/dev/null
fi

if [ "$what" = step ] && stage gpu-step 60; then
  clocks_start
  timeout 120 node examples/dist/bench/gpu.js --backend cpu --layers 22 --prompt 1 --decode 0 --batches 1 --no-torch --no-profile --write-only --out /tmp/unused.json 2>&1
  timeout "$(( $(left) > 100 ? $(left) - 70 : 30 ))" node examples/dist/bench/gpu-step.js --dir "$ck" --out "$out/gpu-step.json" ${STEP_ARGS:-} 2>&1 | grep -v 'artificially reduced' || rc=1
  kill "$smi" 2>/dev/null
fi

if [[ "$what" =~ ^(all|check|step|gemv)$ ]] && stage plan-check; then
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
if want collectives && stage collectives 60; then
  timeout 90 node examples/dist/bench/gpu-collectives.js --out "$out/collectives.json" 2>&1 | grep -v 'artificially reduced' || rc=1
fi

if want deepseek && stage deepseek 100; then
  first=""
  for n in ${DS_LAYERS:-4}; do
    [ -n "$first" ] && ! stage "deepseek ${n} layers" 70 && continue
    ds=/tmp/weft-bench-deepseek-v2-lite-${n}l
    PYTHONUNBUFFERED=1 timeout 120 python3 scripts/gpu/random_deepseek.py --dir "$ds" --layers "$n" 2>&1 | grep -v '^Writing\|it/s\]' || rc=1
    PYTHONUNBUFFERED=1 timeout 120 python3 scripts/gpu/torch_bench.py --model "$ds" --dtypes bfloat16 --static '' --out /tmp/deepseek-torch.json > /dev/null || echo "torch deepseek bench ended early (rc $?): rows so far kept"
    # A second layer count gives the MoE layer's own cost (the difference) and the 27-layer model from it.
    timeout "$(( $(left) > 200 ? 180 : $(left) > 40 ? $(left) - 20 : 20 ))" node examples/dist/bench/gpu-deepseek.js --dir "$ds" --torch-json /tmp/deepseek-torch.json ${first:+--compare "$out/deepseek-${first}l.json"} --out "$out/deepseek-${n}l.json" ${DS_ARGS:-} 2>&1 | grep -v 'artificially reduced' || rc=1
    rm -rf "$ds" /tmp/deepseek-torch.json
    first=${first:-$n}
  done
fi

if want serving && stage serving 90; then
  # bench:gpu's TinyLlama checkpoint (weft writes it), then weft bf16 (writes the request set), transformers on
  # the same requests, weft fp32 (with transformers' rows beside it).
  [ -f "$ck/model.safetensors.index.json" ] || timeout 120 node examples/dist/bench/gpu.js --backend cpu --layers 22 --prompt 1 --decode 0 --batches 1 --no-torch --no-profile --write-only --out /tmp/unused.json 2>&1
  sv=(--backend webgpu --model "$ck" --requests 64 --min-out 64 --max-out 64 --max-num-seqs 64 --rates '' --no-sequential)
  timeout 150 node examples/dist/bench/serving.js "${sv[@]}" --format bf16 --requests-out /tmp/serving-requests.json --out /tmp/serving-weft-bf16.json 2>&1 | grep -v 'artificially reduced' || rc=1
  PYTHONUNBUFFERED=1 timeout 120 python3 scripts/gpu/torch_serving.py --model "$ck" --requests /tmp/serving-requests.json --out /tmp/serving-torch.json > /dev/null || echo "torch serving ended early (rc $?): rows so far kept"
  [ "$(left)" -gt 40 ] && { timeout "$(( $(left) - 15 ))" node examples/dist/bench/serving.js "${sv[@]}" --format f32 --torch-json /tmp/serving-torch.json --out /tmp/serving-weft-fp32.json 2>&1 | grep -v 'artificially reduced' || rc=1; }
  node -e 'const fs=require("fs");const rd=(f)=>{try{const t=fs.readFileSync(f,"utf8").trim();try{return JSON.parse(t)}catch{return JSON.parse(t.split("\n").pop())}}catch{return null}};const w=[rd("/tmp/serving-weft-bf16.json"),rd("/tmp/serving-weft-fp32.json")].filter(Boolean);const t=rd("/tmp/serving-torch.json");const rows=[...w.flatMap(x=>x.rows.map(r=>({engine:"weft webgpu "+(x===w[0]?"bf16":"fp32")+" ("+x.stepPath+")",...r,stepProbe:x.stepProbe}))),...(t?t.rows:[])];const best=Math.max(...(t?t.rows:[]).map(r=>r.outputTokensPerSecond));for(const r of rows)console.log(r.engine+": "+r.outputTokensPerSecond+" out tok/s"+(r.engine.startsWith("weft")&&isFinite(best)?" = "+(r.outputTokensPerSecond/best).toFixed(2)+"x the better transformers row":""));fs.writeFileSync(process.argv[1],JSON.stringify({date:new Date().toISOString(),rows,transformers:t,weft:w},null,1))' "$out/serving.json"
fi
echo "device.sh done in $(( $(date +%s) - start )) s, rc $rc"
exit $rc
