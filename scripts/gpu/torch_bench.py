"""Hugging Face transformers (PyTorch) on the same checkpoint as weft's GPU
bench: prefill tokens/s for one prompt and greedy decode tokens/s at each
batch, per dtype; eager, and with a static KV cache + torch.compile (what
`generation_config.cache_implementation = "static"` gives: generate compiles
the decode forward with CUDA graphs). Prints one JSON object on stdout and,
with --out, rewrites that file after every row (a time limit keeps the rows
done); progress on stderr.

usage: python3 scripts/gpu/torch_bench.py --model DIR [--prompt 512] [--decode 32]
         [--batches 1,16] [--dtypes float32,bfloat16] [--static float32:1,bfloat16:1,bfloat16:16] [--out FILE]
"""
import argparse
import json
import statistics
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM


def log(msg):
    print(f"[torch-bench] {msg}", file=sys.stderr, flush=True)


# CUDA on the GPU machine; the CPU only to check this script elsewhere.
DEV = "cuda" if torch.cuda.is_available() else "cpu"


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def timed(fn, reps):
    out = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--static", default="float32:1,bfloat16:1,bfloat16:16", help="dtype:batch pairs for static cache + compile ('' for none)")
    ap.add_argument("--out")
    a = ap.parse_args()
    static = [(d, int(b)) for d, b in (x.split(":") for x in a.static.split(",") if x)]
    vocab = transformers.AutoConfig.from_pretrained(a.model).vocab_size
    g = torch.Generator().manual_seed(0)
    rows = []
    for dt_name in a.dtypes.split(","):
        dtype = getattr(torch, dt_name)
        log(f"loading {a.model} as {dt_name}")
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype, attn_implementation="eager").to(DEV).eval()
        prompt = torch.randint(3, vocab, (1, a.prompt), generator=g).to(DEV)
        with torch.inference_mode():
            model(prompt)  # warm-up
            prefill_s = timed(lambda: model(prompt), 5)
            for b in map(int, a.batches.split(",")):
                short = torch.randint(3, vocab, (b, 8), generator=g).to(DEV)
                gen = dict(do_sample=False, pad_token_id=0, eos_token_id=None)

                def run(n):
                    return model.generate(short, max_new_tokens=n, min_new_tokens=n, **gen)

                run(4)  # warm-up
                long_s = timed(lambda: run(a.decode + 1), 3)
                one_s = timed(lambda: run(1), 3)
                decode_tok_s = b * a.decode / max(1e-9, long_s - one_s)
                row = {
                    "engine": f"transformers eager {dt_name}",
                    "dtype": dt_name,
                    "batch": b,
                    "experts": getattr(model.config, "_experts_implementation", None),
                    "prefill_tok_s": round(a.prompt / prefill_s, 1),
                    "decode_tok_s": round(decode_tok_s, 2),
                }
                rows.append(row)
                log(json.dumps(row))
                flush(a, rows)
            for b in [b for d, b in static if d == dt_name]:
                short = torch.randint(3, vocab, (b, 8), generator=g).to(DEV)
                gen = dict(do_sample=False, pad_token_id=0, eos_token_id=None, cache_implementation="static")

                def run_static(n):
                    return model.generate(short, max_new_tokens=n, min_new_tokens=n, **gen)

                t0 = time.perf_counter()
                run_static(a.decode + 1)  # compiles (CUDA graphs) for this batch
                run_static(a.decode + 1)
                log(f"static cache + compile, {dt_name} batch {b}: warm-up {time.perf_counter() - t0:.1f} s")
                long_s = timed(lambda: run_static(a.decode + 1), 3)
                one_s = timed(lambda: run_static(1), 3)
                row = {
                    "engine": f"transformers static cache + compile {dt_name}",
                    "dtype": dt_name,
                    "batch": b,
                    "prefill_tok_s": None,
                    "decode_tok_s": round(b * a.decode / max(1e-9, long_s - one_s), 2),
                }
                rows.append(row)
                log(json.dumps(row))
                flush(a, rows)
        del model
        if DEV == "cuda":
            torch.cuda.empty_cache()
    print(json.dumps(summary(rows)))


def summary(rows):
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": torch.cuda.get_device_name(0) if DEV == "cuda" else "cpu",
        "rows": rows,
    }


def flush(a, rows):
    if a.out:
        with open(a.out + ".tmp", "w") as f:
            f.write(json.dumps(summary(rows)) + "\n")
        import os
        os.replace(a.out + ".tmp", a.out)


if __name__ == "__main__":
    main()
