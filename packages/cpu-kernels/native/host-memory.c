/*
 * Host memory for the big buffers the kernels stream (packed linear weights, bf16 embeddings / LM head): an
 * ArrayBuffer whose pages are 2 MiB transparent huge pages where Linux gives them. Decode reads every weight once
 * a token; with 4 KiB pages each thread's stream crosses a page (a TLB miss, and the hardware prefetchers stop at
 * page boundaries) every 4 KiB, with 2 MiB pages every 2 MiB: on this machine a plain read stream went 41-43 →
 * 49-51 GB/s at 2 threads (docs/benchmarks/cpu-kernels.md). THP is usually in `madvise` mode (only regions that
 * ask get huge pages), so the region is mapped anonymous, 2 MiB-aligned, and advised MADV_HUGEPAGE before its
 * first touch. The mapping is the bytes rounded up to 4 KiB, not to 2 MiB: a tail short of 2 MiB stays in small
 * pages, so resident memory does not grow by the rounding. Elsewhere (no mmap / madvise), or when asked for plain
 * pages, the bytes come from calloc: the same zeroed bytes either way.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

#define HUGE_PAGE ((size_t)2 << 20)
#define SMALL_PAGE ((size_t)4096)

typedef struct {
  void *base;
  size_t len; /* mapped bytes (munmap) or 0 for calloc */
  int64_t bytes;
} region_t;

static void unmap(region_t *r) {
#ifdef __linux__
  if (r->len) munmap(r->base, r->len);
  else free(r->base);
#else
  free(r->base);
#endif
}

static void release(napi_env env, void *data, void *hint) {
  (void)data;
  region_t *r = hint;
  unmap(r);
  int64_t left;
  napi_adjust_external_memory(env, -r->bytes, &left);
  free(r);
}

/* `bytes` zeroed bytes; huge: 2 MiB-aligned and MADV_HUGEPAGE where Linux has it. Sets *advised when madvise took. */
static void *map_region(size_t bytes, int huge, size_t *len, int *advised) {
  *len = 0;
  *advised = 0;
#ifdef __linux__
  if (huge) {
    const size_t want = (bytes + SMALL_PAGE - 1) & ~(SMALL_PAGE - 1);
    uint8_t *p = mmap(NULL, want + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
      uint8_t *a = (uint8_t *)(((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
      if (a > p) munmap(p, (size_t)(a - p));
      if (p + want + HUGE_PAGE > a + want) munmap(a + want, (size_t)(p + want + HUGE_PAGE - (a + want)));
#ifdef MADV_HUGEPAGE
      *advised = madvise(a, want, MADV_HUGEPAGE) == 0;
#endif
      *len = want;
      return a;
    }
  }
#else
  (void)huge;
#endif
  return calloc(bytes ? bytes : 1, 1);
}

/* hostBuffer(bytes, hugePages) → ArrayBuffer; the buffer's `hugePages` property says whether madvise took. */
static napi_value host_buffer(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int64_t bytes;
  bool huge;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 || napi_get_value_int64(env, argv[0], &bytes) != napi_ok ||
      napi_get_value_bool(env, argv[1], &huge) != napi_ok || bytes < 0) {
    napi_throw_type_error(env, NULL, "weft_cpu_kernels: hostBuffer(bytes ≥ 0, hugePages: boolean)");
    return NULL;
  }
  region_t *r = malloc(sizeof *r);
  int advised;
  if (!r || !(r->base = map_region((size_t)bytes, huge, &r->len, &advised))) {
    free(r);
    napi_throw_error(env, NULL, "weft_cpu_kernels: hostBuffer: out of memory");
    return NULL;
  }
  r->bytes = bytes;
  napi_value ab, flag;
  if (napi_create_external_arraybuffer(env, r->base, (size_t)bytes, release, r, &ab) != napi_ok) {
    unmap(r);
    free(r);
    napi_throw_error(env, NULL, "weft_cpu_kernels: hostBuffer: napi_create_external_arraybuffer failed");
    return NULL;
  }
  int64_t total;
  napi_adjust_external_memory(env, bytes, &total);
  if (napi_get_boolean(env, advised != 0, &flag) == napi_ok) napi_set_named_property(env, ab, "hugePages", flag);
  return ab;
}

napi_status weft_define_host_memory(napi_env env, napi_value exports) {
  napi_property_descriptor p = {"hostBuffer", NULL, host_buffer, NULL, NULL, NULL, napi_enumerable, NULL};
  return napi_define_properties(env, exports, 1, &p);
}
