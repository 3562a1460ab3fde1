// The CPU GEMM over panel-packed weights (WeightLayout::Panels32).
//
// Each panel holds 32 output features for every input feature, [cols][32],
// in the weight's dtype (f32, f16, bf16 or int8 with per-channel scales).
// The microkernel keeps MR rows x 32 outputs of accumulators in registers,
// and for each input feature loads (and widens) 32 weights once and
// broadcasts one activation per row: an outer product, so the loads per FMA
// stay low and the weight bytes are read once per MR rows. One code path for
// every batch size, so a row's result never depends on what shares its batch.
// GCC 12 reports false positives inside its own AVX-512 conversion intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "core/isa.h"
#include "kernels/cpu/cpu_kernels.h"
#if FLASHNEOX_X86
#include <immintrin.h>
#endif

namespace flashneox::cpu {

namespace {

constexpr int kPanel = 32;

// The SIMD microkernels read exactly what their scalar twin reads (k inputs of
// MR rows, k x 32 weights) with the same index arithmetic, and the tests run
// the scalar twin under the sanitizers on the same calls. Left unchecked, the
// longest engine test under ASan ran 1.35x faster (these loops are most of a
// model test's time).
#define FNX_SIMD_READS __attribute__((no_sanitize("address", "undefined")))

#if FLASHNEOX_X86

// ---- AVX-512: MR up to 12 rows (24 accumulators + 2 weights + 1 broadcast).
constexpr int kMrAvx512 = 12;

#define FNX_AVX512 __attribute__((target("avx512f"), always_inline)) FNX_SIMD_READS inline

FNX_AVX512 void load32_avx512(const float* p, __m512& a, __m512& b) {
  a = _mm512_loadu_ps(p);
  b = _mm512_loadu_ps(p + 16);
}
FNX_AVX512 void load32_avx512(const uint16_t* p, __m512& a, __m512& b, DType dtype) {
  const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16));
  if (dtype == DType::F16) {
    a = _mm512_cvtph_ps(lo);
    b = _mm512_cvtph_ps(hi);
  } else {  // bf16: the high half of an f32
    a = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(lo), 16));
    b = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16));
  }
}

template <int MR, DType D>
__attribute__((target("avx512f"))) FNX_SIMD_READS void panel_avx512(const float* x, int64_t ldx, const void* panel,
                                                     int64_t k, const float* scales, const float* bias,
                                                     float* y, int64_t ldy, int cols) {
  __m512 acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t i = 0; i < k; ++i) {
    __m512 w0, w1;
    if constexpr (D == DType::F32) load32_avx512(static_cast<const float*>(panel) + i * kPanel, w0, w1);
    if constexpr (D == DType::F16 || D == DType::BF16)
      load32_avx512(static_cast<const uint16_t*>(panel) + i * kPanel, w0, w1, D);
#pragma GCC unroll 12  // registers at -O1 too, as below
    for (int r = 0; r < MR; ++r) {
      const __m512 xv = _mm512_set1_ps(x[r * ldx + i]);
      acc[r][0] = _mm512_fmadd_ps(xv, w0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(xv, w1, acc[r][1]);
    }
  }
  const __mmask16 m0 = static_cast<__mmask16>(cols >= 16 ? 0xffff : (1u << cols) - 1);
  const __mmask16 m1 = static_cast<__mmask16>(cols >= 32 ? 0xffff : cols > 16 ? (1u << (cols - 16)) - 1 : 0);
  __m512 s0 = _mm512_set1_ps(1.0f), s1 = s0, b0 = _mm512_setzero_ps(), b1 = b0;
  if (scales) {
    s0 = _mm512_maskz_loadu_ps(m0, scales);
    s1 = _mm512_maskz_loadu_ps(m1, scales + 16);
  }
  if (bias) {
    b0 = _mm512_maskz_loadu_ps(m0, bias);
    b1 = _mm512_maskz_loadu_ps(m1, bias + 16);
  }
  for (int r = 0; r < MR; ++r) {
    _mm512_mask_storeu_ps(y + r * ldy, m0, _mm512_fmadd_ps(acc[r][0], s0, b0));
    _mm512_mask_storeu_ps(y + r * ldy + 16, m1, _mm512_fmadd_ps(acc[r][1], s1, b1));
  }
}

// ---- AVX2 + FMA + F16C: MR up to 3 rows (12 accumulators + 3 broadcasts + 1 weight).
constexpr int kMrAvx2 = 3;

#define FNX_AVX2 __attribute__((target("avx2,fma,f16c"), always_inline)) FNX_SIMD_READS inline

