// 4-bit weights with int8 activations (W4A8).
//
// Weights: groups of G inputs (32 or 128) of one output share an f16 scale d;
// q = round(w / d) + 8 in [0, 15], d = -(the group's value of largest
// magnitude) / 8, so all sixteen levels are used (llama.cpp's Q4_0 rule).
// Panel p (32 outputs) is a run of groups, each G / 4 steps of 64 bytes and
// then 32 f16 scales. In a step, byte 4·o + j holds input j of the step for
// output o in its low nibble and for output o + 16 in its high nibble, so a
// mask and a shift give two vpdpbusd operands for 16 outputs each.
// Activations: each row quantized to int8 with its own absmax scale. Within a
// group the integer sum is exact (the offset 8 comes off as 8 · the group's
// activation sum); groups are added in order with one fused multiply-add
// each. Every path (VNNI, AVX2, scalar) does the same arithmetic in the same
// order, so all give the same bits, for any batch.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/isa.h"
#include "core/parallel.h"
#include "kernels/cpu/cpu_kernels.h"
#if FLASHNEOX_X86
#include <immintrin.h>
#endif

namespace flashneox::cpu {

namespace {

constexpr int kPanel = 32;
constexpr int kMrVnni = 6;
constexpr int kMrAvx2 = 2;
constexpr int kMrScalar = 1;

int64_t padded_cols(int64_t cols, int group) { return (cols + group - 1) / group * group; }
int64_t group_bytes(int group) { return group * kPanel / 2 + kPanel * 2; }  // nibbles, then f16 scales

// Row quantization to int8, scale = absmax / 127 (round half away from
// zero, branch-free), and each group's sum of the quantized values.
FLASHNEOX_LOOP_BODY float quantize_row_s8_body(const float* row, int64_t k, int64_t kp, int group, int8_t* dst,
                                               int32_t* sums) {
  float amax = 0.0f;
#pragma omp simd reduction(max : amax)  // max is exact in any order
  for (int64_t i = 0; i < k; ++i) amax = std::max(amax, std::fabs(row[i]));
  const float scale = amax > 0.0f ? amax / 127.0f : 1.0f;
  const float inv = 1.0f / scale;
  for (int64_t i = 0; i < k; ++i) {
    const float v = std::min(std::max(row[i] * inv, -127.0f), 127.0f);
    dst[i] = static_cast<int8_t>(static_cast<int32_t>(v + (v >= 0.0f ? 0.5f : -0.5f)));
  }
  for (int64_t i = k; i < kp; ++i) dst[i] = 0;
  for (int64_t g = 0; g < kp / group; ++g) {
    int32_t sum = 0;
    for (int i = 0; i < group; ++i) sum += dst[g * group + i];
    sums[g] = sum;
  }
  return scale;
}
FLASHNEOX_PER_ISA(float, quantize_row_s8,
                  (const float* row, int64_t k, int64_t kp, int group, int8_t* dst, int32_t* sums),
                  (row, k, kp, group, dst, sums))

// What one kernel call sees: rows [r, r + mr) of the quantized activations
// against one panel.
struct Q4Tile {
  const int8_t* xq;    // [mr, kp]
  int64_t kp;
  const int32_t* xsum; // [mr, groups]
  const float* xs;     // [mr]
  const uint8_t* panel;
  int64_t groups;
  int group;
  const float* bias;   // [cols] or null
  float* y;            // [mr, ldy]
  int64_t ldy;
  int cols;
};

#if FLASHNEOX_X86
using UnalignedInt32 = int32_t __attribute__((may_alias, aligned(1)));

template <int MR>
__attribute__((target("avx512f,avx512bw,avx512vnni,f16c"))) void panel_vnni(const Q4Tile& t) {
  const __m512i low = _mm512_set1_epi8(0x0f);
  __m512 sum[MR][2];
  for (int r = 0; r < MR; ++r) sum[r][0] = sum[r][1] = _mm512_setzero_ps();
  const int steps = t.group / 4;
  for (int64_t g = 0; g < t.groups; ++g) {
    const uint8_t* gp = t.panel + g * group_bytes(t.group);
    const int8_t* xg = t.xq + g * t.group;
    __m512i acc[MR][2];
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
    for (int s = 0; s < steps; ++s) {
      const __m512i v = _mm512_loadu_si512(gp + s * 64);
      const __m512i w0 = _mm512_and_si512(v, low);
      const __m512i w1 = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
      for (int r = 0; r < MR; ++r) {
        const __m512i xb = _mm512_set1_epi32(*reinterpret_cast<const UnalignedInt32*>(xg + r * t.kp + s * 4));
        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], w0, xb);
        acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], w1, xb);
      }
    }
    const auto* scales = reinterpret_cast<const __m256i*>(gp + steps * 64);
    const __m512 d0 = _mm512_cvtph_ps(_mm256_loadu_si256(scales));
    const __m512 d1 = _mm512_cvtph_ps(_mm256_loadu_si256(scales + 1));
    for (int r = 0; r < MR; ++r) {
      const __m512i offset = _mm512_set1_epi32(8 * t.xsum[r * t.groups + g]);
      sum[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][0], offset)), d0, sum[r][0]);
      sum[r][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][1], offset)), d1, sum[r][1]);
    }
  }
  const int cols = t.cols;
  const __mmask16 m0 = static_cast<__mmask16>(cols >= 16 ? 0xffff : (1u << cols) - 1);
  const __mmask16 m1 = static_cast<__mmask16>(cols >= 32 ? 0xffff : cols > 16 ? (1u << (cols - 16)) - 1 : 0);
  const __m512 b0 = t.bias ? _mm512_maskz_loadu_ps(m0, t.bias) : _mm512_setzero_ps();
  const __m512 b1 = t.bias ? _mm512_maskz_loadu_ps(m1, t.bias + 16) : _mm512_setzero_ps();
  for (int r = 0; r < MR; ++r) {
    const __m512 xsv = _mm512_set1_ps(t.xs[r]);
    _mm512_mask_storeu_ps(t.y + r * t.ldy, m0, _mm512_add_ps(_mm512_mul_ps(sum[r][0], xsv), b0));
    _mm512_mask_storeu_ps(t.y + r * t.ldy + 16, m1, _mm512_add_ps(_mm512_mul_ps(sum[r][1], xsv), b1));
  }
}

