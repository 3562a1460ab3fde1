#include <cstdlib>
#include <cstring>

#include "core/isa.h"

namespace flashneox {

namespace {
Isa detect() {
  Isa best = Isa::Scalar;  // the portable kernels, on every architecture
#if FLASHNEOX_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = Isa::Avx2;
  if (__builtin_cpu_supports("avx512f")) best = Isa::Avx512;
#endif
  if (const char* forced = std::getenv("FLASHNEOX_ISA")) {
    Isa wanted = best;
    if (std::strcmp(forced, "scalar") == 0) wanted = Isa::Scalar;
    if (std::strcmp(forced, "avx2") == 0) wanted = Isa::Avx2;
    if (std::strcmp(forced, "avx512") == 0) wanted = Isa::Avx512;
    if (static_cast<int>(wanted) < static_cast<int>(best)) best = wanted;  // never above the CPU
  }
  return best;
}
}  // namespace

Isa supported_isa() {
  static const Isa isa = detect();
  return isa;
}

namespace {
Isa g_forced = Isa::Avx512;
}

Isa active_isa() {
  return static_cast<int>(g_forced) < static_cast<int>(supported_isa()) ? g_forced
                                                                         : supported_isa();
}

void limit_isa(Isa isa) { g_forced = isa; }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

}  // namespace flashneox
