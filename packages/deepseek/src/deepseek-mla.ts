/**
 * Multi-head latent attention (DeepSeek V2 / V3), heads split over tp:
 * q = q_b(norm(q_a(h))) or q_proj(h); kv_a_proj_with_mqa(h) = [latent | k_rope]
 * with one rope key head shared by all heads; k_nope|v = kv_b(norm(latent));
 * attention over [nope | rope] keys; o_proj row-parallel.
 *
 * KV cache, two forms (`kvCache`):
 * - 'latent' (default, as vLLM and DeepSeek): the cache holds the normed latent
 *   and the rotated rope key, kv_lora_rank + qk_rope_head_dim floats per token
 *   for all heads. kv_b_proj is absorbed: queries move into latent space through
 *   W_UK, attention runs as one shared KV head whose V is the latent, and W_UV
 *   maps each head's output back.
 * - 'full': K and V per head, heads × (qk_head_dim + v_head_dim) floats per token.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GroupCoordinator } from '@weft/comm';
import { divide, type DeepseekConfig } from '@weft/core';
import {
  Attention,
  ColumnParallelLinear,
  getRope,
  hostValues,
  positionsEnd,
  ReplicatedLinear,
  RMSNorm,
  RowParallelLinear,
  type AttentionMetadata,
  type KVCacheSpec,
  type PagedKVCache,
  type Parameter,
  type RotaryEmbedding,
  type TokenMixer,
  type ActView,
  type HeadMatrices,
  type PlanBuilder,
  view,
  whole,
} from '@weft/layers';

export type MlaCacheForm = 'latent' | 'full';

export class DeepseekMLA implements TokenMixer {
  readonly qAProj: ReplicatedLinear | null;
  readonly qALayernorm: RMSNorm | null;
  /** q_b_proj (with q_lora_rank) or q_proj (V2-Lite). */
  readonly qProj: ColumnParallelLinear;
  readonly kvAProjWithMqa: ReplicatedLinear;
  readonly kvALayernorm: RMSNorm;
  readonly kvBProj: ColumnParallelLinear;
  readonly oProj: RowParallelLinear;
  readonly rope: RotaryEmbedding;
  readonly attn: Attention;
  private readonly heads: number;
  /** Absorbed kv_b_proj halves, made once after loading: W_UK `[H, nope, lora]`, W_UV `[H, lora, v]`. */
  private absorbed: { wUK: tf.Tensor3D; wUV: tf.Tensor3D } | null = null;

  constructor(
    prefix: string,
    private readonly c: DeepseekConfig,
    tp: GroupCoordinator,
    readonly cacheForm: MlaCacheForm = 'latent',
  ) {
    const H = c.numAttentionHeads;
    this.heads = divide(H, tp.worldSize, 'num_attention_heads');
    const qkHead = c.qkNopeHeadDim + c.qkRopeHeadDim;
    if (c.qLoraRank !== null) {
      this.qAProj = new ReplicatedLinear({ prefix: `${prefix}.q_a_proj`, inputSize: c.hiddenSize, outputSize: c.qLoraRank, bias: c.attentionBias });
      this.qALayernorm = new RMSNorm(`${prefix}.q_a_layernorm`, c.qLoraRank, c.rmsNormEps);
      this.qProj = new ColumnParallelLinear({ prefix: `${prefix}.q_b_proj`, inputSize: c.qLoraRank, outputSize: H * qkHead, tp });
    } else {
      this.qAProj = null;
      this.qALayernorm = null;
      this.qProj = new ColumnParallelLinear({ prefix: `${prefix}.q_proj`, inputSize: c.hiddenSize, outputSize: H * qkHead, tp });
    }
    this.kvAProjWithMqa = new ReplicatedLinear({
      prefix: `${prefix}.kv_a_proj_with_mqa`,
      inputSize: c.hiddenSize,
      outputSize: c.kvLoraRank + c.qkRopeHeadDim,
      bias: c.attentionBias,
    });
    this.kvALayernorm = new RMSNorm(`${prefix}.kv_a_layernorm`, c.kvLoraRank, c.rmsNormEps);
    this.kvBProj = new ColumnParallelLinear({
      prefix: `${prefix}.kv_b_proj`,
      inputSize: c.kvLoraRank,
      outputSize: H * (c.qkNopeHeadDim + c.vHeadDim),
      tp,
    });
    this.oProj = new RowParallelLinear({ prefix: `${prefix}.o_proj`, inputSize: H * c.vHeadDim, outputSize: c.hiddenSize, bias: c.attentionBias, tp });
    this.rope = getRope({
      headSize: c.qkRopeHeadDim,
      rotaryDim: c.qkRopeHeadDim,
      maxPosition: c.maxPositionEmbeddings,
      base: c.rope.theta,
      isNeoxStyle: !c.ropeInterleave,
      scaling: c.rope,
      invFreqDtype: c.dtype,
    });
    // Softmax scale × yarn mscale(factor, mscale_all_dim)², as transformers' V2 and V3 (and vLLM) do.
    const scaleFactor = this.rope.attentionScaleFactor;
    const scale = qkHead ** -0.5 * scaleFactor;
    this.attn =
      cacheForm === 'latent'
        ? new Attention({
            numHeads: this.heads,
            numKvHeads: 1,
            headDim: c.kvLoraRank + c.qkRopeHeadDim,
            vHeadDim: c.kvLoraRank,
            valueIsKeyPrefix: true,
            scale,
          })
        : new Attention({ numHeads: this.heads, numKvHeads: this.heads, headDim: qkHead, vHeadDim: c.vHeadDim, scale });
  }

  /** 'latent': one shared head of kv_lora_rank + qk_rope_head_dim, V its first kv_lora_rank dims; 'full': K and V per head. */
  get kvCacheSpec(): KVCacheSpec {
    return this.attn.kvCacheSpec;
  }

  parameters(): Parameter[] {
    return [
      ...(this.qAProj?.parameters() ?? []),
      ...(this.qALayernorm ? [this.qALayernorm.weight] : []),
      ...this.qProj.parameters(),
      ...this.kvAProjWithMqa.parameters(),
      this.kvALayernorm.weight,
      ...this.kvBProj.parameters(),
      ...this.oProj.parameters(),
    ];
  }

  async forward(positions: tf.Tensor1D, hidden: tf.Tensor2D, meta: AttentionMetadata, cache: PagedKVCache | null): Promise<tf.Tensor2D> {
    const { qkNopeHeadDim: nope, qkRopeHeadDim: ropeDim, kvLoraRank } = this.c;
    this.rope.reserve(positionsEnd(meta));
    const T = hidden.shape[0];
    const Hl = this.heads;
    const qIn = this.qAProj ? tf.tidy(() => this.qALayernorm!.forward(this.qAProj!.forward(hidden))) : hidden;
    const q = await this.qProj.forward(qIn);
    if (qIn !== hidden) qIn.dispose();
    const kvA = this.kvAProjWithMqa.forward(hidden);
    const latent = tf.tidy(() => this.kvALayernorm.forward(tf.slice(kvA, [0, 0], [-1, kvLoraRank]) as tf.Tensor2D));
    const q3 = tf.reshape(q, [T, Hl, nope + ropeDim]) as tf.Tensor3D;
    const kPe = tf.reshape(tf.slice(kvA, [0, kvLoraRank], [-1, ropeDim]), [T, 1, ropeDim]) as tf.Tensor3D;
    const qPe = tf.slice(q3, [0, 0, nope], [-1, -1, ropeDim]) as tf.Tensor3D;
    const [qPeRot, kPeRot] = this.rope.forward(positions, qPe, kPe);
    const qNope = tf.slice(q3, [0, 0, 0], [-1, -1, nope]) as tf.Tensor3D;
    // The absorbed kv_b_proj is dequantized; under an a8 kernel its input is rounded as the kernel would.
    const latentIn = this.cacheForm === 'latent' ? (this.kvBProj.weight.roundedInput(latent) ?? latent) : latent;
    const out =
      this.cacheForm === 'latent'
        ? await this.attendLatent(qNope, qPeRot, latentIn, kPeRot, meta, cache)
        : await this.attendFull(qNope, qPeRot, latent, kPeRot, meta, cache);
    if (latentIn !== latent) latentIn.dispose();
    tf.dispose([q, kvA, latent, q3, kPe, qPe, qPeRot, kPeRot, qNope]);
    const o = await this.oProj.forward(out);
    out.dispose();
    return o;
  }

  /**
   * Records the same work: q (q_a → norm → q_b, or q_proj) and kv_a_proj_with_mqa → norm of the latent →
   * rotary on the shared rope key and on each head's rope part (copied out of q to be contiguous); then
   * 'latent': the latent rounded as kv_b_proj's kernel would see it, q_nope · W_UK per head next to the
   * rotated q_pe as the query, attention over the cached `[latent | k_rope]` (V = the latent), the context
   * · W_UV per head; 'full': kv_b_proj, keys `[k_nope | k_rope]` and values per head, ordinary attention.
   * o_proj (row-parallel: its all-reduce) last.
   */
  record(b: PlanBuilder, hidden: ActView): ActView {
    const { qkNopeHeadDim: nope, qkRopeHeadDim: ropeDim, kvLoraRank: lora, vHeadDim } = this.c;
    const Hl = this.heads;
    const qHead = nope + ropeDim;
    let qIn = hidden;
    if (this.qAProj) {
      qIn = whole(b.scratch('mla.q_a', this.qAProj.outPerRank));
      this.qAProj.record(b, hidden, qIn);
      this.qALayernorm!.record(b, qIn, qIn);
    }
    const q = b.scratch('mla.q', Hl * qHead);
    this.qProj.record(b, qIn, whole(q));
    const kvA = b.scratch('mla.kv_a', lora + ropeDim);
    this.kvAProjWithMqa.record(b, hidden, whole(kvA));
    const latent = view(kvA, 0, lora);
    this.kvALayernorm.record(b, latent, latent);
    b.op({ kind: 'rotary', x: view(kvA, lora, ropeDim), heads: 1, rope: this.rope });
    const qPe = whole(b.scratch('mla.q_pe', Hl * ropeDim));
    const qPeInQ = view(q, nope, (Hl - 1) * qHead + ropeDim);
    b.op({ kind: 'copyHeads', x: qPeInQ, xStride: qHead, out: qPe, outStride: ropeDim, heads: Hl, width: ropeDim });
    b.op({ kind: 'rotary', x: qPe, heads: Hl, rope: this.rope });
    const ctx = b.scratch('mla.context', Hl * vHeadDim);
    if (this.cacheForm === 'latent') {
      const { wUK, wUV } = this.planAbsorbed();
      b.op({ kind: 'roundInput', x: latent, weight: this.kvBProj.weight });
      const qlHead = lora + ropeDim;
      const query = b.scratch('mla.query', Hl * qlHead);
      b.op({ kind: 'headMatmul', x: view(q, 0, (Hl - 1) * qHead + nope), xStride: qHead, out: view(query, 0, (Hl - 1) * qlHead + lora), outStride: qlHead, weight: wUK });
      b.op({ kind: 'copyHeads', x: qPe, xStride: ropeDim, out: view(query, lora, (Hl - 1) * qlHead + ropeDim), outStride: qlHead, heads: Hl, width: ropeDim });
      const ctxLatent = whole(b.scratch('mla.context_latent', Hl * lora));
      this.attn.record(b, whole(query), whole(kvA), null, ctxLatent);
      b.op({ kind: 'headMatmul', x: ctxLatent, xStride: lora, out: whole(ctx), outStride: vHeadDim, weight: wUV });
    } else {
      b.op({ kind: 'copyHeads', x: qPe, xStride: ropeDim, out: qPeInQ, outStride: qHead, heads: Hl, width: ropeDim });
      const kvHead = nope + vHeadDim;
      const kv = b.scratch('mla.kv', Hl * kvHead);
      this.kvBProj.record(b, latent, whole(kv));
      const key = b.scratch('mla.key', Hl * qHead);
      b.op({ kind: 'copyHeads', x: view(kv, 0, (Hl - 1) * kvHead + nope), xStride: kvHead, out: view(key, 0, (Hl - 1) * qHead + nope), outStride: qHead, heads: Hl, width: nope });
      // The one rope key head, repeated into every head.
      b.op({ kind: 'copyHeads', x: view(kvA, lora, ropeDim), xStride: 0, out: view(key, nope, (Hl - 1) * qHead + ropeDim), outStride: qHead, heads: Hl, width: ropeDim });
      const value = whole(b.scratch('mla.value', Hl * vHeadDim));
      b.op({ kind: 'copyHeads', x: view(kv, nope, (Hl - 1) * kvHead + vHeadDim), xStride: kvHead, out: value, outStride: vHeadDim, heads: Hl, width: vHeadDim });
      this.attn.record(b, whole(q), whole(key), value, whole(ctx));
    }
    const out = whole(b.scratch('mla.out', this.oProj.outPerRank));
    this.oProj.record(b, whole(ctx), out);
    return out;
  }

  /**
   * W_UK `[Hl, nope, lora]` and W_UV `[Hl, lora, v]` as plan weights: the tfjs path's absorbed tensors
   * (`absorb`), computed on the host from kv_b_proj's host values at upload (a tensor on the webgpu
   * backend cannot be read synchronously): `W_UK[h][i][j] = W[j, h·(nope+v) + i]`,
   * `W_UV[h][i][j] = W[i, h·(nope+v) + nope + j]`, W the fp32 `[lora, Hl·(nope + v)]` weight.
   */
  private planAbsorbed(): { wUK: HeadMatrices; wUV: HeadMatrices } {
    const { qkNopeHeadDim: nope, vHeadDim: v, kvLoraRank: lora } = this.c;
    const weight = this.kvBProj.weight;
    const name = weight.name.replace(/\.weight$/, '');
    const H = this.heads;
    const out = H * (nope + v);
    const matrices = (part: 'W_UK' | 'W_UV', k: number, n: number): HeadMatrices => ({
      name: `${name}.${part}`,
      heads: H,
      k,
      n,
      source: weight,
      data: () => {
        // A quantized or bf16 weight is dequantized here, as vLLM does; fp32 is its tensor `[lora, out]`.
        const w = weight.packed ? weight.packed.dequantizeTransposed() : hostValues(weight);
        const m = new Float32Array(H * k * n);
        for (let h = 0; h < H; h++)
          for (let i = 0; i < k; i++)
            for (let j = 0; j < n; j++)
              m[(h * k + i) * n + j] = part === 'W_UK' ? w[j * out + h * (nope + v) + i]! : w[i * out + h * (nope + v) + nope + j]!;
        return m;
      },
    });
    return { wUK: matrices('W_UK', nope, lora), wUV: matrices('W_UV', lora, v) };
  }

  /** Keys and values per head from kv_b_proj; cache holds them whole. */
  private async attendFull(
    qNope: tf.Tensor3D, qPe: tf.Tensor3D, latent: tf.Tensor2D, kPe: tf.Tensor3D, meta: AttentionMetadata, cache: PagedKVCache | null,
  ): Promise<tf.Tensor2D> {
    const { qkNopeHeadDim: nope, vHeadDim } = this.c;
    const [T, Hl] = qNope.shape;
    const kv = await this.kvBProj.forward(latent);
    const [query, key, value] = tf.tidy(() => {
      const kv3 = tf.reshape(kv, [T, Hl, nope + vHeadDim]);
      const q = tf.concat([qNope, qPe], 2);
      // The single rope key head is shared by every query head.
      const k = tf.concat([tf.slice(kv3, [0, 0, 0], [-1, -1, nope]), tf.tile(kPe, [1, Hl, 1])], 2);
      const v = tf.slice(kv3, [0, 0, nope], [-1, -1, vHeadDim]);
      return [q, k, v].map((x) => tf.reshape(x, [T, -1]) as tf.Tensor2D);
    });
    kv.dispose();
    return this.attn.forward(query!, key!, value!, meta, cache).finally(() => tf.dispose([query!, key!, value!]));
  }

  /** kv_b_proj absorbed: attention in latent space over one shared [latent | k_rope] head. */
  private async attendLatent(
    qNope: tf.Tensor3D, qPe: tf.Tensor3D, latent: tf.Tensor2D, kPe: tf.Tensor3D, meta: AttentionMetadata, cache: PagedKVCache | null,
  ): Promise<tf.Tensor2D> {
    const [T, Hl] = qNope.shape;
    const { wUK, wUV } = this.absorb();
    const [query, key] = tf.tidy(() => {
      // q_nope · W_UK per head: [Hl, T, nope] × [Hl, nope, lora] → [T, Hl, lora]
      const qLat = tf.transpose(tf.matMul(tf.transpose(qNope, [1, 0, 2]), wUK), [1, 0, 2]);
      return [tf.reshape(tf.concat([qLat, qPe], 2), [T, -1]) as tf.Tensor2D, tf.concat([latent, tf.reshape(kPe, [T, -1])], 1) as tf.Tensor2D];
    });
    const outLat = await this.attn.forward(query!, key!, null, meta, cache).finally(() => tf.dispose([query!, key!])); // [T, Hl·lora]
    const out = tf.tidy(() => {
      // Each head's latent output through W_UV: [Hl, T, lora] × [Hl, lora, v] → [T, Hl·v]
      const o = tf.matMul(tf.transpose(tf.reshape(outLat, [T, Hl, this.c.kvLoraRank]), [1, 0, 2]), wUV);
      return tf.reshape(tf.transpose(o, [1, 0, 2]), [T, -1]) as tf.Tensor2D;
    });
    outLat.dispose();
    return out;
  }

  private absorb(): { wUK: tf.Tensor3D; wUV: tf.Tensor3D } {
    if (this.absorbed) return this.absorbed;
    const { qkNopeHeadDim: nope, vHeadDim, kvLoraRank } = this.c;
    // kv_b_proj's weight as fp32 [lora, Hl·(nope + v)]: a quantized one is dequantized here, as vLLM does.
    const dense = this.kvBProj.weight.denseTransposed();
    const w = tf.reshape(dense, [kvLoraRank, this.heads, nope + vHeadDim]);
    dense.dispose();
    this.absorbed = {
      wUK: tf.keep(tf.transpose(tf.slice(w, [0, 0, 0], [-1, -1, nope]), [1, 2, 0]) as tf.Tensor3D),
      wUV: tf.keep(tf.transpose(tf.slice(w, [0, 0, nope], [-1, -1, vHeadDim]), [1, 0, 2]) as tf.Tensor3D),
    };
    w.dispose();
    return this.absorbed;
  }

  dispose(): void {
    for (const p of this.parameters()) p.dispose();
    if (this.absorbed) tf.dispose([this.absorbed.wUK, this.absorbed.wUV]);
    this.absorbed = null;
    this.rope.dispose();
  }
}