// AVX2 has no vpdpbusd: vpmaddubsw gives u8 · s8 pair sums in s16 (at most
// 2 · 15 · 127 = 3,810), eight steps of them still fit in s16 (30,480), and
// one vpmaddwd by ones per eight steps widens them: the same exact sums of
// four, with 2.25 instructions a row and 8 outputs per step instead of 3.
template <int MR>
__attribute__((target("avx2,fma,f16c"))) void panel_avx2(const Q4Tile& t) {
  constexpr int kStepsInS16 = 8;
  const __m256i low = _mm256_set1_epi8(0x0f);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 sum[MR][4];
  for (int r = 0; r < MR; ++r)
    for (int h = 0; h < 4; ++h) sum[r][h] = _mm256_setzero_ps();
  const int steps = t.group / 4;
  for (int64_t g = 0; g < t.groups; ++g) {
    const uint8_t* gp = t.panel + g * group_bytes(t.group);
    const int8_t* xg = t.xq + g * t.group;
    __m256i acc[MR][4];  // outputs 0-7, 8-15, 16-23, 24-31
    for (int r = 0; r < MR; ++r)
      for (int h = 0; h < 4; ++h) acc[r][h] = _mm256_setzero_si256();
    for (int s0 = 0; s0 < steps; s0 += kStepsInS16) {
      __m256i acc16[MR][4];
      for (int r = 0; r < MR; ++r)
        for (int h = 0; h < 4; ++h) acc16[r][h] = _mm256_setzero_si256();
      for (int s = s0; s < s0 + kStepsInS16; ++s) {
        const __m256i va = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(gp + s * 64));
        const __m256i vb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(gp + s * 64 + 32));
        const __m256i w[4] = {_mm256_and_si256(va, low), _mm256_and_si256(vb, low),
                              _mm256_and_si256(_mm256_srli_epi16(va, 4), low),
                              _mm256_and_si256(_mm256_srli_epi16(vb, 4), low)};
        for (int r = 0; r < MR; ++r) {
          const __m256i xb = _mm256_set1_epi32(*reinterpret_cast<const UnalignedInt32*>(xg + r * t.kp + s * 4));
          for (int h = 0; h < 4; ++h) acc16[r][h] = _mm256_add_epi16(acc16[r][h], _mm256_maddubs_epi16(w[h], xb));
        }
      }
      for (int r = 0; r < MR; ++r)
        for (int h = 0; h < 4; ++h) acc[r][h] = _mm256_add_epi32(acc[r][h], _mm256_madd_epi16(acc16[r][h], ones));
    }
    const auto* scales = reinterpret_cast<const __m128i*>(gp + steps * 64);
    __m256 d[4];
    for (int h = 0; h < 4; ++h) d[h] = _mm256_cvtph_ps(_mm_loadu_si128(scales + h));
    for (int r = 0; r < MR; ++r) {
      const __m256i offset = _mm256_set1_epi32(8 * t.xsum[r * t.groups + g]);
      for (int h = 0; h < 4; ++h)
        sum[r][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(acc[r][h], offset)), d[h], sum[r][h]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    alignas(32) float out[kPanel];
    const __m256 xsv = _mm256_set1_ps(t.xs[r]);
    for (int h = 0; h < 4; ++h) _mm256_store_ps(out + 8 * h, _mm256_mul_ps(sum[r][h], xsv));
    for (int c = 0; c < t.cols; ++c) t.y[r * t.ldy + c] = out[c] + (t.bias ? t.bias[c] : 0.0f);
  }
}
#endif

