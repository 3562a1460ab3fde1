// y = x · W^T + b. Weights stay in their stored dtype: each thread widens a
// tile of 16 weight rows to f32 once per block of x rows and reuses it, so a
// decode step reads every weight byte exactly once (the memory-bound floor)
// and a prefill reuses each widened tile across 64 rows of x held in L2.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "core/parallel.h"
#include "kernels/cpu/cpu_kernels.h"

namespace flashneox::cpu {

namespace {

constexpr int64_t kTileN = 16;   // weight rows widened together
constexpr int64_t kBlockM = 64;  // x rows kept hot while the tiles stream past
constexpr int kMaxMr = 4;
constexpr int kMaxNr = 4;

// out[r][c] = dot(x + r*ldx, w + c*ldw) over k elements.
using MicroKernel = void (*)(const float* x, int64_t ldx, const float* w, int64_t ldw,
                             int64_t k, float out[kMaxMr][kMaxNr]);

template <int MR, int NR>
void micro_scalar(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t k,
                  float out[kMaxMr][kMaxNr]) {
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NR; ++c) {
      float sum = 0.0f;
      const float* xr = x + r * ldx;
      const float* wc = w + c * ldw;
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < k; ++i) sum += xr[i] * wc[i];
      out[r][c] = sum;
    }
}

template <int MR, int NR>
__attribute__((target("avx2,fma"))) void micro_avx2(const float* x, int64_t ldx, const float* w,
                                                     int64_t ldw, int64_t k,
                                                     float out[kMaxMr][kMaxNr]) {
  __m256 acc[MR][NR];
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NR; ++c) acc[r][c] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    __m256 wv[NR];
    for (int c = 0; c < NR; ++c) wv[c] = _mm256_loadu_ps(w + c * ldw + i);
    for (int r = 0; r < MR; ++r) {
      const __m256 xv = _mm256_loadu_ps(x + r * ldx + i);
      for (int c = 0; c < NR; ++c) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NR; ++c) {
      const __m128 lo = _mm256_castps256_ps128(acc[r][c]);
      const __m128 hi = _mm256_extractf128_ps(acc[r][c], 1);
      __m128 s = _mm_add_ps(lo, hi);
      s = _mm_hadd_ps(s, s);
      s = _mm_hadd_ps(s, s);
      float sum = _mm_cvtss_f32(s);
      for (int64_t t = i; t < k; ++t) sum += x[r * ldx + t] * w[c * ldw + t];
      out[r][c] = sum;
    }
}

template <int MR, int NR>
__attribute__((target("avx512f"))) void micro_avx512(const float* x, int64_t ldx, const float* w,
                                                     int64_t ldw, int64_t k,
                                                     float out[kMaxMr][kMaxNr]) {
  __m512 acc[MR][NR];
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NR; ++c) acc[r][c] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    __m512 wv[NR];
    for (int c = 0; c < NR; ++c) wv[c] = _mm512_loadu_ps(w + c * ldw + i);
    for (int r = 0; r < MR; ++r) {
      const __m512 xv = _mm512_loadu_ps(x + r * ldx + i);
      for (int c = 0; c < NR; ++c) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  if (i < k) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (k - i)) - 1u);
    __m512 wv[NR];
    for (int c = 0; c < NR; ++c) wv[c] = _mm512_maskz_loadu_ps(mask, w + c * ldw + i);
    for (int r = 0; r < MR; ++r) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, x + r * ldx + i);
      for (int c = 0; c < NR; ++c) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NR; ++c) {
      // Not _mm512_reduce_add_ps: GCC 12 warns inside it (-Wuninitialized).
      alignas(64) float lanes[16];
      _mm512_store_ps(lanes, acc[r][c]);
      float sum = 0.0f;
      for (float lane : lanes) sum += lane;
      out[r][c] = sum;
    }
}

#define FLASHNEOX_MICRO_TABLE(fn)                                                      \
  {{fn<1, 1>, fn<1, 2>, fn<1, 3>, fn<1, 4>}, {fn<2, 1>, fn<2, 2>, fn<2, 3>, fn<2, 4>}, \
   {fn<3, 1>, fn<3, 2>, fn<3, 3>, fn<3, 4>}, {fn<4, 1>, fn<4, 2>, fn<4, 3>, fn<4, 4>}}

