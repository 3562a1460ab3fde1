// Per-ISA clones of a plain loop (AVX-512, AVX2, baseline), picked once by the
// dynamic loader. ThreadSanitizer instruments the loader's resolver, which
// then runs before TSan is set up and crashes, so TSan builds use the
// baseline clone only. Off x86 (aarch64) there is one build of each loop.
#pragma once

// x86 intrinsics and the AVX kernels exist only where this is 1.
#if defined(__x86_64__) || defined(__i386__)
#define FLASHNEOX_X86 1
#else
#define FLASHNEOX_X86 0
#endif

#if defined(__SANITIZE_THREAD__) || !FLASHNEOX_X86
#define FLASHNEOX_ISA_CLONES
#else
#define FLASHNEOX_ISA_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