// Output c's weight nibble for input i of group g's step.
inline int nibble(const uint8_t* gp, int c, int i) {
  const uint8_t byte = gp[(i / 4) * 64 + (c % 16) * 4 + i % 4];
  return c < 16 ? byte & 0x0f : byte >> 4;
}

// The same arithmetic, one output at a time.
template <int MR>
void panel_scalar(const Q4Tile& t) {
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < t.cols; ++c) {
      float sum = 0.0f;
      for (int64_t g = 0; g < t.groups; ++g) {
        const uint8_t* gp = t.panel + g * group_bytes(t.group);
        const int8_t* xg = t.xq + r * t.kp + g * t.group;
        int32_t acc = 0;
        for (int i = 0; i < t.group; ++i) acc += nibble(gp, c, i) * xg[i];
        uint16_t d;
        std::memcpy(&d, gp + t.group * 16 + c * 2, 2);
        sum = std::fma(static_cast<float>(acc - 8 * t.xsum[r * t.groups + g]), f16_to_f32(d), sum);
      }
      t.y[r * t.ldy + c] = sum * t.xs[r] + (t.bias ? t.bias[c] : 0.0f);
    }
}

using PanelKernel = void (*)(const Q4Tile&);
#if FLASHNEOX_X86
const PanelKernel kVnni[kMrVnni] = {panel_vnni<1>, panel_vnni<2>, panel_vnni<3>,
                                    panel_vnni<4>, panel_vnni<5>, panel_vnni<6>};
const PanelKernel kAvx2[kMrAvx2] = {panel_avx2<1>, panel_avx2<2>};
#endif
const PanelKernel kScalar[kMrScalar] = {panel_scalar<1>};

}  // namespace

int q4_group_size(DType dtype) {
  switch (dtype) {
    case DType::Q4: return 32;
    case DType::Q4G128: return 128;
    default: throw Error(concat("internal error: ", dtype_name(dtype), " is not a 4-bit dtype"));
  }
}

int64_t packed_q4_bytes(int64_t rows, int64_t cols, int group) {
  return packed_panels(rows) * (padded_cols(cols, group) / group) * group_bytes(group);
}

void pack_weight_q4(const WeightMatrix& w, int group, void* out) {
  const int64_t k = w.cols, groups = padded_cols(k, group) / group;
  const int64_t panels = packed_panels(w.rows);
  const int64_t panel_bytes = groups * group_bytes(group);
  auto* base = static_cast<uint8_t*>(out);
  std::memset(base, 0x88, static_cast<size_t>(panels * panel_bytes));  // nibble 8: a zero weight
  parallel_for_cost(panels, kPanel * k * 4, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(groups * group));
    for (int64_t p = begin; p < end; ++p)
      for (int c = 0; c < kPanel; ++c) {
        const int64_t n = p * kPanel + c;
        uint8_t* panel = base + p * panel_bytes;
        if (n >= w.rows) {  // padding outputs: zero scales
          for (int64_t g = 0; g < groups; ++g) std::memset(panel + g * group_bytes(group) + group * 16 + c * 2, 0, 2);
          continue;
        }
        std::fill(row.begin(), row.end(), 0.0f);
        convert_to_f32(w.dtype, static_cast<const unsigned char*>(w.data) + n * k * dtype_size(w.dtype), row.data(),
                       static_cast<size_t>(k));
        for (int64_t g = 0; g < groups; ++g) {
          const float* v = row.data() + g * group;
          float extreme = 0.0f;
          for (int i = 0; i < group; ++i)
            if (std::fabs(v[i]) > std::fabs(extreme)) extreme = v[i];
          const uint16_t d16 = f32_to_f16(extreme / -8.0f);
          const float d = f16_to_f32(d16);
          uint8_t* gp = panel + g * group_bytes(group);
          std::memcpy(gp + group * 16 + c * 2, &d16, 2);
          for (int i = 0; i < group; ++i) {
            const int q = d == 0.0f ? 8 : static_cast<int>(std::clamp(std::lrint(v[i] / d) + 8, 0L, 15L));
            uint8_t& byte = gp[(i / 4) * 64 + (c % 16) * 4 + i % 4];
            byte = c < 16 ? static_cast<uint8_t>((byte & 0xf0) | q) : static_cast<uint8_t>((byte & 0x0f) | (q << 4));
          }
        }
      }
  });
}

