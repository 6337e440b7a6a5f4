"""A DeepSeek-V2-Lite-shaped checkpoint with random weights, written by transformers itself
(`DeepseekV2Config` → random init on the GPU in bf16 → `save_pretrained`), for bench:gpu's DeepSeek
stage (scripts/gpu/device.sh extra): weft's device plan and transformers eager read the same files.

The shape is V2-Lite's (config.json of deepseek-ai/DeepSeek-V2-Lite): hidden 2048, 16 heads, MLA with
kv_lora_rank 512 and no q lora, qk_nope 128, qk_rope 64, v_head 128, YaRN rope; layer 0 dense
(intermediate 10944), the others MoE with 64 routed experts top-6 (greedy, softmax) of 1408 plus 2 shared;
vocab 102400. `--layers` keeps the first N of its 27 layers (the per-layer shape is exact).

usage: python3 scripts/gpu/random_deepseek.py --dir DIR [--layers 27] [--shrink] [--experts N --topk K] [--latent]
  --shrink: hidden 256 / 8 experts top-2 / vocab 1000, to check this script and the benches on a CPU;
  --experts / --topk set the routed experts (e.g. --shrink --experts 64 --topk 6: V2-Lite's routing, small matrices);
  --latent keeps V2-Lite's MLA widths with --shrink (576-wide latent heads: the MLA prefill attention kernel).
"""
import argparse
import json
import os
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM

V2_LITE = dict(
    architectures=["DeepseekV2ForCausalLM"],
    model_type="deepseek_v2",
    hidden_size=2048,
    intermediate_size=10944,
    moe_intermediate_size=1408,
    num_hidden_layers=27,
    num_attention_heads=16,
    num_key_value_heads=16,
    n_routed_experts=64,
    n_shared_experts=2,
    num_experts_per_tok=6,
    first_k_dense_replace=1,
    moe_layer_freq=1,
    n_group=1,
    topk_group=1,
    topk_method="greedy",
    scoring_func="softmax",
    norm_topk_prob=False,
    routed_scaling_factor=1.0,
    kv_lora_rank=512,
    q_lora_rank=None,
    qk_nope_head_dim=128,
    qk_rope_head_dim=64,
    v_head_dim=128,
    vocab_size=102400,
    max_position_embeddings=163840,
    rms_norm_eps=1e-6,
    rope_theta=10000.0,
    rope_scaling=dict(type="yarn", rope_type="yarn", factor=40.0, original_max_position_embeddings=4096, beta_fast=32, beta_slow=1, mscale=0.707, mscale_all_dim=0.707),
    tie_word_embeddings=False,
    hidden_act="silu",
    attention_bias=False,
    bos_token_id=100000,
    eos_token_id=100001,
)

SHRUNK = dict(hidden_size=256, intermediate_size=512, moe_intermediate_size=128, num_attention_heads=4, num_key_value_heads=4, n_routed_experts=8, num_experts_per_tok=2, kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32, vocab_size=1000, bos_token_id=1, eos_token_id=2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--layers", type=int, default=27)
    ap.add_argument("--shrink", action="store_true")
    ap.add_argument("--experts", type=int, help="routed experts (with --shrink: V2-Lite's 64 keep the routing's shape)")
    ap.add_argument("--topk", type=int, help="experts per token")
    ap.add_argument("--latent", action="store_true", help="with --shrink: V2-Lite's MLA widths (kv_lora 512, rope 64: the 576-wide latent heads)")
    a = ap.parse_args()
    if a.layers < 2:
        sys.exit("--layers: at least 2 (the dense first layer and one MoE layer)")
    fields = dict(V2_LITE, num_hidden_layers=a.layers, **(SHRUNK if a.shrink else {}))
    if a.experts:
        fields["n_routed_experts"] = a.experts
    if a.topk:
        fields["num_experts_per_tok"] = a.topk
    if a.latent:
        fields.update(kv_lora_rank=V2_LITE["kv_lora_rank"], qk_rope_head_dim=V2_LITE["qk_rope_head_dim"])
    config = transformers.DeepseekV2Config(**{k: v for k, v in fields.items() if k != "architectures"})
    config.architectures = fields["architectures"]
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    torch.manual_seed(0)
    with torch.device(dev):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    t1 = time.perf_counter()
    model.save_pretrained(a.dir, max_shard_size="4GB")
    with open(os.path.join(a.dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": fields["bos_token_id"], "eos_token_id": fields["eos_token_id"]}, f)
    print(json.dumps({"dir": a.dir, "layers": a.layers, "params": params, "initS": round(t1 - t0, 1), "saveS": round(time.perf_counter() - t1, 1)}))


if __name__ == "__main__":
    main()
