/// <reference types="@webgpu/types" />
/**
 * A plan boundary on the WebGPU executor: the segment's command buffer is
 * submitted with the collective's activation copied into the read-back
 * buffer; on the host the rows go through the op's group (`allReduceHost`,
 * `gatherColumnsHost`) and come back with one write. Only the view's columns
 * take part; the rest of each row is written back as it was.
 */
import { allReduceHost, gatherColumnsHost } from '../collectives.js';
import type { ActView, AllReduceOp, GatherColumnsOp, PlanAct } from '../ops.js';
import { MAP_READ_MODE } from './device.js';

/** Runs `op` after `enc`'s work; 'no-logits' when a gather left this rank without the gathered columns. */
export async function runBoundary(
  device: GPUDevice,
  enc: GPUCommandEncoder,
  op: AllReduceOp | GatherColumnsOp,
  T: number,
  S: number,
  actBuffer: (a: PlanAct) => GPUBuffer,
  readback: GPUBuffer,
): Promise<'no-logits' | null> {
  const x = op.x;
  const rowsOf = (a: PlanAct) => (a.rows === 'tokens' ? T : S);
  const rows = rowsOf(x.act);
  const W = x.act.width;
  const xBytes = rows * W * 4;
  // A gather into part of its output's columns keeps the others: they come back too.
  const out = op.kind === 'gatherColumns' ? op.out : null;
  const outWhole = !out || (out.col === 0 && out.width === out.act.width);
  const oRows = out ? rowsOf(out.act) : 0;
  const oBytes = out && !outWhole ? oRows * out.act.width * 4 : 0;
  if (xBytes) enc.copyBufferToBuffer(actBuffer(x.act), 0, readback, 0, xBytes);
  if (oBytes) enc.copyBufferToBuffer(actBuffer(out!.act), 0, readback, xBytes, oBytes);
  device.queue.submit([enc.finish()]);
  await readback.mapAsync(MAP_READ_MODE);
  const all = new Float32Array(readback.getMappedRange(0, Math.max(4, xBytes + oBytes)).slice(0));
  readback.unmap();
  const whole = x.col === 0 && x.width === W;
  const part = whole ? all.subarray(0, rows * W) : new Float32Array(rows * x.width);
  if (!whole) for (let r = 0; r < rows; r++) part.set(all.subarray(r * W + x.col, r * W + x.col + x.width), r * x.width);
  if (op.kind === 'allReduce') {
    await allReduceHost(op.group, part, rows, x.width);
    if (!whole) for (let r = 0; r < rows; r++) all.set(part.subarray(r * x.width, (r + 1) * x.width), r * W + x.col);
    if (xBytes) device.queue.writeBuffer(actBuffer(x.act), 0, all.buffer, all.byteOffset, xBytes);
    return null;
  }
  const g = await gatherColumnsHost(op.group, part.slice(), rows, x.width);
  if (!g) return 'no-logits';
  const o = op.out;
  const ow = o.act.width;
  if (outWhole) {
    if (oRows) device.queue.writeBuffer(actBuffer(o.act), 0, g.buffer, g.byteOffset, oRows * ow * 4);
    return null;
  }
  const dst = all.subarray(rows * W, rows * W + oRows * ow);
  for (let r = 0; r < oRows; r++) dst.set(g.subarray(r * o.width, (r + 1) * o.width), r * ow + o.col);
  if (oRows) device.queue.writeBuffer(actBuffer(o.act), 0, dst.buffer, dst.byteOffset, oRows * ow * 4);
  return null;
}

/** Submit `enc` with `rows` rows of `view`'s activation copied out; its columns, `[rows, view.width]`. */
export async function readViewRows(device: GPUDevice, enc: GPUCommandEncoder, view: ActView, rows: number, actBuffer: (a: PlanAct) => GPUBuffer, readback: GPUBuffer): Promise<Float32Array> {
  const W = view.act.width;
  const bytes = rows * W * 4;
  if (bytes) enc.copyBufferToBuffer(actBuffer(view.act), 0, readback, 0, bytes);
  device.queue.submit([enc.finish()]);
  await readback.mapAsync(MAP_READ_MODE);
  const all = new Float32Array(readback.getMappedRange(0, Math.max(4, bytes)).slice(0));
  readback.unmap();
  if (view.col === 0 && view.width === W) return all.subarray(0, rows * W);
  const out = new Float32Array(rows * view.width);
  for (let r = 0; r < rows; r++) out.set(all.subarray(r * W + view.col, r * W + view.col + view.width), r * view.width);
  return out;
}
