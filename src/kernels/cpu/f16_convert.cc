// f16 <-> f32 for KV-cache rows, vectorised where the CPU allows.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "core/isa.h"
#include "kernels/cpu/cpu_kernels.h"
#if FLASHNEOX_X86
#include <immintrin.h>
#endif

namespace flashneox::cpu {

#if FLASHNEOX_X86
namespace {

__attribute__((target("avx512f"))) void widen_avx512(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
  for (; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

__attribute__((target("avx512f"))) void narrow_avx512(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                        _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

__attribute__((target("avx2,f16c"))) void widen_avx2(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

__attribute__((target("avx2,f16c"))) void narrow_avx2(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

}  // namespace
#endif

void widen_f16(const uint16_t* src, float* dst, int64_t n) {
#if FLASHNEOX_X86
  switch (active_isa()) {
    case Isa::Avx512: return widen_avx512(src, dst, n);
    case Isa::Avx2: return widen_avx2(src, dst, n);
    case Isa::Scalar: break;
  }
#endif
  for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

void narrow_f16(const float* src, uint16_t* dst, int64_t n) {
#if FLASHNEOX_X86
  switch (active_isa()) {
    case Isa::Avx512: return narrow_avx512(src, dst, n);
    case Isa::Avx2: return narrow_avx2(src, dst, n);
    case Isa::Scalar: break;
  }
#endif
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

}  // namespace flashneox::cpu
