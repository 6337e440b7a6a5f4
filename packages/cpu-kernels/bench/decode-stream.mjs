#!/usr/bin/env node
/**
 * The addon's gemms in decode order, in situ but for the model: every decoder layer's linears (TinyLlama-1.1B:
 * qkv 2560×2048, o 2048×2048, gate_up 11264×2048, down 2048×5632, 22 layers) then the LM head (32000×2048 bf16),
 * one activation row, each matrix its own buffer (0.55–1.9 GB in all, far more than L3), back to back as a decode
 * step calls them. GB/s of weights read per shape and for the whole step, per format and thread count, for one or
 * more builds of the addon in one process (rounds alternate between them). With --probe, the native read-bandwidth
 * probe (examples' native-bandwidth.ts, compiled once under the OS temp folder) at the same thread counts, before
 * and after each round: the bound bench:cpu divides by.
 *
 * usage: node packages/cpu-kernels/bench/decode-stream.mjs [--addon a.node[,b.node]] [--formats q4_0,q8_0,bf16]
 *          [--threads 1,2] [--rounds 3] [--steps 4] [--layers 22] [--probe /tmp/weft-native-bandwidth/bw-xxxx] [--pages 4k,huge]
 * --pages: where the weights live, each a variant alternated with the builds: 4k (ArrayBuffer), huge (hostBuffer).
 * The probe is run as `probe threads 256 5 [huge]`: a probe binary that takes the 4th argument reads huge pages.
 * --layouts rows,tile16: Q4_0 weights also in the tile16 layout (src/q4-tile.ts, repacked by the built dist;
 * gemmQ4_0Tile16), alternated like the builds; the first step of each is checked bit for bit against rows.
 */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { allocator, BYTES, bf16Values, fillRandom, fp16Scales, seedBench } from './random-weights.mjs';

const { values } = parseArgs({
  options: {
    addon: { type: 'string', default: join(dirname(fileURLToPath(import.meta.url)), '../build/Release/weft_cpu_kernels.node') },
    formats: { type: 'string', default: 'q4_0,q8_0,bf16' },
    threads: { type: 'string', default: '1,2' },
    rounds: { type: 'string', default: '3' },
    steps: { type: 'string', default: '4' },
    layers: { type: 'string', default: '22' },
    isa: { type: 'string', default: '0' },
    probe: { type: 'string', default: '' },
    'no-head': { type: 'boolean', default: false },
    pages: { type: 'string', default: '4k' },
    layouts: { type: 'string', default: 'rows' },
  },
});
const req = createRequire(import.meta.url);
const builds = values.addon.split(',').map((p) => ({ path: p, mod: req(resolve(p)) }));
const pagesList = values.pages.split(',');
const layoutList = values.layouts.split(',');
const { repackQ4_0 } = layoutList.includes('tile16') ? await import('../dist/index.js') : {};
const variants = builds.flatMap((b) => pagesList.map((pages) => ({ ...b, pages, path: pagesList.length > 1 ? `${b.path} ${pages}` : b.path })));
// Q4_0 runs every layout; the other formats rows only
const addonsOf = (fmt) =>
  fmt !== 'q4_0' ? variants.map((v) => ({ ...v, layout: 'rows' })) : variants.flatMap((v) => layoutList.map((layout) => ({ ...v, layout, path: layoutList.length > 1 ? `${v.path} ${layout}` : v.path })));
const allocMod = (builds.find((b) => b.mod.hostBuffer) ?? builds[0]).mod;
const SHAPES = [
  ['qkv', 2560, 2048],
  ['o', 2048, 2048],
  ['gate_up', 11264, 2048],
  ['down', 2048, 5632],
];


function weight(fmt, n, k, alloc) {
  if (fmt === 'bf16') return { fmt, n, k, w: bf16Values(n * k, alloc) };
  const qs = fmt === 'q8_0' ? new Int8Array(alloc(n * k)) : new Uint8Array(alloc((n * k) / 2));
  fillRandom(new Uint8Array(qs.buffer));
  return { fmt, n, k, w: qs, d: fp16Scales((n * k) / 32, alloc) };
}

function model(fmt, pages, layout) {
  const alloc = allocator(pages, allocMod);
  const ops = [];
  seedBench();
  for (let l = 0; l < Number(values.layers); l++)
    for (const [name, n, k] of SHAPES) {
      const op = { name, layout, ...weight(fmt, n, k, alloc) };
      if (layout === 'tile16') repackQ4_0({ qs: op.w, d: op.d }, n, k, 'tile16');
      ops.push(op);
    }
  if (!values['no-head']) ops.push({ name: 'lm_head(bf16)', ...weight('bf16', 32000, 2048, alloc) });
  return ops;
}

