// int8 weights with int8 activations (W8A8) on VNNI.
//
// Weights: symmetric int8 with one scale per output channel, in panels of 32
// output features laid out as [cols / 4][32][4] so one 128-byte load feeds
// vpdpbusd (4 products per int32 lane) for 32 outputs. Activations: each row
// quantized to int8 with its own absmax scale and stored offset by +128 as
// u8 (vpdpbusd multiplies unsigned by signed bytes); the offset is removed
// with the weights' column sums. Integer sums are exact, so every code path
// (VNNI, AVX2 or the scalar twin) and every batch gives the same bits.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/isa.h"
#include "core/parallel.h"
#include "kernels/cpu/cpu_kernels.h"
#if FLASHNEOX_X86
#include <immintrin.h>
#endif

namespace flashneox::cpu {

namespace {

constexpr int kPanel = 32;
constexpr int kMrVnni = 12;
constexpr int kMrAvx2 = 2;

int64_t padded_cols(int64_t cols) { return (cols + 3) / 4 * 4; }


// Row quantization: q = round(x / scale), scale = absmax / 127 (round half
// away from zero, branch-free so the loop vectorises), stored as q + zero in
// a byte: zero = 128 gives the u8 that vpdpbusd and the scalar twin take,
// zero = 0 the signed byte the AVX2 kernel takes.
FLASHNEOX_LOOP_BODY float quantize_row_body(const float* row, int64_t k, int64_t kp, int32_t zero, uint8_t* dst) {
  float amax = 0.0f;
#pragma omp simd reduction(max : amax)  // max is exact in any order
  for (int64_t i = 0; i < k; ++i) amax = std::max(amax, std::fabs(row[i]));
  const float scale = amax > 0.0f ? amax / 127.0f : 1.0f;
  const float inv = 1.0f / scale;
  for (int64_t i = 0; i < k; ++i) {
    const float v = std::min(std::max(row[i] * inv, -127.0f), 127.0f);
    dst[i] = static_cast<uint8_t>(static_cast<int32_t>(v + (v >= 0.0f ? 0.5f : -0.5f)) + zero);
  }
  for (int64_t i = k; i < kp; ++i) dst[i] = static_cast<uint8_t>(zero);  // the padding is zero
  return scale;
}
FLASHNEOX_PER_ISA(float, quantize_row, (const float* row, int64_t k, int64_t kp, int32_t zero, uint8_t* dst),
                  (row, k, kp, zero, dst))

void quantize_rows(const float* x, int64_t m, int64_t k, int64_t kp, int32_t zero, uint8_t* q, float* scales) {
  parallel_for_cost(m, 4 * k, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) scales[r] = quantize_row(x + r * k, k, kp, zero, q + r * kp);
  });
}

#if FLASHNEOX_X86
using UnalignedInt32 = int32_t __attribute__((may_alias, aligned(1)));

template <int MR>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void panel_vnni(const uint8_t* xq, int64_t ldq, const float* xs,
                                                                       const int8_t* panel, int64_t groups,
                                                                       const float* ws, const int32_t* colsum,
                                                                       const float* bias, float* y, int64_t ldy,
                                                                       int cols) {
  __m512i acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  for (int64_t g = 0; g < groups; ++g) {
    const __m512i w0 = _mm512_loadu_si512(panel + g * 128);
    const __m512i w1 = _mm512_loadu_si512(panel + g * 128 + 64);
    for (int r = 0; r < MR; ++r) {
      // Four activation bytes, broadcast.
      const __m512i xb = _mm512_set1_epi32(*reinterpret_cast<const UnalignedInt32*>(xq + r * ldq + g * 4));
      acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], xb, w0);
      acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], xb, w1);
    }
  }
  const __mmask16 m0 = static_cast<__mmask16>(cols >= 16 ? 0xffff : (1u << cols) - 1);
  const __mmask16 m1 = static_cast<__mmask16>(cols >= 32 ? 0xffff : cols > 16 ? (1u << (cols - 16)) - 1 : 0);
  const __m512i offset0 = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m0, colsum), 7);  // 128 * column sum
  const __m512i offset1 = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m1, colsum + 16), 7);
  const __m512 s0 = _mm512_maskz_loadu_ps(m0, ws), s1 = _mm512_maskz_loadu_ps(m1, ws + 16);
  const __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
  const __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
  for (int r = 0; r < MR; ++r) {
    const __m512 xsv = _mm512_set1_ps(xs[r]);
    const __m512 v0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][0], offset0));
    const __m512 v1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][1], offset1));
    _mm512_mask_storeu_ps(y + r * ldy, m0, _mm512_add_ps(_mm512_mul_ps(v0, _mm512_mul_ps(xsv, s0)), b0));
    _mm512_mask_storeu_ps(y + r * ldy + 16, m1, _mm512_add_ps(_mm512_mul_ps(v1, _mm512_mul_ps(xsv, s1)), b1));
  }
}

