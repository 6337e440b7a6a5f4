"""(weft: the MoE fixtures beside ../shared/fixtures' qwen3-moe-tiny and mixtral-tiny, made the way
../shared/tools/make_family_fixtures.py makes those: random weights, transformers float64 forward on CPU,
eager attention and experts, no KV cache.)

Shapes the dev fixtures do not cover: expert counts that EP 2 and EP 4 do not divide (and fewer experts
than EP ranks), one KV head that tp 2 must replicate, head_dim apart from hidden/heads, dense layers among
sparse ones (mlp_only_layers), norm_topk_prob false, attention biases, a tied head, a sliding window
shorter than the prompt (Mixtral, and Qwen3-MoE's use_sliding_window).

usage: /work/venv/bin/python tools/make_moe_fixtures.py OUTDIR [name ...]
"""
import json, os, sys
import torch
import transformers

OUT = sys.argv[1]
ONLY = set(sys.argv[2:])
print("transformers", transformers.__version__, "torch", torch.__version__)


def randomize(model, std, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))


def reference(model, prompts, new_tokens):
    cases = []
    with torch.no_grad():
        for ids in prompts:
            logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
            seq, margins = list(ids), []
            for _ in range(new_tokens):
                lg = model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1]
                t2 = torch.topk(lg, 2).values
                margins.append(float(t2[0] - t2[1]))
                seq.append(int(torch.argmax(lg)))
            cases.append({"input_ids": ids, "logits_shape": list(logits.shape),
                          "logits": [float(v) for v in logits.flatten()],
                          "greedy": seq[len(ids):], "greedy_min_margin": min(margins)})
    return cases


def make(name, cfg_cls, model_cls, seed, std=0.08, lens=(7, 19), **kw):
    if ONLY and name not in ONLY:
        return
    cfg = getattr(transformers, cfg_cls)(**kw)
    cfg._attn_implementation = "eager"
    cfg._experts_implementation = "eager"
    torch.manual_seed(seed)
    m = getattr(transformers, model_cls)(cfg)
    randomize(m, std, seed)
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    m = m.to(torch.float32)
    m.save_pretrained(d, safe_serialization=True)
    g = torch.Generator().manual_seed(seed + 1000)
    prompts = [torch.randint(0, cfg.vocab_size, (n,), generator=g).tolist() for n in lens]
    cases = reference(m.to(torch.float64).eval(), prompts, 8)
    json.dump({"model": name, "architecture": model_cls, "dtype": "float32",
               "reference": f"transformers {transformers.__version__}, float64 forward on CPU, eager attention, no KV cache",
               "cases": cases}, open(os.path.join(d, "expected.json"), "w"))
    print(name, "params", sum(p.numel() for p in m.parameters()), "margins", [round(c["greedy_min_margin"], 4) for c in cases])


small = dict(vocab_size=384, max_position_embeddings=256, rms_norm_eps=1e-6, rope_theta=10000.0)
# 5 experts (EP 2: 3 + 2, EP 4: 2 + 1 + 1 + 1), top-3 without renormalisation, one KV head (tp 2 replicates it),
# head_dim 24 ≠ 96 / 6, a dense layer (mlp_only_layers) between sparse ones, q/k/v/o biases, tied head.
make("qwen3-moe-5e-dense", "Qwen3MoeConfig", "Qwen3MoeForCausalLM", 41, hidden_size=96, intermediate_size=160,
     num_hidden_layers=4, num_attention_heads=6, num_key_value_heads=1, head_dim=24, num_experts=5,
     num_experts_per_tok=3, moe_intermediate_size=48, norm_topk_prob=False, decoder_sparse_step=1,
     mlp_only_layers=[2], attention_bias=True, tie_word_embeddings=True, **small)
# Qwen3-MoE with use_sliding_window: transformers 5.18 slides every layer (window 6 < the 19-token prompt).
make("qwen3-moe-swa", "Qwen3MoeConfig", "Qwen3MoeForCausalLM", 44, hidden_size=64, intermediate_size=96,
     num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_experts=4,
     num_experts_per_tok=2, moe_intermediate_size=32, norm_topk_prob=True, use_sliding_window=True,
     sliding_window=6, tie_word_embeddings=False, **small)
# 3 experts (EP 2: 2 + 1; EP 4: one rank holds none), top-2.
make("mixtral-3e", "MixtralConfig", "MixtralForCausalLM", 42, hidden_size=64, intermediate_size=96,
     num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, num_local_experts=3,
     num_experts_per_tok=2, sliding_window=None, tie_word_embeddings=False, **small)
# Mistral's sliding window (8) on every layer, shorter than the 19-token prompt.
make("mixtral-swa-tiny", "MixtralConfig", "MixtralForCausalLM", 43, hidden_size=64, intermediate_size=96,
     num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
     num_experts_per_tok=2, sliding_window=8, tie_word_embeddings=False, **small)
