// Which instruction set the hot loops use, and the way a loop gets a copy
// for each: FLASHNEOX_ISA=scalar|avx2|avx512 forces a lower one (never above
// the CPU), so every path can be tested and timed on one machine.
#pragma once

// x86 intrinsics and the AVX kernels exist only where this is 1.
#if defined(__x86_64__) || defined(__i386__)
#define FLASHNEOX_X86 1
#else
#define FLASHNEOX_X86 0
#endif

namespace flashneox {

enum class Isa { Scalar, Avx2, Avx512 };
Isa active_isa();
Isa supported_isa();      // the best this CPU (and FLASHNEOX_ISA) allows
void limit_isa(Isa isa);  // tests: use at most this ISA from now on
const char* isa_name(Isa isa);

}  // namespace flashneox

// A plain loop compiled once per instruction set and picked at each call by
// active_isa(). Write the loop as `FLASHNEOX_LOOP_BODY RET NAME_body(...)`;
// FLASHNEOX_PER_ISA(RET, NAME, (PARAMS), (ARGS)) then defines NAME. The body
// is inlined into a copy per target, where the vectoriser uses its widest
// registers; off x86 there is one copy.
#define FLASHNEOX_LOOP_BODY __attribute__((always_inline)) inline
#if FLASHNEOX_X86
#define FLASHNEOX_PER_ISA(RET, NAME, PARAMS, ARGS)                                                     \
  __attribute__((target("avx512f"))) RET NAME##_avx512 PARAMS { return NAME##_body ARGS; }           \
  __attribute__((target("avx2,fma,f16c"))) RET NAME##_avx2 PARAMS { return NAME##_body ARGS; }       \
  RET NAME##_baseline PARAMS { return NAME##_body ARGS; }                                             \
  RET NAME PARAMS {                                                                                   \
    switch (::flashneox::active_isa()) {                                                              \
      case ::flashneox::Isa::Avx512: return NAME##_avx512 ARGS;                                       \
      case ::flashneox::Isa::Avx2: return NAME##_avx2 ARGS;                                           \
      default: return NAME##_baseline ARGS;                                                           \
    }                                                                                                 \
  }
#else
#define FLASHNEOX_PER_ISA(RET, NAME, PARAMS, ARGS) \
  RET NAME PARAMS { return NAME##_body ARGS; }
#endif
