#!/usr/bin/env bash
# A device run sends the whole working tree (64 MiB at most) and the fixtures, the embedded model and
# .gpu/ are more than that. `stash` moves what the GPU machine does not read (every fixture but the Llama,
# Mistral and DeepSeek ones device.sh checks, and models/) out of the tree for the call; `restore` puts it
# back. While stashed, /work/notes/DEVICE_RUN exists: tests on the moved fixtures fail until `restore`.
#   usage (repo root): bash scripts/gpu/slim-tree.sh stash|restore|size
set -euo pipefail
cd "$(dirname "$0")/../.."
stash="${WEFT_DEVICE_STASH:-$(cd .. && pwd)/.device-stash}"
flag="${WEFT_DEVICE_FLAG:-$(cd .. && pwd)/notes/DEVICE_RUN}"
keep='^(llama-.*|mistral-.*|deepseek-v3-tiny|deepseek-v2-lite-tiny)$'
size() { { git ls-files -z; git ls-files -z --others --exclude-standard; } | (xargs -0 stat -c %s 2>/dev/null || true) | awk -v g="$(du -sb .gpu 2>/dev/null | cut -f1)" '{s+=$1} END {printf "tree %.1f MiB + .gpu %.1f MiB = %.1f MiB (limit 64)\n", s/1048576, g/1048576, (s+g)/1048576}'; }
case "${1:-}" in
  stash)
    [ -e "$flag" ] && { echo "already stashed ($flag)"; exit 1; }
    mkdir -p "$stash/fixtures" "$(dirname "$flag")"
    date -u +"%H:%M stashed by $$" > "$flag"
    for d in fixtures/*/; do n=$(basename "$d"); [[ "$n" =~ $keep ]] || mv "$d" "$stash/fixtures/"; done
    mv models "$stash/models"
    size ;;
  restore)
    [ -d "$stash/models" ] && mv "$stash/models" models
    for d in "$stash"/fixtures/*/; do [ -d "$d" ] && mv "$d" fixtures/; done
    rm -f "$flag"; git status --short fixtures models | head -5; echo restored ;;
  size) size ;;
  *) echo "usage: $0 stash|restore|size"; exit 2 ;;
esac
