"""bench:serving's GPU mode, the transformers side: the request set that
`examples/dist/bench/serving.js --requests-out FILE` wrote (token ids and output
lengths), all queued at once through transformers' continuous batching
(`model.generate_batch`, paged attention, greedy, every output forced to its
length), per dtype, on the checkpoint weft serves in the same run. One warm-up
batch first (CUDA graphs, allocator). Output tokens/s = generated tokens ÷ wall
time of the timed call. Rewrites --out after every row (a time limit keeps the
rows done); progress on stderr.

usage: python3 scripts/gpu/torch_serving.py --model DIR --requests FILE [--dtypes float32,bfloat16] [--out FILE]
"""
import argparse
import inspect
import json
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM, GenerationConfig


def log(msg):
    print(f"[torch-serving] {msg}", file=sys.stderr, flush=True)


def cpu_check_config():
    """Without CUDA (a check of this script on a CPU), continuous batching sizes its cache from GPU memory: give it one."""
    from transformers.generation.continuous_batching import cache

    cache.PagedAttentionMemoryHandler.get_available_memory = lambda self: 2 << 30
    return transformers.ContinuousBatchingConfig(num_blocks=512, max_batch_tokens=512)


def run_batch(model, prompts, out_lens, cb_config):
    n = max(out_lens)
    gc = GenerationConfig(max_new_tokens=n, min_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0)
    kw = {}
    if cb_config is not None and "continuous_batching_config" in inspect.signature(model.generate_batch).parameters:
        kw["continuous_batching_config"] = cb_config
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model.generate_batch(inputs=prompts, generation_config=gc, **kw)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    tokens = sum(len(o.generated_tokens) for o in out.values())
    return wall, tokens, len(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--requests", required=True, help="JSON: [{promptTokenIds: [...], maxTokens: n}, ...]")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--out")
    a = ap.parse_args()
    reqs = json.load(open(a.requests))
    prompts = [r["promptTokenIds"] for r in reqs]
    out_lens = [int(r["maxTokens"]) for r in reqs]
    if len(set(out_lens)) != 1:
        sys.exit(f"--requests {a.requests}: every request needs the same maxTokens (one generation config), got {sorted(set(out_lens))}")
    cuda = torch.cuda.is_available()
    cb_config = None if cuda else cpu_check_config()
    rows = []
    info = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "requests": len(reqs),
        "promptTokens": sum(map(len, prompts)),
        "outputTokens": sum(out_lens),
        "rows": rows,
    }
    for dt_name in a.dtypes.split(","):
        dtype = getattr(torch, dt_name)
        t0 = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype, attn_implementation="sdpa")
        model = (model.cuda() if cuda else model).eval()
        log(f"{dt_name}: loaded in {time.perf_counter() - t0:.1f} s")
        # No inference_mode here: continuous batching runs the model in its own thread.
        warm_s, _, _ = run_batch(model, [p[:32] for p in prompts[:8]], [4] * 8, cb_config)
        log(f"{dt_name}: warm-up {warm_s:.1f} s")
        wall, tokens, done = run_batch(model, prompts, out_lens, cb_config)
        row = {
            "engine": f"transformers continuous batching (generate_batch) {dt_name}",
            "dtype": dt_name,
            "requests": done,
            "outputTokens": tokens,
            "seconds": round(wall, 3),
            "outputTokensPerSecond": round(tokens / wall, 1),
            "warmupS": round(warm_s, 2),
            "complete": tokens == sum(out_lens),
            "attn": getattr(model.config, "_attn_implementation", None),
        }
        rows.append(row)
        log(json.dumps(row))
        if a.out:
            with open(a.out, "w") as f:
                f.write(json.dumps(info) + "\n")
        del model
        if cuda:
            torch.cuda.empty_cache()
    print(json.dumps(info))


if __name__ == "__main__":
    main()
