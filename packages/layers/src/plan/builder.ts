/**
 * Records a rank's plan: layers call `builder.act(…)` for the buffers they
 * need and `builder.op(…)` for what they do, in order. `view` / `whole` make
 * the column ranges ops address. Collectives at world size 1 are never
 * recorded (`allReduce` returns without an op), so a tp-1 plan has no
 * boundary at all.
 */
import type { GroupCoordinator } from '@weft/comm';
import { WeftError } from '@weft/core';
import type { ActView, PlanAct, PlanOp } from './ops.js';

export interface DevicePlan {
  readonly acts: readonly PlanAct[];
  readonly ops: readonly PlanOp[];
  /** Attention layers in cache order (`AttentionOp.cacheIndex`), as the model's `kvCacheSpecs()` lists them. */
  readonly numCaches: number;
  /** The real vocabulary: the logits' first `vocabSize` columns (the rest is tp padding). */
  readonly vocabSize: number;
  /**
   * What the rank hands on: the last stage's logits (`'sampled'` rows, width ≥ vocab; tp rank 0 holds them),
   * other stages' `{hidden, residual}` for the next stage.
   */
  readonly outputs: { logits: PlanAct | null; hidden: PlanAct | null; residual: PlanAct | null };
  /** Non-first stages: where the previous stage's `{hidden, residual}` arrive. */
  readonly inputs: { hidden: PlanAct | null; residual: PlanAct | null };
}

export class PlanBuilder {
  private readonly acts: PlanAct[] = [];
  private readonly ops: PlanOp[] = [];
  private caches = 0;
  private readonly scratches = new Map<string, PlanAct>();

  /** A new activation buffer `[rows, width]`. */
  act(name: string, width: number, rows: PlanAct['rows'] = 'tokens'): PlanAct {
    if (!Number.isInteger(width) || width < 1) throw new WeftError(`plan: activation ${name} has width ${width}`);
    const a: PlanAct = { id: this.acts.length, name, width, rows };
    this.acts.push(a);
    return a;
  }

  /**
   * A buffer shared by every layer under one key (e.g. `mlp.gateUp`): layers run one after another, so a
   * layer's intermediates are dead when the next layer writes them. A key must not hold two live values
   * within a layer. Same key, other width: another buffer.
   */
  scratch(key: string, width: number, rows: PlanAct['rows'] = 'tokens'): PlanAct {
    const k = `${key}/${width}/${rows}`;
    let a = this.scratches.get(k);
    if (!a) this.scratches.set(k, (a = this.act(key, width, rows)));
    return a;
  }

  op(op: PlanOp): void {
    this.ops.push(op);
  }

  /** The next attention layer's cache index. */
  nextCache(): number {
    return this.caches++;
  }

  /** A recorded all-reduce over `group` (nothing at world size 1). */
  allReduce(x: ActView, group: GroupCoordinator): void {
    if (group.worldSize > 1) this.op({ kind: 'allReduce', x, group });
  }

  build(vocabSize: number, io: { logits?: PlanAct | null; hidden?: PlanAct | null; residual?: PlanAct | null; inHidden?: PlanAct | null; inResidual?: PlanAct | null }): DevicePlan {
    return {
      acts: [...this.acts],
      ops: [...this.ops],
      numCaches: this.caches,
      vocabSize,
      outputs: { logits: io.logits ?? null, hidden: io.hidden ?? null, residual: io.residual ?? null },
      inputs: { hidden: io.inHidden ?? null, residual: io.inResidual ?? null },
    };
  }
}

/** All of an activation's columns. */
export function whole(act: PlanAct): ActView {
  return { act, col: 0, width: act.width };
}

/** Columns `col … col + width` of an activation. */
export function view(act: PlanAct, col: number, width: number): ActView {
  if (col < 0 || width < 1 || col + width > act.width) throw new WeftError(`plan: columns ${col}…${col + width} outside ${act.name} (width ${act.width})`);
  return { act, col, width };
}
