/*
 * weft_cpu_kernels: the N-API entry points, the CPU feature check, the activations' Q8_0 quantization
 * (shared by every ISA) and a small persistent thread pool. A call splits its output rows over `threads`
 * (the calling thread is one); a pool busy with another JS thread's call runs the new call on its caller alone.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <node_api.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"
#include "q4-tile.h"

/* ---------------------------------------------------------------- fp16 (as src/fp16.ts) */

uint16_t weft_fp32_to_fp16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000, exp = (x >> 23) & 0xff, mant = x & 0x7fffff;
  if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
  int e = (int)exp - 112;
  if (e >= 0x1f) return (uint16_t)(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return (uint16_t)sign;
    mant |= 0x800000;
    int shift = 14 - e;
    uint32_t half = 1u << (shift - 1), rem = mant & ((1u << shift) - 1), h = mant >> shift;
    if (rem > half || (rem == half && (h & 1))) h++;
    return (uint16_t)(sign | h);
  }
  uint32_t h = ((uint32_t)e << 10) | (mant >> 13), rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return (uint16_t)(sign | h);
}

float weft_fp16_to_fp32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, x;
  if (exp == 0) {
    float v = (float)mant * 0x1p-24f;
    return sign ? -v : v;
  }
  x = exp == 0x1f ? (sign | 0x7f800000 | (mant << 13)) : (sign | ((exp + 112) << 23) | (mant << 13));
  float f;
  memcpy(&f, &x, 4);
  return f;
}

/* ---------------------------------------------------------------- activations: Q8_0 blocks, halves to even */

static void quantize_act(act_t *a) {
  for (int i = 0; i < a->m; i++)
    for (int b = 0; b < a->nb; b++) {
      const float *x = a->x + (size_t)i * a->k + (size_t)b * QK;
      int8_t *q = a->qs + (size_t)i * a->k + (size_t)b * QK;
      float amax = 0;
      for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
      const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
      int32_t s = 0;
      for (int j = 0; j < QK; j++) s += q[j] = (int8_t)nearbyintf(x[j] * id);
      a->d[(size_t)i * a->nb + b] = weft_fp16_to_fp32(weft_fp32_to_fp16(d));
      a->sx[(size_t)i * a->nb + b] = s;
    }
}

/* ---------------------------------------------------------------- ISAs, best first, present on this CPU */

static const isa_t *isas[3];
static int n_isas;

static void detect(void) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("f16c") &&
      __builtin_cpu_supports("fma"))
    isas[n_isas++] = &isa_avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) isas[n_isas++] = &isa_avx2;
  isas[n_isas++] = &isa_scalar;
}

/* ---------------------------------------------------------------- the pool */

#define MAX_THREADS 64
typedef struct {
  int kind; /* 0 q8_0, 1 q4_0, 2 bf16, 3 fn(ctx, part, parts), 4 q4_0 in tile16 (q4-tile.h) */
  void (*fn)(const void *ctx, int t, int nt);
  const void *ctx;
  const isa_t *isa;
  const act_t *a;
  const void *w;
  const uint16_t *wd;
  int n, nt;
  float *out;
} job_t;

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER; /* one call owns the pool at a time */
/* The pool's call: `current`, published as generation `generation`. Its work (rows, or parts for kind 3) goes in
 * chunks taken in turn (next_item) and counted when done (done_items). A worker works on a call only between
 * active++ and active--, and only while that call is open (generation is still its own, closed is not): the
 * caller closes it once all its work is done and waits for the workers inside, never for one that has not woken.
 * So a worker the OS deschedules (another tenant on a shared machine) holds back at most the chunk it holds. */
static atomic_uint generation, closed;
static atomic_int active, next_item, done_items;
static job_t current;
static int n_workers;

/* Sleeping until `generation` moves on. On Linux a futex on the word itself: no condition variable, whose
 * glibc 2.36 implementation was seen to hang a broadcast in __condvar_quiesce_and_switch_g1 with these
 * workers (glibc bug 25847); the kernel compares the word before sleeping, so no wake-up is lost. */
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <limits.h>
/* The wake-up is a system call, made only when a worker sleeps: in a decode step the calls come back to back and
 * the workers are still spinning. (A worker counts itself in `sleepers` before it reads the word; the caller moves
 * the word before it reads `sleepers`, both sequentially consistent: either the caller sees the sleeper, or the
 * sleeper sees the new word and does not sleep.) */