const MicroKernel kScalar[kMaxMr][kMaxNr] = FLASHNEOX_MICRO_TABLE(micro_scalar);
const MicroKernel kAvx2[kMaxMr][kMaxNr] = FLASHNEOX_MICRO_TABLE(micro_avx2);
const MicroKernel kAvx512[kMaxMr][kMaxNr] = FLASHNEOX_MICRO_TABLE(micro_avx512);

const MicroKernel (*micro_table())[kMaxNr] {
  switch (active_isa()) {
    case Isa::Avx512: return kAvx512;
    case Isa::Avx2: return kAvx2;
    case Isa::Scalar: break;
  }
  return kScalar;
}

// Rows [n0, n0 + count) of w as f32: in place when stored as f32, else widened into buf.
const float* weight_rows_f32(const WeightMatrix& w, int64_t n0, int64_t count,
                             std::vector<float>& buf) {
  const size_t elems = static_cast<size_t>(count * w.cols);
  const auto* base = static_cast<const unsigned char*>(w.data) +
                     static_cast<size_t>(n0 * w.cols) * dtype_size(w.dtype);
  if (w.dtype == DType::F32 && reinterpret_cast<uintptr_t>(base) % alignof(float) == 0)
    return reinterpret_cast<const float*>(base);
  if (buf.size() < elems) buf.resize(elems);
  convert_to_f32(w.dtype, base, buf.data(), elems);
  return buf.data();
}

}  // namespace

void linear(const float* x, int64_t m, const WeightMatrix& w, const float* bias, float* y) {
  if (w.layout == WeightLayout::Panels32) {
    packed_linear(x, m, w, bias, y);
    return;
  }
  const int64_t n = w.rows;
  const int64_t k = w.cols;
  const int64_t tiles = (n + kTileN - 1) / kTileN;
  const auto table = micro_table();
  parallel_for_cost(tiles, m * kTileN * k, [&](int64_t tile_begin, int64_t tile_end) {
    thread_local std::vector<float> buf;
    for (int64_t m0 = 0; m0 < m; m0 += kBlockM) {
      const int64_t m1 = std::min(m, m0 + kBlockM);
      for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
        const int64_t n0 = tile * kTileN;
        const int64_t nt = std::min(kTileN, n - n0);
        const float* wt = weight_rows_f32(w, n0, nt, buf);
        for (int64_t i = m0; i < m1; i += kMaxMr) {
          const int mr = static_cast<int>(std::min<int64_t>(kMaxMr, m1 - i));
          for (int64_t j = 0; j < nt; j += kMaxNr) {
            const int nr = static_cast<int>(std::min<int64_t>(kMaxNr, nt - j));
            float out[kMaxMr][kMaxNr];
            table[mr - 1][nr - 1](x + i * k, k, wt + j * k, k, k, out);
            for (int r = 0; r < mr; ++r)
              for (int c = 0; c < nr; ++c) {
                const int64_t col = n0 + j + c;
                y[(i + r) * n + col] = out[r][c] + (bias ? bias[col] : 0.0f);
              }
          }
        }
      }
    }
  });
}

void linear_reference(const float* x, int64_t m, const WeightMatrix& w, const float* bias,
                      float* y) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  const size_t elem = dtype_size(w.dtype);
  for (int64_t col = 0; col < w.rows; ++col) {
    if (w.layout == WeightLayout::Panels32) {  // gather the column out of its panel
      const int64_t p = col / 32, c = col % 32;
      for (int64_t i = 0; i < w.cols; ++i)
        convert_to_f32(w.dtype, static_cast<const unsigned char*>(w.data) + ((p * w.cols + i) * 32 + c) * elem,
                       &row[i], 1);
      if (w.scales)
        for (float& v : row) v *= w.scales[col];
    } else {
      convert_to_f32(w.dtype, static_cast<const unsigned char*>(w.data) + col * w.cols * elem,
                     row.data(), row.size());
    }
    for (int64_t r = 0; r < m; ++r) {
      double sum = bias ? bias[col] : 0.0;
      for (int64_t i = 0; i < w.cols; ++i) sum += static_cast<double>(x[r * w.cols + i]) * row[i];
      y[r * w.rows + col] = static_cast<float>(sum);
    }
  }
}

}  // namespace flashneox::cpu
