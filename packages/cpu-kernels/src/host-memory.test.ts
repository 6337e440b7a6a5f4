import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { hasHugePages, hostBuffer, HUGE_PAGE_BYTES, setHugePagesDefault } from './host-memory.js';
import { cpuKernels } from './kernels.js';
import { loadNative } from './native.js';
import { quantizeQ4_0 } from './quantize.js';

const THP = '/sys/kernel/mm/transparent_hugepage/enabled';
/** Huge pages can be asked for here: Linux with THP not switched off, and an addon with hostBuffer. */
const advisable = process.platform === 'linux' && existsSync(THP) && !readFileSync(THP, 'utf8').includes('[never]') && !!loadNative().addon?.hostBuffer;

/** kB of the mappings the kernel marks advised for huge pages (VmFlags `hg`). */
function advisedKb(): number {
  let kb = 0;
  for (const vma of readFileSync('/proc/self/smaps', 'utf8').split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    if (/^VmFlags:.*\bhg\b/m.test(vma)) kb += Number(/^Size:\s+(\d+) kB/m.exec(vma)?.[1] ?? 0);
  }
  return kb;
}

describe('hostBuffer', () => {
  it('gives exactly the bytes asked for, zeroed, with or without huge pages', () => {
    for (const bytes of [0, 1, 4097, HUGE_PAGE_BYTES - 1, HUGE_PAGE_BYTES, 3 * HUGE_PAGE_BYTES + 12345]) {
      for (const hugePages of [true, false]) {
        const b = hostBuffer(bytes, { hugePages });
        expect(b.byteLength, `${bytes} bytes`).toBe(bytes);
        const u = new Uint8Array(b);
        expect(u.every((v) => v === 0), `${bytes} bytes zeroed`).toBe(true);
        u.fill(7); // writable to the last byte
        expect(u[bytes - 1] ?? 7).toBe(7);
        expect(hasHugePages(b), `${bytes} bytes, hugePages ${hugePages}`).toBe(advisable && hugePages && bytes >= HUGE_PAGE_BYTES);
      }
    }
  });

  it.runIf(advisable)('maps a big buffer advised MADV_HUGEPAGE (smaps VmFlags hg)', () => {
    const before = advisedKb();
    const b = hostBuffer(8 * HUGE_PAGE_BYTES + 4096);
    new Uint8Array(b).fill(1);
    expect(advisedKb() - before).toBeGreaterThanOrEqual((8 * HUGE_PAGE_BYTES) / 1024);
    expect(b.byteLength).toBe(8 * HUGE_PAGE_BYTES + 4096);
  });

  it('follows the process default unless asked', () => {
    try {
      setHugePagesDefault(false);
      expect(hasHugePages(hostBuffer(HUGE_PAGE_BYTES))).toBe(false);
      expect(hasHugePages(hostBuffer(HUGE_PAGE_BYTES, { hugePages: true }))).toBe(advisable);
    } finally {
      setHugePagesDefault(true);
    }
    expect(hasHugePages(hostBuffer(HUGE_PAGE_BYTES))).toBe(advisable);
  });

  it('rejects a bad size by name', () => {
    expect(() => hostBuffer(-1)).toThrow(/hostBuffer: bytes = -1/);
    expect(() => hostBuffer(1.5)).toThrow(/hostBuffer: bytes = 1.5/);
  });

  it('a gemm reads weights in huge pages as in ordinary ones: the same bits', () => {
    const n = 512, k = 2048, m = 1;
    const w = Float32Array.from({ length: n * k }, (_, i) => Math.sin(i * 0.013) * 0.1);
    const q = quantizeQ4_0(w);
    const qs = new Uint8Array(hostBuffer(q.qs.byteLength));
    const d = new Uint16Array(hostBuffer(q.d.byteLength));
    qs.set(q.qs);
    d.set(q.d);
    const x = Float32Array.from({ length: m * k }, (_, i) => Math.cos(i * 0.7));
    const kern = cpuKernels({ threads: 2 });
    const a = new Float32Array(m * n), b = new Float32Array(m * n);
    kern.gemmQ4_0(x, m, k, q, n, a);
    kern.gemmQ4_0(x, m, k, { qs, d }, n, b);
    expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
  });
});
