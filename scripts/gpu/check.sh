#!/usr/bin/env bash
# One command, development side, for the WebGPU parity check + GPU bench:
#   bash scripts/gpu/check.sh        # builds, packs .gpu/ (node, Vulkan loader, weft bundle)
# then one device run (the `run` tool), carry [".gpu"], command:
#   bash scripts/gpu/device.sh all   # or: check | bench
# Logs and JSON come back under $OUT: check.json/.log (parity at tp 1 and 2),
# bench.json/.log, torch.json, probe.log (Dawn in worker threads), env.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/gpu/bundle.sh
a=$(git ls-files -co --exclude-standard -z | xargs -0 stat -c %s | paste -sd+ | bc)
b=$(du -sb .gpu | cut -f1)
echo "working tree + .gpu = $(( (a + b) / 1048576 )) MiB (a run carries at most 64 MiB)"
echo 'now: run(command="bash scripts/gpu/device.sh all", carry=[".gpu"], timeout_s=600)'
