/**
 * Memory read bandwidth at native speed: a small C program, compiled here at
 * run time with the machine's `cc -O3 -march=native`, where `threads` pthreads
 * each sum their own buffer (first-touched by that thread) at once. The JS
 * probe (memory-bandwidth.ts) reads far less than the hardware gives, so it
 * cannot bound decode; this one is what llama.cpp-class code sees.
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
#include <time.h>

static size_t words;
static int threads, reps;
static pthread_barrier_t barrier;
static double *best;
static volatile uint64_t sink;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static void *reader(void *arg) {
  int id = (int)(intptr_t)arg;
  uint64_t *a = aligned_alloc(64, words * 8);
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
  free(a);
  return NULL;
}

int main(int argc, char **argv) {
  threads = argc > 1 ? atoi(argv[1]) : 1;
  size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 256;
  reps = argc > 3 ? atoi(argv[3]) : 7;
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
  /** GB/s by thread count; null where no compiler was found. */
  gbPerS: Record<number, number> | null;
  /** The compiler command used, or why none ran. */
  how: string;
}

/** Compile once (cached by source) and measure at each thread count; best rep of `reps`. */
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
  for (const t of threadCounts) gbPerS[t] = Number(execFileSync(exe, [String(t), String(mib), String(reps)], { encoding: 'utf8' }).trim());
  return { gbPerS, how: `${cc} ${flags.join(' ')}, ${mib} MiB per thread, best of ${reps}` };
}

function hash(s: string): string {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h.toString(16);
}
