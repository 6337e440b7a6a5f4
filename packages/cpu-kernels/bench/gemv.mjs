#!/usr/bin/env node
/**
 * The addon's gemms alone, A/B: GB/s of weights read by gemmQ8_0 / gemmQ4_0 / gemmBf16 at decode shapes, for
 * one or more builds of the addon in the same process, rounds alternating between them (this machine is shared:
 * only differences that hold across alternating rounds count). Weights rotate through enough copies that every
 * call reads them from memory, as decode does. No workspace imports: the weights are random blocks (speed does
 * not depend on the values), so any build directory can be timed, e.g. a private copy of native/ built aside.
 *
 * usage: node packages/cpu-kernels/bench/gemv.mjs [--addon path.node[,path2.node]] [--formats q8_0,q4_0,bf16]
 *          [--shape 5632x2048] [--rows 1,16] [--threads 1,2] [--rounds 3] [--ms 400] [--rotate-mb 256] [--l3] [--pages 4k,huge]
 *   --l3: one copy of the weights (cache-resident where it fits): the arithmetic's rate, not memory's.
 *   --pages: where the weights live, each a variant alternated with the builds: 4k (ArrayBuffer), huge (hostBuffer).
 */
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { allocator, BYTES, bf16Values, fillRandom, fp16Scales } from './random-weights.mjs';

const { values } = parseArgs({
  options: {
    addon: { type: 'string', default: join(dirname(fileURLToPath(import.meta.url)), '../build/Release/weft_cpu_kernels.node') },
    formats: { type: 'string', default: 'q8_0,q4_0,bf16' },
    shape: { type: 'string', default: '5632x2048' },
    rows: { type: 'string', default: '1,16' },
    threads: { type: 'string', default: '1,2' },
    rounds: { type: 'string', default: '3' },
    ms: { type: 'string', default: '400' },
    'rotate-mb': { type: 'string', default: '256' },
    isa: { type: 'string', default: '0' },
    l3: { type: 'boolean', default: false },
    pages: { type: 'string', default: '4k' },
  },
});
const req = createRequire(import.meta.url);
const builds = values.addon.split(',').map((p) => ({ path: p, mod: req(resolve(p)) }));
const pagesList = values.pages.split(',');
/** One variant a build × pages; labels name the pages only when more than one is asked. */
const addons = builds.flatMap((b) => pagesList.map((pages) => ({ ...b, pages, path: pagesList.length > 1 ? `${b.path} ${pages}` : b.path })));
const [n, k] = values.shape.split('x').map(Number);


function makeWeights(fmt, alloc) {
  const bytes = n * k * BYTES[fmt];
  const copies = values.l3 ? 1 : Math.max(2, Math.ceil((Number(values['rotate-mb']) * 1e6) / bytes));
  const ws = [];
  for (let c = 0; c < copies; c++) {
    if (fmt === 'bf16') ws.push({ w: bf16Values(n * k, alloc) });
    else {
      const qs = fmt === 'q8_0' ? new Int8Array(alloc(n * k)) : new Uint8Array(alloc((n * k) / 2));
      fillRandom(new Uint8Array(qs.buffer));
      ws.push({ w: qs, d: fp16Scales((n * k) / 32, alloc) });
    }
  }
  return { ws, bytes };
}

function call(mod, fmt, t, x, m, w, out) {
  const isa = Number(values.isa);
  if (fmt === 'q8_0') mod.gemmQ8_0(isa, t, x, m, k, w.w, w.d, n, out);
  else if (fmt === 'q4_0') mod.gemmQ4_0(isa, t, x, m, k, w.w, w.d, n, out);
  else mod.gemmBf16(isa, t, x, m, k, w.w, n, out);
}

/** Median ms per call over about `ms` of calls, after one pass over the copies. */
function time(mod, fmt, t, m, { ws }) {
  const x = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i * 0.37) * 2);
  const out = new Float32Array(m * n);
  for (const w of ws) call(mod, fmt, t, x, m, w, out);
  const ts = [];
  const start = performance.now();
  for (let i = 0; ts.length < 10 || performance.now() - start < Number(values.ms); i++) {
    const t0 = performance.now();
    call(mod, fmt, t, x, m, ws[i % ws.length], out);
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  return ts[ts.length >> 1];
}

const cells = new Map();
const loads = [];
for (const fmt of values.formats.split(',')) {
  const Ws = Object.fromEntries(pagesList.map((p) => [p, makeWeights(fmt, allocator(p, (builds.find((b) => b.mod.hostBuffer) ?? builds[0]).mod))]));
  for (let r = 0; r < Number(values.rounds); r++) {
    loads.push(loadavg()[0]);
    const order = r % 2 ? [...addons].reverse() : addons;
    for (const m of values.rows.split(',').map(Number))
      for (const t of values.threads.split(',').map(Number))
        for (const a of order) {
          const W = Ws[a.pages];
          const ms = time(a.mod, fmt, t, m, W);
          const key = `${fmt} m=${m} t=${t}|${a.path}`;
          cells.set(key, [...(cells.get(key) ?? []), (W.bytes / ms) * 1e-6]);
        }
  }
}
const med = (v) => [...v].sort((a, b) => a - b)[v.length >> 1];
console.log(`shape ${n}x${k}${values.l3 ? ' (one copy: cache-resident where it fits)' : ''}; GB/s of weights read, median of rounds [min–max]; load ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}`);
const rowsOut = new Map();
for (const [key, v] of cells) {
  const [cell, path] = key.split('|');
  rowsOut.set(cell, [...(rowsOut.get(cell) ?? []), `${med(v).toFixed(1)} [${Math.min(...v).toFixed(1)}–${Math.max(...v).toFixed(1)}]`]);
}
console.log(`| cell | ${addons.map((a) => a.path.replace(/\/build\/Release\/weft_cpu_kernels\.node$/, '')).join(' | ')} |`);
for (const [cell, vs] of rowsOut) console.log(`| ${cell} | ${vs.join(' | ')} |`);
