"""(weft: the dense-family fixtures beside ../shared/fixtures' qwen2-tiny, qwen3-tiny, phi3-tiny, gemma2-tiny and
mistral-swa-tiny, made the way ../shared/tools/make_family_fixtures.py makes those: random weights, transformers
float64 forward on CPU, eager attention, no KV cache.)

Shapes the dev fixtures do not cover: Qwen2's sliding window on the layers from max_window_layers on (shorter
than the prompt) with a tied head and 12 query heads over 2 KV heads (tp 4 replicates them, tp 3 can do
neither); Phi-3 with one KV head in the fused qkv_proj (every tp > 1 replicates it) and partial rotary; Qwen3
with q/k/v/o biases beside q/k norm, head_dim 48 and 4 KV heads, tied; Gemma 2 untied, one KV head, window 5,
other soft-caps and query_pre_attn_scalar.

usage: /work/venv/bin/python tools/make_dense_family_fixtures.py OUTDIR [name ...]
"""
import json, os, sys
import torch
import transformers

OUT = sys.argv[1]
ONLY = set(sys.argv[2:])
print("transformers", transformers.__version__, "torch", torch.__version__)


def randomize(model, std, seed, norm_center):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(norm_center + 0.1 * torch.randn(p.shape, generator=g))
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


def make(name, cfg_cls, model_cls, seed, std=0.08, lens=(7, 19), norm_center=1.0, **kw):
    if ONLY and name not in ONLY:
        return
    cfg = getattr(transformers, cfg_cls)(**kw)
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    m = getattr(transformers, model_cls)(cfg)
    randomize(m, std, seed, norm_center)
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
make("qwen2-swa-tied", "Qwen2Config", "Qwen2ForCausalLM", 51, hidden_size=192, intermediate_size=256,
     num_hidden_layers=3, num_attention_heads=12, num_key_value_heads=2, use_sliding_window=True,
     sliding_window=6, max_window_layers=1, tie_word_embeddings=True, **small)
make("phi3-mqa-partial", "Phi3Config", "Phi3ForCausalLM", 52, hidden_size=128, intermediate_size=192,
     num_hidden_layers=3, num_attention_heads=8, num_key_value_heads=1, partial_rotary_factor=0.5,
     pad_token_id=0, tie_word_embeddings=False, **small)
make("qwen3-bias-tied", "Qwen3Config", "Qwen3ForCausalLM", 53, hidden_size=128, intermediate_size=192,
     num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4, head_dim=48, attention_bias=True,
     tie_word_embeddings=True, **small)
make("gemma2-mqa-untied", "Gemma2Config", "Gemma2ForCausalLM", 54, norm_center=0.0, hidden_size=64,
     intermediate_size=96, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=1, head_dim=24,
     sliding_window=5, attn_logit_softcapping=20.0, final_logit_softcapping=15.0, query_pre_attn_scalar=24,
     hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=False, **small)