using VnniKernel = decltype(&panel_vnni<1>);
const VnniKernel kVnni[kMrVnni] = {panel_vnni<1>, panel_vnni<2>, panel_vnni<3>,  panel_vnni<4>,
                                   panel_vnni<5>, panel_vnni<6>, panel_vnni<7>,  panel_vnni<8>,
                                   panel_vnni<9>, panel_vnni<10>, panel_vnni<11>, panel_vnni<12>};
// AVX2 has no vpdpbusd, and vpmaddubsw of the offset activations (up to 255)
// by weights (up to 127) would saturate its 16-bit pair sums. So the
// activations come without the offset (signed bytes, quantized with zero = 0)
// and take the weights' signs, the weights their magnitudes: pairs of |w| · ±x
// stay within 2 · 127 · 127. The integer sum is the VNNI path's after its
// offset correction, so the floats that follow are the same. A quarter of the
// panel at a time, each weight read straight from L1 where it is used: the
// accumulators, both rows' activations and the constant fit the 16 registers
// (holding the whole group's weights spilled the accumulators to the stack).
template <int MR>
__attribute__((target("avx2,fma"))) void panel_avx2(const uint8_t* xq, int64_t ldq, const float* xs,
                                                    const int8_t* panel, int64_t groups, const float* ws,
                                                    const float* bias, float* y, int64_t ldy, int cols) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[MR][4];
  for (int r = 0; r < MR; ++r)
    for (int h = 0; h < 4; ++h) acc[r][h] = _mm256_setzero_si256();
  for (int64_t g = 0; g < groups; ++g) {
    __m256i xb[MR];
#pragma GCC unroll 2
    for (int r = 0; r < MR; ++r) xb[r] = _mm256_set1_epi32(*reinterpret_cast<const UnalignedInt32*>(xq + r * ldq + g * 4));
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) {
      const auto* wp = reinterpret_cast<const __m256i*>(panel + g * 128 + h * 32);
      const __m256i magnitude = _mm256_abs_epi8(_mm256_loadu_si256(wp));
#pragma GCC unroll 2
      for (int r = 0; r < MR; ++r)
        acc[r][h] = _mm256_add_epi32(
            acc[r][h],
            _mm256_madd_epi16(_mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(xb[r], _mm256_loadu_si256(wp))), ones));
    }
  }
  for (int r = 0; r < MR; ++r) {
    alignas(32) int32_t sums[kPanel];
    for (int h = 0; h < 4; ++h) _mm256_store_si256(reinterpret_cast<__m256i*>(sums + 8 * h), acc[r][h]);
    for (int c = 0; c < cols; ++c)
      y[r * ldy + c] = static_cast<float>(sums[c]) * (xs[r] * ws[c]) + (bias ? bias[c] : 0.0f);
  }
}

const decltype(&panel_avx2<1>) kAvx2[kMrAvx2] = {panel_avx2<1>, panel_avx2<2>};
#endif

// The same integer arithmetic, one output at a time, for CPUs without VNNI.
void panel_scalar(const uint8_t* xq, int64_t ldq, const float* xs, int rows, const int8_t* panel, int64_t groups,
                  const float* ws, const int32_t* colsum, const float* bias, float* y, int64_t ldy, int cols) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      int32_t acc = 0;
      for (int64_t g = 0; g < groups; ++g)
        for (int j = 0; j < 4; ++j)
          acc += static_cast<int32_t>(xq[r * ldq + g * 4 + j]) * panel[(g * kPanel + c) * 4 + j];
      const float v = static_cast<float>(acc - 128 * colsum[c]);
      y[r * ldy + c] = v * (xs[r] * ws[c]) + (bias ? bias[c] : 0.0f);
    }
}

}  // namespace

bool has_vnni() {
#if FLASHNEOX_X86
  static const bool vnni = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
  }();
  return vnni && active_isa() == Isa::Avx512;
#else
  return false;
#endif
}

int64_t packed_int8_bytes(int64_t rows, int64_t cols) {
  return packed_panels(rows) * padded_cols(cols) * kPanel;
}

