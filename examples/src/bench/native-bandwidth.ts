/**
 * Memory read bandwidth at native speed: a small C program, compiled here at
 * run time with the machine's `cc -O3 -march=native`, where `threads` pthreads
 * each sum their own buffer (first-touched by that thread) at once. The JS
 * probe (memory-bandwidth.ts) reads far less than the hardware gives, so it
 * cannot bound decode; this one is what llama.cpp-class code sees. Each thread
 * count is read twice, from 4 KiB pages and from 2 MiB transparent huge pages
 * (mapped 2 MiB-aligned, MADV_HUGEPAGE before the first touch, as
 * @weft/cpu-kernels' hostBuffer holds the weights), and the better is the
 * bound: the machine's best read rate, not what 4 KiB pages allow.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NATIVE_BANDWIDTH_C = String.raw`
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static size_t words;
static int threads, reps, huge;
static pthread_barrier_t barrier;
static double *best;
static volatile uint64_t sink;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static void *reader(void *arg) {
  int id = (int)(intptr_t)arg;
  uint64_t *a;
  if (huge) { /* 2 MiB-aligned, advised before the first touch (THP in madvise mode gives huge pages only then) */
    uint8_t *p = mmap(NULL, words * 8 + (2u << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); exit(1); }
    a = (uint64_t *)(((uintptr_t)p + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1));
    madvise(a, words * 8, MADV_HUGEPAGE);
  } else a = aligned_alloc(64, words * 8);
  for (size_t i = 0; i < words; i++) a[i] = i ^ (uint64_t)id; /* first touch: pages local to this thread */
  for (int r = 0; r < reps; r++) {
    pthread_barrier_wait(&barrier);
    double t0 = now();
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (size_t i = 0; i < words; i += 8) {
      s0 += a[i]; s1 += a[i + 1]; s2 += a[i + 2]; s3 += a[i + 3];
      s4 += a[i + 4]; s5 += a[i + 5]; s6 += a[i + 6]; s7 += a[i + 7];
    }
    sink += s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
    double dt = now() - t0;
    pthread_barrier_wait(&barrier);
    best[r * threads + id] = dt; /* a rep ends when its slowest reader ends (taken in main) */
  }
  if (!huge) free(a); /* the mapping goes with the process */
  return NULL;
}

int main(int argc, char **argv) {
  threads = argc > 1 ? atoi(argv[1]) : 1;
  size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 256;
  reps = argc > 3 ? atoi(argv[3]) : 7;
  huge = argc > 4 && strcmp(argv[4], "huge") == 0;
  words = mib * 1024 * 1024 / 8;
  best = calloc((size_t)reps * threads, sizeof(double));
  pthread_barrier_init(&barrier, NULL, threads);
  pthread_t tid[256];
  for (int i = 0; i < threads; i++) pthread_create(&tid[i], NULL, reader, (void *)(intptr_t)i);
  for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
  double top = 0;
  for (int r = 0; r < reps; r++) {
    double slowest = 0;
    for (int i = 0; i < threads; i++) if (best[r * threads + i] > slowest) slowest = best[r * threads + i];
    double gbs = (double)threads * words * 8 / slowest / 1e9;
    if (gbs > top) top = gbs;
  }
  printf("%.3f\n", top);
  return (int)(sink & 0);
}
`;

export interface NativeBandwidth {
  /** GB/s by thread count, the better of 4 KiB and huge pages; null where no compiler was found. */
  gbPerS: Record<number, number> | null;
  /** Each page size's reading: '4k' and 'huge' (2 MiB pages advised), GB/s by thread count. */
  byPages?: { '4k': Record<number, number>; huge: Record<number, number> };
  /** The compiler command used, or why none ran. */
  how: string;
}

/** Compile once (cached by source) and measure at each thread count from 4 KiB and from huge pages; best rep of `reps` each, the better of the two. */
export function measureNativeBandwidth(threadCounts: number[], mib = 256, reps = 7): NativeBandwidth {
  const cc = ['cc', 'gcc', 'clang'].find((c) => spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0);
  if (!cc) return { gbPerS: null, how: 'no C compiler (cc, gcc, clang) on PATH: native bandwidth not measured' };
  const dir = join(tmpdir(), 'weft-native-bandwidth');
  mkdirSync(dir, { recursive: true });
  const src = join(dir, 'bw.c');
  const exe = join(dir, `bw-${hash(NATIVE_BANDWIDTH_C)}`);
  const flags = ['-O3', '-march=native', '-pthread'];
  if (!existsSync(exe)) {
    writeFileSync(src, NATIVE_BANDWIDTH_C);
    try {
      execFileSync(cc, [...flags, '-o', exe, src], { stdio: 'pipe' });
    } catch (e) {
      return { gbPerS: null, how: `${cc} ${flags.join(' ')} failed: ${String((e as { stderr?: Buffer }).stderr ?? e).split('\n')[0]}` };
    }
  }
  const gbPerS: Record<number, number> = {};
  const byPages = { '4k': {} as Record<number, number>, huge: {} as Record<number, number> };
  const read = (t: number, pages: '4k' | 'huge') =>
    Number(execFileSync(exe, [String(t), String(mib), String(reps), ...(pages === 'huge' ? ['huge'] : [])], { encoding: 'utf8' }).trim());
  for (const t of threadCounts) {
    byPages['4k'][t] = read(t, '4k');
    byPages.huge[t] = read(t, 'huge');
    gbPerS[t] = Math.max(byPages['4k'][t]!, byPages.huge[t]!);
  }
  const pages = threadCounts.map((t) => `${t}t ${byPages['4k'][t]!.toFixed(1)} / ${byPages.huge[t]!.toFixed(1)}`).join(', ');
  return { gbPerS, byPages, how: `${cc} ${flags.join(' ')}, ${mib} MiB per thread, best of ${reps}, the better of 4 KiB / 2 MiB pages (${pages} GB/s)` };
}

function hash(s: string): string {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h.toString(16);
}