function call(mod, t, op, x, out) {
  const isa = Number(values.isa);
  if (op.fmt === 'q8_0') mod.gemmQ8_0(isa, t, x, 1, op.k, op.w, op.d, op.n, out);
  else if (op.fmt === 'q4_0') (op.layout === 'tile16' ? mod.gemmQ4_0Tile16 : mod.gemmQ4_0)(isa, t, x, 1, op.k, op.w, op.d, op.n, out);
  else mod.gemmBf16(isa, t, x, 1, op.k, op.w, op.n, out);
}

const xs = new Map();
const xOf = (k) => xs.get(k) ?? (xs.set(k, Float32Array.from({ length: k }, (_, i) => Math.sin(i * 0.37) * 2)), xs.get(k));
const out = new Float32Array(32000);

/** One decode step's linears: ms per shape (summed over layers), best of `steps` steps per shape. */
function step(mod, t, ops) {
  const ms = {};
  for (const op of ops) {
    const x = xOf(op.k);
    const t0 = performance.now();
    call(mod, t, op, x, out.subarray(0, op.n));
    ms[op.name] = (ms[op.name] ?? 0) + performance.now() - t0;
  }
  return ms;
}

const probe = (t, pages) =>
  values.probe ? Number(execFileSync(values.probe, [String(t), '256', '5', ...(pages === 'huge' ? ['huge'] : [])], { encoding: 'utf8' }).trim()) : NaN;
const results = new Map();
const loads = [];
const probes = {};
for (const fmt of values.formats.split(',')) {
  const addons = addonsOf(fmt);
  const models = {};
  for (const a of addons) models[`${a.pages} ${a.layout}`] ??= model(fmt, a.pages, a.layout);
  // the same values in every layout: the same bits (the first of each shape, 2 threads)
  const ref = models[`${addons[0].pages} rows`];
  for (const a of addons)
    for (const [i, op] of models[`${a.pages} ${a.layout}`].slice(0, SHAPES.length).entries()) {
      const want = new Float32Array(op.n), got = new Float32Array(op.n);
      call(builds[0].mod, 2, ref[i], xOf(op.k), want);
      call(a.mod, 2, op, xOf(op.k), got);
      if (!Buffer.from(want.buffer).equals(Buffer.from(got.buffer))) throw new Error(`${a.path} ${op.name}: not the rows layout's bits`);
    }
  const bytes = {};
  for (const op of ref) bytes[op.name] = (bytes[op.name] ?? 0) + op.n * op.k * BYTES[op.fmt];
  const total = Object.values(bytes).reduce((a, b) => a + b, 0);
  for (let r = 0; r < Number(values.rounds); r++) {
    loads.push(loadavg()[0]);
    for (const t of values.threads.split(',').map(Number)) {
      if (values.probe) for (const p of pagesList) (probes[`t=${t} ${p}`] ??= []).push(probe(t, p));
      const order = r % 2 ? [...addons].reverse() : addons;
      for (const a of order) {
        const ops = models[`${a.pages} ${a.layout}`];
        step(a.mod, t, ops); // warm: pages touched, pool started
        for (let i = 0; i < Number(values.steps); i++) {
          const ms = step(a.mod, t, ops);
          const all = Object.values(ms).reduce((x, y) => x + y, 0);
          const key = `${fmt} t=${t}|${a.path}`;
          const cell = results.get(key) ?? { all: [], shape: {} };
          cell.all.push(total / all / 1e6);
          for (const [name, v] of Object.entries(ms)) (cell.shape[name] ??= []).push(bytes[name] / v / 1e6);
          results.set(key, cell);
        }
      }
    }
  }
}
const med = (v) => [...v].sort((a, b) => a - b)[v.length >> 1];
const f = (v) => `${med(v).toFixed(1)} [${Math.min(...v).toFixed(1)}–${Math.max(...v).toFixed(1)}]`;
console.log(`decode order, ${values.layers} layers; GB/s of weights read, median [min–max] over steps; load ${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}`);
if (values.probe) console.log(`probe GB/s: ${Object.entries(probes).map(([t, v]) => `${t} ${f(v)}`).join(', ')}`);
const names = [...SHAPES.map(([n]) => n), ...(values['no-head'] ? [] : ['lm_head(bf16)'])];
console.log(`| cell | build | step | ${names.join(' | ')} |`);
for (const [key, cell] of results) {
  const [c, path] = key.split('|');
  console.log(`| ${c} | ${path.replace(/\/build\/Release\/weft_cpu_kernels\.node$/, '')} | ${f(cell.all)} | ${names.map((n) => f(cell.shape[n])).join(' | ')} |`);
}