template <DType D>
FNX_AVX2 __m256 load8_avx2(const void* panel, int64_t offset) {
  if constexpr (D == DType::F32) return _mm256_loadu_ps(static_cast<const float*>(panel) + offset);
  if constexpr (D == DType::F16)
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(panel) + offset)));
  if constexpr (D == DType::BF16)
    return _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(panel) + offset))), 16));
  return _mm256_setzero_ps();
}

template <int MR, DType D>
__attribute__((target("avx2,fma,f16c"))) FNX_SIMD_READS void panel_avx2(const float* x, int64_t ldx, const void* panel,
                                                          int64_t k, const float* scales, const float* bias,
                                                          float* y, int64_t ldy, int cols) {
  __m256 acc[MR][4];
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < 4; ++c) acc[r][c] = _mm256_setzero_ps();
  // Two inputs an iteration (the same FMA chains in the same order): 5-8%
  // more prefill on the Zen 3 machine. The inner loops unrolled by name, so
  // the accumulators stay in registers at -O1 too (the sanitizer build).
#pragma GCC unroll 2
  for (int64_t i = 0; i < k; ++i) {
    __m256 xv[MR];
#pragma GCC unroll 3
    for (int r = 0; r < MR; ++r) xv[r] = _mm256_set1_ps(x[r * ldx + i]);
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {  // one weight register at a time: MR x 4 accumulators fit
      const __m256 w = load8_avx2<D>(panel, i * kPanel + c * 8);
#pragma GCC unroll 3
      for (int r = 0; r < MR; ++r) acc[r][c] = _mm256_fmadd_ps(xv[r], w, acc[r][c]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    alignas(32) float out[kPanel];
    for (int c = 0; c < 4; ++c) _mm256_store_ps(out + c * 8, acc[r][c]);
    for (int c = 0; c < cols; ++c)
      y[r * ldy + c] = out[c] * (scales ? scales[c] : 1.0f) + (bias ? bias[c] : 0.0f);
  }
}

#endif  // FLASHNEOX_X86

// ---- Scalar: the same arithmetic, one lane at a time (and every CPU that is not x86).
constexpr int kMrScalar = 4;

template <int MR, DType D>
void panel_scalar(const float* x, int64_t ldx, const void* panel, int64_t k, const float* scales,
                  const float* bias, float* y, int64_t ldy, int cols) {
  float acc[MR][kPanel] = {};
  float w[kPanel];
  for (int64_t i = 0; i < k; ++i) {
    convert_to_f32(D, static_cast<const unsigned char*>(panel) + i * kPanel * dtype_size(D), w, kPanel);
    for (int r = 0; r < MR; ++r)
      for (int c = 0; c < kPanel; ++c) acc[r][c] = std::fma(x[r * ldx + i], w[c], acc[r][c]);
  }
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < cols; ++c)
      y[r * ldy + c] = acc[r][c] * (scales ? scales[c] : 1.0f) + (bias ? bias[c] : 0.0f);
}

using PanelKernel = void (*)(const float*, int64_t, const void*, int64_t, const float*, const float*,
                             float*, int64_t, int);

// [dtype][mr - 1] for each ISA.
#define FNX_TABLE(fn, D)                                                                      \
  {fn<1, D>, fn<2, D>, fn<3, D>, fn<4, D>, fn<5, D>, fn<6, D>, fn<7, D>, fn<8, D>, fn<9, D>, \
   fn<10, D>, fn<11, D>, fn<12, D>}

#if FLASHNEOX_X86
const PanelKernel kAvx512[3][kMrAvx512] = {FNX_TABLE(panel_avx512, DType::F32), FNX_TABLE(panel_avx512, DType::F16),
                                           FNX_TABLE(panel_avx512, DType::BF16)};
#define FNX_TABLE3(fn, D) {fn<1, D>, fn<2, D>, fn<3, D>}
const PanelKernel kAvx2[3][kMrAvx2] = {FNX_TABLE3(panel_avx2, DType::F32), FNX_TABLE3(panel_avx2, DType::F16),
                                       FNX_TABLE3(panel_avx2, DType::BF16)};
#endif
#define FNX_TABLE4(fn, D) {fn<1, D>, fn<2, D>, fn<3, D>, fn<4, D>}
const PanelKernel kScalar[3][kMrScalar] = {FNX_TABLE4(panel_scalar, DType::F32), FNX_TABLE4(panel_scalar, DType::F16),
                                           FNX_TABLE4(panel_scalar, DType::BF16)};

}  // namespace

