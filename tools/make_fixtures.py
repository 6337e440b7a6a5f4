"""(weft: a copy of ../shared/tools/make_fixtures.py with a name filter and weft's own shapes.)

Reference fixtures from Hugging Face transformers: tiny random Llama and
DeepSeek checkpoints (HF layout: config.json + model.safetensors), token ids,
expected logits and greedy continuations, plus a byte-level BPE tokenizer.json
with expected encodings. Run where torch + transformers + tokenizers exist.

usage: python3 make_fixtures.py OUTDIR

Add your own configurations at the bottom of each family (keep seeds fixed).
The committed fixtures were made with transformers 5.17.0 and torch 2.11.0.
Afterwards the deepseek-v3-tiny config.json was rewritten in the older hub
style (rope_theta + rope_scaling instead of rope_parameters): loaders must
accept both.
"""
import json, os, sys, math
import torch
import transformers
from transformers import (LlamaConfig, LlamaForCausalLM)

OUT = sys.argv[1]
ONLY = set(sys.argv[2].split(",")) if len(sys.argv) > 2 else None
os.makedirs(OUT, exist_ok=True)
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
print("transformers", transformers.__version__, "torch", torch.__version__)


def randomize(model, std, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("layernorm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))
        for name, b in model.named_buffers():
            if "e_score_correction_bias" in name:
                b.copy_(0.05 * torch.randn(b.shape, generator=g))


def reference(model, prompts, new_tokens, ref_dtype=torch.float64):
    """forward on full sequences (no cache) in ref_dtype: logits + greedy tokens."""
    m = model.to(ref_dtype).eval()
    cases = []
    with torch.no_grad():
        for ids in prompts:
            x = torch.tensor([ids])
            logits = m(input_ids=x, use_cache=False).logits[0]
            seq = list(ids)
            margins = []
            for _ in range(new_tokens):
                lg = m(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1]
                top2 = torch.topk(lg, 2).values
                margins.append(float(top2[0] - top2[1]))
                seq.append(int(torch.argmax(lg)))
            cases.append({
                "input_ids": ids,
                "logits_shape": list(logits.shape),
                "logits": [float(v) for v in logits.flatten()],
                "greedy": seq[len(ids):],
                "greedy_min_margin": min(margins),
            })
    return cases


def save(name, model, cfg_extra, prompts, new_tokens=8, dtype=torch.float32):
    if ONLY is not None and name not in ONLY:
        return
    try:
        return _save(name, model, cfg_extra, prompts, new_tokens, dtype, torch.float64)
    except RuntimeError as e:
        print(name, "float64 reference failed, using float32:", str(e)[:120])
        return _save(name, model, cfg_extra, prompts, new_tokens, dtype, torch.float32)


def _save(name, model, cfg_extra, prompts, new_tokens, dtype, ref_dtype):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    model = model.to(dtype)
    model.save_pretrained(d, safe_serialization=True)
    # reference computed from exactly the saved (possibly rounded) weights
    cases = reference(model.to(torch.float32), prompts, new_tokens, ref_dtype)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"model": name, "dtype": str(dtype).replace("torch.", ""),
                   "reference": f"transformers {transformers.__version__}, {str(ref_dtype).replace('torch.', '')} forward on CPU, no KV cache",
                   **cfg_extra, "cases": cases}, f)
    print(name, "params", sum(p.numel() for p in model.parameters()),
          "margins", [round(c["greedy_min_margin"], 4) for c in cases],
          "logit std", round(float(torch.tensor(cases[0]["logits"]).std()), 3))


g = torch.Generator().manual_seed(1234)
def prompts_for(vocab, lens):
    return [torch.randint(0, vocab, (n,), generator=g).tolist() for n in lens]

# ---------------- Llama family ----------------
def llama(name, seed, std=0.08, dtype=torch.float32, **kw):
    base = dict(vocab_size=512, hidden_size=128, intermediate_size=344,
                num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2,
                max_position_embeddings=512, rms_norm_eps=1e-5, rope_theta=10000.0,
                tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
                hidden_act="silu")
    base.update(kw)
    cfg = LlamaConfig(**base)
    torch.manual_seed(seed)
    m = LlamaForCausalLM(cfg)
    randomize(m, std, seed)
    save(name, m, {}, prompts_for(cfg.vocab_size, [7, 19]), dtype=dtype)

llama("llama-tiny", 1)
llama("llama-bf16", 3, dtype=torch.bfloat16, num_hidden_layers=2)
# weft: one KV head (MQA), tied embeddings, a vocab that is not a multiple of 64, llama3 rope scaling
try:
  llama("llama-mqa-tied-llama3", 5, vocab_size=500, num_key_value_heads=1, tie_word_embeddings=True,
      num_hidden_layers=3, max_position_embeddings=256,
      rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0, "original_max_position_embeddings": 32})