float packed_q4_weight(const WeightMatrix& w, int64_t n, int64_t i) {
  const int group = q4_group_size(w.dtype);
  const int64_t groups = padded_cols(w.cols, group) / group;
  const auto* gp = static_cast<const uint8_t*>(w.data) + ((n / kPanel) * groups + i / group) * group_bytes(group);
  const int c = static_cast<int>(n % kPanel);
  uint16_t d;
  std::memcpy(&d, gp + group * 16 + c * 2, 2);
  return static_cast<float>(nibble(gp, c, static_cast<int>(i % group)) - 8) * f16_to_f32(d);
}

void packed_linear_q4(const float* x, int64_t m, const WeightMatrix& w, const float* bias, float* y,
                      const Epilogue& epilogue) {
  const int group = q4_group_size(w.dtype);
  const int64_t k = w.cols, kp = padded_cols(k, group), groups = kp / group, n = w.rows;
  const int64_t panels = packed_panels(n);
  thread_local std::vector<int8_t> xq;
  thread_local std::vector<int32_t> xsum;
  thread_local std::vector<float> xs;
  xq.resize(static_cast<size_t>(m * kp));
  xsum.resize(static_cast<size_t>(m * groups));
  xs.resize(static_cast<size_t>(m));
  int8_t* q = xq.data();
  int32_t* sums = xsum.data();
  float* scales = xs.data();
  parallel_for_cost(m, 4 * k, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      scales[r] = quantize_row_s8(x + r * k, k, kp, group, q + r * kp, sums + r * groups);
  });
  const PanelKernel* table = kScalar;
  int max_mr = kMrScalar;
#if FLASHNEOX_X86
  if (has_vnni()) {
    table = kVnni;
    max_mr = kMrVnni;
  } else if (active_isa() >= Isa::Avx2) {
    table = kAvx2;
    max_mr = kMrAvx2;
  }
#endif
  const int64_t panel_bytes = groups * group_bytes(group);
  // Rows in blocks whose activations stay in L2 while a thread's panels stream past.
  const int64_t block_m = std::max<int64_t>(max_mr, (256 * 1024 / std::max<int64_t>(kp, 1)) / max_mr * max_mr);
  parallel_for_cost(panels, m * kPanel * k / 4, [&](int64_t begin, int64_t end) {
    for (int64_t m0 = 0; m0 < m; m0 += block_m) {
      const int64_t m1 = std::min(m, m0 + block_m);
      for (int64_t p = begin; p < end; ++p) {
        const int cols = static_cast<int>(std::min<int64_t>(kPanel, n - p * kPanel));
        const int64_t blocks = (m1 - m0 + max_mr - 1) / max_mr;  // even row blocks
        for (int64_t i = 0, r = m0; i < blocks; ++i) {
          const int64_t r_end = m0 + (m1 - m0) * (i + 1) / blocks;
          const Q4Tile tile{q + r * kp, kp, sums + r * groups, scales + r,
                            static_cast<const uint8_t*>(w.data) + p * panel_bytes, groups, group,
                            bias ? bias + p * kPanel : nullptr, y + r * n + p * kPanel, n, cols};
          table[r_end - r - 1](tile);
          r = r_end;
        }
      }
      epilogue(y, n, m0, m1, begin * kPanel, std::min(end * kPanel, n));
    }
  });
}

}  // namespace flashneox::cpu