static atomic_int sleepers;
static void sleep_while_generation(unsigned seen) {
  atomic_fetch_add(&sleepers, 1);
  while (atomic_load(&generation) == seen) syscall(SYS_futex, (unsigned *)&generation, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
  atomic_fetch_sub(&sleepers, 1);
}
static void publish_generation(unsigned *g) {
  *g = atomic_fetch_add(&generation, 1) + 1;
  if (atomic_load(&sleepers) > 0) syscall(SYS_futex, (unsigned *)&generation, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}
#else
static pthread_mutex_t wake_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cv = PTHREAD_COND_INITIALIZER;
static void sleep_while_generation(unsigned seen) {
  pthread_mutex_lock(&wake_mu);
  while (atomic_load_explicit(&generation, memory_order_acquire) == seen) pthread_cond_wait(&wake_cv, &wake_mu);
  pthread_mutex_unlock(&wake_mu);
}
static void publish_generation(unsigned *g) {
  pthread_mutex_lock(&wake_mu);
  *g = atomic_fetch_add(&generation, 1) + 1;
  pthread_cond_broadcast(&wake_cv);
  pthread_mutex_unlock(&wake_mu);
}
#endif

/* Q4_0 tile16 rows [r0, r1) on an ISA without tile kernels: each whole tile put back in rows (q4-tile.h) and run by
 * the ISA's q4_0; the last n % 16 rows are rows already. */
static void q4_0_untiled(const isa_t *I, const act_t *a, const uint8_t *w, const uint16_t *wd, int r0, int r1, int n, float *out) {
  const size_t wrow = (size_t)a->k / 2, nb = (size_t)a->nb;
  uint8_t *tq = malloc(Q4T_ROWS * wrow);
  uint16_t *td = malloc(Q4T_ROWS * nb * 2);
  int r = r0;
  for (; r + Q4T_ROWS <= r1; r += Q4T_ROWS) {
    const uint8_t *sq = w + (size_t)r * wrow;
    const uint16_t *sd = wd + (size_t)r * nb;
    for (int l = 0; l < Q4T_ROWS; l++) {
      for (size_t j = 0; j < wrow; j++) tq[l * wrow + j] = sq[q4t_at(wrow, Q4T_QS, l, j, NULL)];
      for (size_t b = 0; b < nb; b++) td[l * nb + b] = sd[q4t_at(nb, Q4T_D, l, b, NULL)];
    }
    I->q4_0(a, tq, td, 0, Q4T_ROWS, n, out + r);
  }
  if (r < r1) I->q4_0(a, w, wd, r, r1, n, out);
  free(tq);
  free(td);
}

/* Rows [r0, r1) of out [m, n] (contiguous) for job kind 0 q8_0, 1 q4_0, 2 bf16, 4 q4_0 tile16 on prepared activations. */
void weft_q_rows(const isa_t *I, int kind, const act_t *a, const void *w, const uint16_t *wd, int r0, int r1, int n, float *out) {
  if (kind == 2) I->bf16(a, w, r0, r1, n, out);
  else if (kind == 4) {
    if (I->q4_0_tile16) I->q4_0_tile16(a, w, wd, r0, r1, n, out);
    else q4_0_untiled(I, a, w, wd, r0, r1, n, out);
  } else (kind ? I->q4_0 : I->q8_0)(a, w, wd, r0, r1, n, out);
}

static void run_rows(const job_t *j, int r0, int r1) { weft_q_rows(j->isa, j->kind, j->a, j->w, j->wd, r0, r1, j->n, j->out); }

/* Rows: thread t owns one contiguous range (its 1/nt of the rows, from a multiple of 16), taken from its front in
 * chunks (about 8 a thread, multiples of 16), so that each thread reads its weights as one sequential stream (the
 * kernels prefetch ahead along it; interleaved chunks left each thread a cold start and a prefetch into the other's
 * rows every chunk). A thread done with its own range takes chunks from the back of the others' (a thread the OS
 * deschedules holds back at most the chunk it holds). A range is (front, back) in one 64-bit word. */
static _Atomic uint64_t ranges[MAX_THREADS];

static int take(int t, int chunk, int steal, int *r0, int *r1) {
  uint64_t s = atomic_load_explicit(&ranges[t], memory_order_relaxed);
  for (;;) {
    const int f = (int)(uint32_t)s, b = (int)(uint32_t)(s >> 32);
    if (f >= b) return 0;
    int nf = f, nb = b;
    if (steal) {
      nb = (b - chunk) & ~15;
      if (nb < f) nb = f;
      *r0 = nb, *r1 = b;
    } else {
      nf = f + chunk < b ? f + chunk : b;
      *r0 = f, *r1 = nf;
    }
    if (atomic_compare_exchange_weak_explicit(&ranges[t], &s, ((uint64_t)(uint32_t)nb << 32) | (uint32_t)nf, memory_order_relaxed,
                                              memory_order_relaxed))
      return 1;
  }
}

static void split_rows(const job_t *j) {
  for (int t = 0; t < j->nt; t++) {
    const int r0 = (int)((long)j->n * t / j->nt) & ~15, r1 = t + 1 == j->nt ? j->n : (int)((long)j->n * (t + 1) / j->nt) & ~15;
    atomic_store_explicit(&ranges[t], ((uint64_t)(uint32_t)r1 << 32) | (uint32_t)r0, memory_order_relaxed);
  }
}

/* A kind 3 job's parts: n when given (weft_parallel_parts), else one a thread. */
static int kind3_parts(const job_t *j) { return j->n > 0 ? j->n : j->nt; }

/* Alone: all of it. In the pool (thread `id`): kind 3's parts one at a time by whichever thread comes; rows from the
 * thread's own range, then from the others' (above). A row's result does not depend on which thread computes it. */
static void run_part(const job_t *j, int id) {
  if (j->nt == 1) {
    if (j->kind == 3) j->fn(j->ctx, 0, 1);
    else run_rows(j, 0, j->n);
    return;
  }
  if (j->kind == 3) {
    const int parts = kind3_parts(j);
    for (int i0; (i0 = atomic_fetch_add_explicit(&next_item, 1, memory_order_relaxed)) < parts;) {
      j->fn(j->ctx, i0, parts);
      atomic_fetch_add_explicit(&done_items, 1, memory_order_release);
    }
    return;
  }
  const int chunk = ((j->n + j->nt * 8 - 1) / (j->nt * 8) + 15) & ~15;
  for (int v = 0; v < j->nt; v++) {
    const int t = (id + v) % j->nt;
    for (int r0, r1; take(t, chunk, v > 0, &r0, &r1);) {
      run_rows(j, r0, r1);
      atomic_fetch_add_explicit(&done_items, r1 - r0, memory_order_release);
    }
  }
}

static void *worker(void *arg) {
  const int id = (int)(intptr_t)arg;
  unsigned seen = 0;
  for (;;) {
    /* spin a little (calls come back to back in a decode step), then sleep */
    int spins = 0;
    while (atomic_load_explicit(&generation, memory_order_acquire) == seen && spins < 20000) {
      __builtin_ia32_pause();
      spins++;
    }
    sleep_while_generation(seen);
    seen = atomic_load(&generation);
    atomic_fetch_add(&active, 1);
    if (atomic_load(&generation) == seen && atomic_load(&closed) != seen && id < current.nt) run_part(&current, id);
    atomic_fetch_sub(&active, 1);
  }
  return NULL;
}

static void run(job_t *j) {
  if (j->nt > 1 && pthread_mutex_trylock(&pool_mu) == 0) {
    while (n_workers < j->nt - 1 && n_workers < MAX_THREADS - 1) {
      pthread_t t;
      if (pthread_create(&t, NULL, worker, (void *)(intptr_t)(n_workers + 1)) != 0) break;
      pthread_detach(t);
      n_workers++;
    }
    if (j->nt > n_workers + 1) j->nt = n_workers + 1;
    current = *j;
    atomic_store(&next_item, 0);
    if (current.kind != 3) split_rows(&current);
    atomic_store(&done_items, 0);
    unsigned g;
    publish_generation(&g);
    run_part(&current, 0);
    const int items = current.kind == 3 ? kind3_parts(&current) : current.n;
    int spins = 0;
    while (atomic_load_explicit(&done_items, memory_order_acquire) < items)
      if (++spins > 20000) sched_yield(); else __builtin_ia32_pause();
    atomic_store(&closed, g);
    spins = 0;
    while (atomic_load(&active) > 0)
      if (++spins > 20000) sched_yield(); else __builtin_ia32_pause();
    pthread_mutex_unlock(&pool_mu);
    return;
  }
  j->nt = 1;
  run_part(j, 0);
}

/* For native/plan-ops.c: `fn(ctx, part, parts)` on up to `nt` threads (the caller's included); parts may be fewer. */
void weft_parallel(void (*fn)(const void *ctx, int t, int nt), const void *ctx, int nt) {
  job_t j = {3, fn, ctx, NULL, NULL, NULL, NULL, 0, nt < 1 ? 1 : nt > MAX_THREADS ? MAX_THREADS : nt, NULL};
  run(&j);
}

/* The same split into `parts` (≥ 1) parts taken in turn by whichever thread comes (alone: fn(ctx, 0, 1)), so that
 * a thread that starts late leaves its share to the others instead of holding the call back. */
void weft_parallel_parts(void (*fn)(const void *ctx, int t, int nt), const void *ctx, int nt, int parts) {
  job_t j = {3, fn, ctx, NULL, NULL, NULL, NULL, parts < 1 ? 1 : parts, nt < 1 ? 1 : nt > MAX_THREADS ? MAX_THREADS : nt, NULL};
  run(&j);
}

const isa_t *weft_isa(int i) { return i >= 0 && i < n_isas ? isas[i] : NULL; }

/* The Q8_0 activations and the ISA's prep of x [m, k] (row stride ldx) for a block-format (q4: Q4_0) or bf16 gemm. */
void weft_prep_act(const isa_t *I, act_t *a, int q4, int bf16);
void weft_release_act(const isa_t *I, act_t *a);

/* ---------------------------------------------------------------- N-API */

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, "weft_cpu_kernels: " #call " failed"); return NULL; } } while (0)

static void *typed(napi_env env, napi_value v, napi_typedarray_type want, size_t *len) {
  napi_typedarray_type t;
  void *data;
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return NULL;
  if (napi_get_typedarray_info(env, v, &t, len, &data, NULL, NULL) != napi_ok || t != want) return NULL;
  return data;
}

static napi_value gemm(napi_env env, napi_callback_info info, int kind) {
  const int nargs = kind == 2 ? 8 : 9;
  size_t argc = 9;
  napi_value argv[9];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if ((int)argc != nargs) { napi_throw_type_error(env, NULL, "weft_cpu_kernels: wrong number of arguments"); return NULL; }
  int32_t isa, nt, m, k, n;
  CHECK(napi_get_value_int32(env, argv[0], &isa));
  CHECK(napi_get_value_int32(env, argv[1], &nt));
  CHECK(napi_get_value_int32(env, argv[3], &m));
  CHECK(napi_get_value_int32(env, argv[4], &k));
  CHECK(napi_get_value_int32(env, argv[nargs - 2], &n));
  size_t lx, lq, ld = 0, lo;
  float *x = typed(env, argv[2], napi_float32_array, &lx);
  const int q4 = kind == 1 || kind == 4;
  void *w = typed(env, argv[5], kind == 0 ? napi_int8_array : q4 ? napi_uint8_array : napi_uint16_array, &lq);
  uint16_t *wd = kind == 2 ? NULL : typed(env, argv[6], napi_uint16_array, &ld);
  float *out = typed(env, argv[nargs - 1], napi_float32_array, &lo);
  if (isa < 0 || isa >= n_isas || nt < 1 || m < 1 || k < 1 || n < 1 || !x || !w || !out || (kind != 2 && (!wd || k % QK)) ||
      lx != (size_t)m * k || lo != (size_t)m * n || lq != (size_t)n * k / (q4 ? 2 : 1) || (kind != 2 && ld != (size_t)n * k / QK)) {
    napi_throw_range_error(env, NULL, "weft_cpu_kernels: bad arguments (isa, threads, shapes or array types)");
    return NULL;
  }
  act_t a = {m, k, k / QK, x, NULL, NULL, NULL, NULL, NULL};
  const isa_t *I = isas[isa];
  weft_prep_act(I, &a, q4, kind == 2);
  job_t j = {kind, NULL, NULL, I, &a, w, wd, n, nt > MAX_THREADS ? MAX_THREADS : nt, out};
  run(&j);
  weft_release_act(I, &a);
  return NULL;
}

void weft_prep_act(const isa_t *I, act_t *a, int q4, int bf16) {
  if (!bf16) {
    a->qs = malloc((size_t)a->m * a->k);
    a->d = malloc((size_t)a->m * a->nb * sizeof(float));
    a->sx = malloc((size_t)a->m * a->nb * sizeof(int32_t));
    if (I->quantize) I->quantize(a);
    else quantize_act(a);
    if (I->prep_q) I->prep_q(a, q4);
  } else {
    /* BF16_ORDER's pairs: the vector paths read each chunk's even and odd elements as two contiguous vectors */
    const int kc = a->k / 32;
    a->xp = aligned_alloc(64, ((size_t)a->m * (kc ? kc : 1) * 32) * sizeof(float));
    for (int i = 0; i < a->m; i++)
      for (int c = 0; c < kc; c++) {
        const float *x = a->x + (size_t)i * a->k + (size_t)c * 32;
        float *p = a->xp + ((size_t)i * kc + c) * 32;
        for (int l = 0; l < 16; l++) p[l] = x[2 * l], p[16 + l] = x[2 * l + 1];
      }
    if (I->prep_bf16) I->prep_bf16(a);
  }
}

void weft_release_act(const isa_t *I, act_t *a) {
  if (a->extra && I->release) I->release(a);
  free(a->qs);
  free(a->d);
  free(a->sx);
  free(a->xp);
  a->xp = NULL;
  a->qs = NULL;
  a->d = NULL;
  a->sx = NULL;
}

/* Kind 0-2 job on prepared activations, rows split over nt threads as gemm does. */
void weft_run_q(const isa_t *I, int kind, const act_t *a, const void *w, const uint16_t *wd, int n, int nt, float *out) {
  job_t j = {kind, NULL, NULL, I, a, w, wd, n, nt < 1 ? 1 : nt > MAX_THREADS ? MAX_THREADS : nt, out};
  run(&j);
}

static napi_value gemm_q8_0(napi_env env, napi_callback_info info) { return gemm(env, info, 0); }
static napi_value gemm_q4_0(napi_env env, napi_callback_info info) { return gemm(env, info, 1); }
static napi_value gemm_bf16(napi_env env, napi_callback_info info) { return gemm(env, info, 2); }
static napi_value gemm_q4_0_tile16(napi_env env, napi_callback_info info) { return gemm(env, info, 4); }

static napi_value info_fn(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value obj, arr, s, mt;
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_create_array_with_length(env, n_isas, &arr));
  for (int i = 0; i < n_isas; i++) {
    CHECK(napi_create_string_utf8(env, isas[i]->name, NAPI_AUTO_LENGTH, &s));
    CHECK(napi_set_element(env, arr, i, s));
  }
  CHECK(napi_set_named_property(env, obj, "isas", arr));
  /* the ISAs with tile16 kernels of their own (the others read a tile16 weight by putting each tile back in rows) */
  napi_value tiled;
  int nt = 0;
  CHECK(napi_create_array(env, &tiled));
  for (int i = 0; i < n_isas; i++)
    if (isas[i]->q4_0_tile16) {
      CHECK(napi_create_string_utf8(env, isas[i]->name, NAPI_AUTO_LENGTH, &s));
      CHECK(napi_set_element(env, tiled, nt++, s));
    }
  CHECK(napi_set_named_property(env, obj, "q4_0Tile16", tiled));
  CHECK(napi_create_int32(env, MAX_THREADS, &mt));
  CHECK(napi_set_named_property(env, obj, "maxThreads", mt));
  return obj;
}

/* The pool's threads are detached and live as long as the process. Node unloads an addon (dlclose) when the
 * last environment that loaded it ends — a rank's worker thread at exit — and a pool thread then ran unmapped
 * code: SIGSEGV at exit in ~1 of 5 `weft generate --dtype bfloat16` runs (host plan, 2 kernel threads). Loading
 * this library once more with RTLD_NODELETE keeps it mapped for the life of the process. */
static void pin_self(void) {
  Dl_info info;
  if (dladdr((void *)pin_self, &info) && info.dli_fname) dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE);
}

static void once_per_process(void) {
  pin_self();
  detect();
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
napi_status weft_define_plan_ops(napi_env env, napi_value exports);
napi_status weft_define_host_memory(napi_env env, napi_value exports);

NAPI_MODULE_INIT() {
  pthread_once(&once, once_per_process);
  napi_property_descriptor props[] = {
    {"info", NULL, info_fn, NULL, NULL, NULL, napi_enumerable, NULL},
    {"gemmQ8_0", NULL, gemm_q8_0, NULL, NULL, NULL, napi_enumerable, NULL},
    {"gemmQ4_0", NULL, gemm_q4_0, NULL, NULL, NULL, napi_enumerable, NULL},
    {"gemmBf16", NULL, gemm_bf16, NULL, NULL, NULL, napi_enumerable, NULL},
    {"gemmQ4_0Tile16", NULL, gemm_q4_0_tile16, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  if (weft_define_plan_ops(env, exports) != napi_ok) return NULL;
  if (weft_define_host_memory(env, exports) != napi_ok) return NULL;
  return exports;
}