except Exception:
    import traceback; print("FAILED", traceback.format_exc()[-1500:])

# ---------------- DeepSeek family ----------------
try:
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM
    def ds3(name, seed, std=0.08, **kw):
        base = dict(vocab_size=512, hidden_size=128, intermediate_size=256,
                    moe_intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                    num_key_value_heads=4, n_shared_experts=1, n_routed_experts=8,
                    num_experts_per_tok=2, n_group=4, topk_group=2, first_k_dense_replace=1,
                    q_lora_rank=64, kv_lora_rank=32, qk_rope_head_dim=16, qk_nope_head_dim=32,
                    v_head_dim=32, routed_scaling_factor=2.5, norm_topk_prob=True,
                    max_position_embeddings=512, rms_norm_eps=1e-6, rope_theta=10000.0,
                    tie_word_embeddings=False,
                    rope_scaling={"type": "yarn", "rope_type": "yarn", "factor": 4.0,
                                  "original_max_position_embeddings": 128, "beta_fast": 32,
                                  "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0})
        base.update(kw)
        cfg = DeepseekV3Config(**base)
        torch.manual_seed(seed)
        m = DeepseekV3ForCausalLM(cfg)
        randomize(m, std, seed)
        save(name, m, {}, prompts_for(cfg.vocab_size, [9, 17]))
    ds3("deepseek-v3-tiny", 11)
    # weft: 16 experts, top-4, n_group 8, topk_group 3, no q_lora, two shared experts, first_k_dense_replace 2
    ds3("deepseek-v3-16e-top4", 13, n_routed_experts=16, num_experts_per_tok=4, n_group=8, topk_group=3,
        q_lora_rank=None, n_shared_experts=2, first_k_dense_replace=2, num_hidden_layers=4)
except Exception as e:  # keep going: print why
    import traceback; print("FAILED", traceback.format_exc()[-1500:])

try:
    from transformers import DeepseekV2Config, DeepseekV2ForCausalLM
    def ds2(name, seed, std=0.08, **kw):
        base = dict(vocab_size=512, hidden_size=128, intermediate_size=256,
                    moe_intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                    num_key_value_heads=4, n_shared_experts=2, n_routed_experts=8,
                    num_experts_per_tok=2, first_k_dense_replace=1, moe_layer_freq=1,
                    q_lora_rank=None, kv_lora_rank=32, qk_rope_head_dim=16,
                    qk_nope_head_dim=32, v_head_dim=32, routed_scaling_factor=1.0,
                    topk_method="greedy", n_group=1, topk_group=1, norm_topk_prob=False,
                    max_position_embeddings=512, rms_norm_eps=1e-6, rope_theta=10000.0,
                    tie_word_embeddings=False,
                    rope_scaling={"type": "yarn", "rope_type": "yarn", "factor": 4.0,
                                  "original_max_position_embeddings": 128, "beta_fast": 32,
                                  "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707})
        base.update(kw)
        cfg = DeepseekV2Config(**base)
        torch.manual_seed(seed)
        m = DeepseekV2ForCausalLM(cfg)
        randomize(m, std, seed)
        save(name, m, {}, prompts_for(cfg.vocab_size, [9, 17]))
    ds2("deepseek-v2-lite-tiny", 21)
except Exception as e:
    import traceback; print("FAILED", traceback.format_exc()[-1500:])

# ---------------- tokenizer ----------------
try:
    if ONLY is not None and "tokenizer-bytelevel-bpe" not in ONLY:
        raise SystemExit(0)
    from tokenizers import Tokenizer, models, trainers, pre_tokenizers, decoders, processors
    text = open(transformers.__file__.replace("__init__.py", "modeling_utils.py")).read()[:400000]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tr = trainers.BpeTrainer(vocab_size=1000, special_tokens=["<|begin_of_text|>", "<|end_of_text|>"],
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], tr)
    d = os.path.join(OUT, "tokenizer-bytelevel-bpe")
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    samples = ["Hello, world!", "def forward(self, hidden_states):", "  tensor parallel  ",
               "naïve café — 東京 🚀", "", "a\nb\n\n c", "1234567890 + 3.14159",
               "ColumnParallelLinear(gather_output=False)"]
    enc = [{"text": s, "ids": tok.encode(s).ids, "decoded": tok.decode(tok.encode(s).ids)} for s in samples]
    json.dump({"cases": enc}, open(os.path.join(d, "expected.json"), "w"), ensure_ascii=False)
    print("tokenizer ok", len(enc))
except Exception:
    import traceback; print("FAILED", traceback.format_exc()[-1500:])