void pack_weight_int8(const WeightMatrix& w, void* out, float* scales, int32_t* column_sums) {
  const int64_t k = w.cols, kp = padded_cols(k);
  const int64_t panels = packed_panels(w.rows);
  auto* base = static_cast<int8_t*>(out);
  std::memset(base, 0, static_cast<size_t>(packed_int8_bytes(w.rows, w.cols)));
  parallel_for_cost(panels, kPanel * k * 4, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t p = begin; p < end; ++p)
      for (int c = 0; c < kPanel && p * kPanel + c < w.rows; ++c) {
        const int64_t n = p * kPanel + c;
        convert_to_f32(w.dtype, static_cast<const unsigned char*>(w.data) + n * k * dtype_size(w.dtype),
                       row.data(), row.size());
        float amax = 0.0f;
        for (float v : row) amax = std::max(amax, std::fabs(v));
        const float scale = amax > 0.0f ? amax / 127.0f : 1.0f;
        scales[n] = scale;
        int32_t sum = 0;
        int8_t* panel = base + p * kp * kPanel;
        for (int64_t i = 0; i < k; ++i) {
          const auto q = static_cast<int8_t>(std::lrint(std::clamp(row[i] / scale, -127.0f, 127.0f)));
          panel[((i / 4) * kPanel + c) * 4 + i % 4] = q;
          sum += q;
        }
        column_sums[n] = sum;
      }
  });
}

float packed_int8_weight(const WeightMatrix& w, int64_t n, int64_t i) {
  const int64_t kp = padded_cols(w.cols);
  const auto* panel = static_cast<const int8_t*>(w.data) + (n / kPanel) * kp * kPanel;
  return panel[((i / 4) * kPanel + n % kPanel) * 4 + i % 4] * w.scales[n];
}

void packed_linear_int8(const float* x, int64_t m, const WeightMatrix& w, const float* bias, float* y,
                        const Epilogue& epilogue) {
  const int64_t k = w.cols, kp = padded_cols(k), n = w.rows;
  const int64_t panels = packed_panels(n);
  thread_local std::vector<uint8_t> xq;
  thread_local std::vector<float> xs;
  [[maybe_unused]] const bool vnni = has_vnni();  // false off x86
  [[maybe_unused]] const bool avx2 = !vnni && active_isa() >= Isa::Avx2;
  xq.resize(static_cast<size_t>(m * kp));
  xs.resize(static_cast<size_t>(m));
  quantize_rows(x, m, k, kp, avx2 ? 0 : 128, xq.data(), xs.data());
  const uint8_t* q = xq.data();
  const float* qs = xs.data();
  const int max_mr = vnni ? kMrVnni : avx2 ? kMrAvx2 : 1;
  const int64_t block_m = std::max<int64_t>(max_mr, (256 * 1024 / std::max<int64_t>(kp, 1)) / max_mr * max_mr);
  parallel_for_cost(panels, m * kPanel * k / 4, [&](int64_t begin, int64_t end) {
    for (int64_t m0 = 0; m0 < m; m0 += block_m) {
      const int64_t m1 = std::min(m, m0 + block_m);
      for (int64_t p = begin; p < end; ++p) {
        const int8_t* panel = static_cast<const int8_t*>(w.data) + p * kp * kPanel;
        const int cols = static_cast<int>(std::min<int64_t>(kPanel, n - p * kPanel));
        const float* ws = w.scales + p * kPanel;
        const int32_t* cs = w.column_sums + p * kPanel;
        const float* b = bias ? bias + p * kPanel : nullptr;
        const int64_t blocks = (m1 - m0 + max_mr - 1) / max_mr;  // even row blocks
        for (int64_t i = 0, r = m0; i < blocks; ++i) {
          const int64_t r_end = m0 + (m1 - m0) * (i + 1) / blocks;
          const int mr = static_cast<int>(r_end - r);
          float* out = y + r * n + p * kPanel;
#if FLASHNEOX_X86
          if (vnni)
            kVnni[mr - 1](q + r * kp, kp, qs + r, panel, kp / 4, ws, cs, b, out, n, cols);
          else if (avx2)
            kAvx2[mr - 1](q + r * kp, kp, qs + r, panel, kp / 4, ws, b, out, n, cols);
          else
#endif
            panel_scalar(q + r * kp, kp, qs + r, mr, panel, kp / 4, ws, cs, b, out, n, cols);
          r = r_end;
        }
      }
      epilogue(y, n, m0, m1, begin * kPanel, std::min(end * kPanel, n));
    }
  });
}

}  // namespace flashneox::cpu
