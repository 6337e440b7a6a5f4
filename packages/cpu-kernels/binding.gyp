{
  "targets": [
    {
      "target_name": "weft_isa_avx512",
      "type": "static_library",
      "sources": ["native/avx512.c", "native/dense.c", "native/attention.c"],
      "defines": ["DENSE_ISA=avx512"],
      "cflags": ["-O3", "-fPIC", "-std=c11", "-ffp-contract=off", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512vnni", "-mfma", "-mf16c", "-mprefer-vector-width=512"]
    },
    {
      "target_name": "weft_isa_avx2",
      "type": "static_library",
      "sources": ["native/avx2.c", "native/dense.c", "native/attention.c"],
      "defines": ["DENSE_ISA=avx2"],
      "cflags": ["-O3", "-fPIC", "-std=c11", "-ffp-contract=off", "-mavx2", "-mfma", "-mf16c"]
    },
    {
      "target_name": "weft_cpu_kernels",
      "sources": ["native/addon.c", "native/scalar.c", "native/dense.c", "native/attention.c", "native/plan-ops.c", "native/host-memory.c"],
      "dependencies": ["weft_isa_avx512", "weft_isa_avx2"],
      "cflags": ["-O3", "-std=c11", "-ffp-contract=off", "-pthread"],
      "ldflags": ["-pthread"],
      "libraries": ["-lm"],
      "defines": ["NAPI_VERSION=8", "DENSE_ISA=scalar"]
    }
  ]
}
