// Sixteen float lanes, three ways: one AVX-512 register, two AVX2 registers,
// or a plain array. Kernels written once against these give the same bits on
// every instruction set: every operation is per lane and exactly rounded
// (fma is fused everywhere, exp is our own polynomial), and reductions are
// left to the caller, who does them in one fixed order.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#include "core/isa.h"
#if FLASHNEOX_X86
#include <immintrin.h>
#endif

namespace flashneox::cpu {

// exp(x) for x <= 0 (softmax weights), Cephes' expf: n = round(x log2 e),
// r = x - n ln 2 in two parts, a degree-6 polynomial, times 2^n. Inputs
// below -87 are clamped there (the result stays a normal float, ~1.6e-38).
namespace exp_constants {
constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kMin = -87.0f;
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f,
                kP3 = 4.1665795894e-2f, kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;
}  // namespace exp_constants

inline float exp_lane(float x) {
  using namespace exp_constants;
  x = x < kMin ? kMin : x;
  const float n = std::nearbyint(x * kLog2e);  // ties to even, as the vector rounds
  float r = std::fma(n, -kLn2Hi, x);
  r = std::fma(n, -kLn2Lo, r);
  float p = std::fma(kP0, r, kP1);
  p = std::fma(p, r, kP2);
  p = std::fma(p, r, kP3);
  p = std::fma(p, r, kP4);
  p = std::fma(p, r, kP5);
  const float y = std::fma(p, r * r, r) + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

struct ScalarLanes {
  struct V {
    float x[16];
  };
#define FNX_EACH(expr)              \
  V r;                              \
  for (int i = 0; i < 16; ++i) expr; \
  return r
  static V zero() { FNX_EACH(r.x[i] = 0.0f); }
  static V set1(float v) { FNX_EACH(r.x[i] = v); }
  static V load(const float* p) { FNX_EACH(r.x[i] = p[i]); }
  static V load(const uint16_t* p) { FNX_EACH(r.x[i] = f16_to_f32(p[i])); }
  static void store(float* p, V v) { std::memcpy(p, v.x, sizeof v.x); }
  static V add(V a, V b) { FNX_EACH(r.x[i] = a.x[i] + b.x[i]); }
  static V mul(V a, V b) { FNX_EACH(r.x[i] = a.x[i] * b.x[i]); }
  static V fma(V a, V b, V c) { FNX_EACH(r.x[i] = std::fma(a.x[i], b.x[i], c.x[i])); }
  static V exp(V a) { FNX_EACH(r.x[i] = exp_lane(a.x[i])); }
#undef FNX_EACH
};

#if FLASHNEOX_X86

#define FNX_AVX512_LANES __attribute__((target("avx512f"), always_inline)) static inline
struct Avx512Lanes {
  using V = __m512;
  FNX_AVX512_LANES V zero() { return _mm512_setzero_ps(); }
  FNX_AVX512_LANES V set1(float v) { return _mm512_set1_ps(v); }
  FNX_AVX512_LANES V load(const float* p) { return _mm512_loadu_ps(p); }
  FNX_AVX512_LANES V load(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  FNX_AVX512_LANES void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  FNX_AVX512_LANES V add(V a, V b) { return _mm512_add_ps(a, b); }
  FNX_AVX512_LANES V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  FNX_AVX512_LANES V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  FNX_AVX512_LANES V exp(V x) {
    using namespace exp_constants;
    x = _mm512_max_ps(x, _mm512_set1_ps(kMin));
    const V n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kLn2Hi), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kLn2Lo), r);
    V p = _mm512_fmadd_ps(_mm512_set1_ps(kP0), r, _mm512_set1_ps(kP1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP5));
    const V y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(y, _mm512_castsi512_ps(bits));
  }
};
#undef FNX_AVX512_LANES

#define FNX_AVX2_LANES __attribute__((target("avx2,fma,f16c"), always_inline)) static inline
struct Avx2Lanes {
  struct V {
    __m256 lo, hi;
  };
  FNX_AVX2_LANES V zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
  FNX_AVX2_LANES V set1(float v) { return {_mm256_set1_ps(v), _mm256_set1_ps(v)}; }
  FNX_AVX2_LANES V load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
  FNX_AVX2_LANES V load(const uint16_t* p) {
    return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)))};
  }
  FNX_AVX2_LANES void store(float* p, V v) {
    _mm256_storeu_ps(p, v.lo);
    _mm256_storeu_ps(p + 8, v.hi);
  }
  FNX_AVX2_LANES V add(V a, V b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
  FNX_AVX2_LANES V mul(V a, V b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
  FNX_AVX2_LANES V fma(V a, V b, V c) {
    return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
  }
  FNX_AVX2_LANES __m256 exp8(__m256 x) {
    using namespace exp_constants;
    x = _mm256_max_ps(x, _mm256_set1_ps(kMin));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kLn2Hi), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kLn2Lo), r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(kP0), r, _mm256_set1_ps(kP1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP5));
    const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
  }
  FNX_AVX2_LANES V exp(V x) { return {exp8(x.lo), exp8(x.hi)}; }
};
#undef FNX_AVX2_LANES

#endif  // FLASHNEOX_X86

}  // namespace flashneox::cpu
