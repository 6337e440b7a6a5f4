/** Help text: one overview, and each subcommand's own options (`weft <command> --help`). */

const MODEL = `model and layout:
  --model DIR                  Hugging Face model directory (config.json, *.safetensors, tokenizer.json)
  --tp N, --pp N, --dp N       tensor / pipeline / data parallel sizes (ranks = tp × pp × dp); vLLM's spellings
                               (--tensor-parallel-size, -tp, --pipeline-parallel-size, --data-parallel-size) work too
  --enable-expert-parallel     MoE experts split over dp × tp ranks instead of tensor-parallel
  --moe-dispatch allgather|alltoall
  --backend wasm|cpu|webgpu|tensorflow
  --dtype float32|bfloat16     unquantized weights as fp32 (default) or kept as 16-bit bf16
  --quantization int8|int4     decoder linear weights as llama.cpp Q8_0 / Q4_0 blocks, packed at load
  --device-plan auto|on|off    run each rank's step on the model's device plan without tfjs (host kernels on
                               tensorflow/wasm, WebGPU on webgpu); auto (default): where it pays, on: also fp32 on the CPU
  --transport thread|tcp       ranks as worker threads (default) or processes over TCP (see docs/multi-host.md)
  --rank-ports FIRST-LAST      tcp: ports ranks other than 0 listen on (default any; or WEFT_RANK_PORTS)
  --timeout MS                 collective timeout per blocking wait
  --intra-op-threads N         tensorflow backend: intra-op threads per rank
  --max-model-len N            longest prompt + output (default: config.json's max_position_embeddings)
  --max-num-seqs N, --max-num-batched-tokens N, --block-size N, --no-enable-prefix-caching
                               the scheduler and KV cache, as vLLM's flags (defaults 64, 2048, 16, caching on)
  --trace FILE                 write a per-rank Chrome trace (checked for writability before the run)
  --verbose                    backend start-up logs (tensorflow) and stack traces on errors`;

export const COMMAND_HELP: Record<string, string> = {
  generate: `usage: weft generate [--model DIR] [--prompt TEXT ... | --ids 1,2,3] [options]
Generate text; one prompt streams as it is generated, several are generated together.
With no --model, runs the embedded weft-tiny-code model (models/weft-tiny-code).
sampling:
  --prompt TEXT                a prompt (repeat for several)
  --ids 1,2,3                  a prompt as token ids
  --max-tokens N               default 64
  --temperature T              default 0 (greedy)
  --top-p P, --top-k K, --seed S, --stop STR (repeatable)
${MODEL}`,
  logits: `usage: weft logits --model DIR (--ids 1,2,3 | --prompt TEXT) [--json] [options]
Logits of every position of one prompt (one forward, no cache); --json prints {"logits": [[...], ...]}.
${MODEL}`,
  layout: `usage: weft layout --world-size N [--tp N] [--pp N] [--dp N] [--json]
Print vLLM's rank groups (TP, PP, DP, EP) for a layout.`,
  launch: `usage: weft launch --nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P] [--grace MS] -- <command> [options]
Start N ranks of a weft command as processes on this node (torchrun-style). One node: a fresh job token
is made; several nodes: export the same WEFT_JOB_TOKEN on every node first. Exits 130 after SIGINT,
143 after SIGTERM, non-zero naming the first rank that failed.`,
  serve: `usage: weft serve [DIR | --model DIR] [--host ADDR] [--port N] [--api-key KEY] [--served-model-name NAME]
                  [--chat-template FILE] [--max-waiting-requests N] [--grace MS] [options]
An OpenAI-compatible HTTP server (vLLM's routes): /v1/completions, /v1/chat/completions (streaming),
/v1/models, /health (/ping), /version, /metrics, /tokenize, /detokenize, and a playground page at /.
With no --model, serves the embedded weft-tiny-code model.
server:
  --host ADDR                  default 127.0.0.1 (only this machine); 0.0.0.0 to listen on every interface
  --port N                     default 8000; 0 picks a free port
  --api-key KEY                require Authorization: Bearer KEY on every route but /health, /ping and / (or set WEFT_API_KEY)
  --served-model-name NAME     the model name clients use (default: the directory's name)
  --chat-template FILE         a Jinja chat template instead of tokenizer_config.json's
  --max-waiting-requests N     past this many sequences (prompts × n) waiting for the engine, answer 429 (default 256)
  --grace MS                   on SIGINT/SIGTERM (or npx's parent going away): answer 503 to new requests, let those
                               in flight finish this long, then abort (default 30000)
  --allowed-origins LIST       CORS origins, JSON list or comma-separated (default ["*"]); also --allowed-methods,
                               --allowed-headers (default ["*"]) and --allow-credentials, as vLLM
${MODEL}`,
};

export const OVERVIEW = `weft — vLLM-style distributed inference on TensorFlow.js
usage: weft <command> [options]     (weft <command> --help for its options)
commands:
  generate   generate text from prompts (streams one prompt)
  logits     logits of a prompt (--json for HF comparisons)
  serve      OpenAI-compatible HTTP server with a playground page
  layout     print vLLM's rank groups for a layout
  launch     start the ranks of a command as processes (torchrun-style)
Models: Hugging Face directories of Llama (2, 3, 3.x, Mistral), Qwen2 / 2.5 / 3, Qwen3-MoE, Mixtral, Phi-3,
Gemma 2 and DeepSeek V2 / V2-Lite / V3 (config.json's architectures picks the model).
--transport tcp: ranks as processes over TCP; under weft launch / mpirun / srun / torchrun-style env the same
command runs in every rank's process, else this process starts the other ranks itself. See docs/multi-host.md.`;