int64_t packed_panels(int64_t rows) { return (rows + kPanel - 1) / kPanel; }

void pack_weight(const WeightMatrix& w, DType dtype, void* out) {
  if (dtype == DType::I8 || dtype == DType::Q4 || dtype == DType::Q4G128)
    throw Error("internal error: pack_weight packs float weights (quantized ones have their own packing)");
  const int64_t k = w.cols;
  const int64_t panels = packed_panels(w.rows);
  const size_t elem = dtype_size(dtype);
  std::memset(out, 0, static_cast<size_t>(panels * k * kPanel) * elem);
  parallel_for_cost(panels, kPanel * k * 4, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t p = begin; p < end; ++p) {
      for (int c = 0; c < kPanel && p * kPanel + c < w.rows; ++c) {
        const int64_t n = p * kPanel + c;
        convert_to_f32(w.dtype, static_cast<const unsigned char*>(w.data) + n * k * dtype_size(w.dtype),
                       row.data(), row.size());
        auto* base = static_cast<unsigned char*>(out) + static_cast<size_t>(p * k * kPanel) * elem;
        for (int64_t i = 0; i < k; ++i) {
          const size_t at = static_cast<size_t>(i * kPanel + c);
          switch (dtype) {
            case DType::F32: reinterpret_cast<float*>(base)[at] = row[i]; break;
            case DType::F16: reinterpret_cast<uint16_t*>(base)[at] = f32_to_f16(row[i]); break;
            case DType::BF16: reinterpret_cast<uint16_t*>(base)[at] = f32_to_bf16(row[i]); break;
            case DType::I8:
            case DType::Q4:
            case DType::Q4G128: break;  // not reached
          }
        }
      }
    }
  });
}

void packed_linear(const float* x, int64_t m, const WeightMatrix& w, const float* bias, float* y,
                   const Epilogue& epilogue) {
  if (w.dtype == DType::I8) {
    packed_linear_int8(x, m, w, bias, y, epilogue);
    return;
  }
  if (w.dtype == DType::Q4 || w.dtype == DType::Q4G128) {
    packed_linear_q4(x, m, w, bias, y, epilogue);
    return;
  }
  const int64_t k = w.cols;
  const int64_t n = w.rows;
  const int64_t panels = packed_panels(n);
  const size_t panel_bytes = static_cast<size_t>(k * kPanel) * dtype_size(w.dtype);
  const int d = static_cast<int>(w.dtype);
  const Isa isa = active_isa();
#if FLASHNEOX_X86
  const PanelKernel* table = isa == Isa::Avx512 ? kAvx512[d] : isa == Isa::Avx2 ? kAvx2[d] : kScalar[d];
  const int max_mr = isa == Isa::Avx512 ? kMrAvx512 : isa == Isa::Avx2 ? kMrAvx2 : kMrScalar;
#else
  (void)isa;
  const PanelKernel* table = kScalar[d];
  const int max_mr = kMrScalar;
#endif
  // Rows in blocks that stay in L2 while every panel of a thread streams past.
  const int64_t block_m = std::max<int64_t>(max_mr, (192 * 1024 / (4 * std::max<int64_t>(k, 1))) / max_mr * max_mr);
  parallel_for_cost(panels, m * kPanel * k, [&](int64_t begin, int64_t end) {
    for (int64_t m0 = 0; m0 < m; m0 += block_m) {
      const int64_t m1 = std::min(m, m0 + block_m);
      for (int64_t p = begin; p < end; ++p) {
        const void* panel = static_cast<const unsigned char*>(w.data) + p * panel_bytes;
        const int cols = static_cast<int>(std::min<int64_t>(kPanel, n - p * kPanel));
        const float* s = w.scales ? w.scales + p * kPanel : nullptr;
        const float* b = bias ? bias + p * kPanel : nullptr;
        // Row blocks of even size (32 rows as 11+11+10, not 12+12+8): the
        // small remainder block is the least efficient. A row's arithmetic
        // does not depend on its block.
        const int64_t blocks = (m1 - m0 + max_mr - 1) / max_mr;
        for (int64_t i = 0, r = m0; i < blocks; ++i) {
          const int64_t r_end = m0 + (m1 - m0) * (i + 1) / blocks;
          const int mr = static_cast<int>(r_end - r);
          table[mr - 1](x + r * k, k, panel, k, s, b, y + r * n + p * kPanel, n, cols);
          r = r_end;
        }
      }
      epilogue(y, n, m0, m1, begin * kPanel, std::min(end * kPanel, n));
    }
  });
}

}  // namespace flashneox::cpu
