// Per-ISA clones of a plain loop (AVX-512, AVX2, baseline), picked once by the
// dynamic loader. ThreadSanitizer instruments the loader's resolver, which
// then runs before TSan is set up and crashes, so TSan builds use the
// baseline clone only.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define FLASHNEOX_ISA_CLONES
#else
#define FLASHNEOX_ISA_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
