// Row-wise and element-wise kernels: embedding lookup, layer norm, GELU, adds.
#include <cmath>

#include "core/isa.h"
#include "core/parallel.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/lanes16.h"

namespace flashneox::cpu {

void embed(const WeightMatrix& embedding, const int32_t* ids, int64_t tokens, float* out) {
  const int64_t hidden = embedding.cols;
  const size_t row_bytes = static_cast<size_t>(hidden) * dtype_size(embedding.dtype);
  for (int64_t t = 0; t < tokens; ++t) {
    const auto* row = static_cast<const unsigned char*>(embedding.data) + ids[t] * row_bytes;
    convert_to_f32(embedding.dtype, row, out + t * hidden, static_cast<size_t>(hidden));
  }
}

namespace {

FLASHNEOX_LOOP_BODY void layer_norm_row_body(const float* row, int64_t n, const float* gamma, const float* beta,
                                             float eps, float* dst) {
  // Two passes in double: the mean and variance of a 6k-wide row in f32
  // lose digits that the parity tests notice.
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += row[i];
  const double mean = sum / static_cast<double>(n);
  double sq = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = row[i] - mean;
    sq += d * d;
  }
  const float inv = static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(n) + eps));
  const float fmean = static_cast<float>(mean);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dst[i] = (row[i] - fmean) * inv * gamma[i] + beta[i];
}
FLASHNEOX_PER_ISA(void, layer_norm_row,
                  (const float* row, int64_t n, const float* gamma, const float* beta, float eps, float* dst),
                  (row, n, gamma, beta, eps, dst))

// erf(x) to 1.5e-7 (Abramowitz & Stegun 7.1.26), branch-free and with our
// own exp so the loop vectorises; libm's erff and expf are a call per element.
inline float erf_approx(float x) {
  const float a = x < 0 ? -x : x;
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  const float y = 1.0f - poly * exp_lane(-a * a);
  return x < 0 ? -y : y;
}

FLASHNEOX_LOOP_BODY void gelu_erf_body(float* x, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) x[i] = 0.5f * x[i] * (1.0f + erf_approx(x[i] * 0.70710678118654752f));
}
FLASHNEOX_PER_ISA(void, gelu_erf, (float* x, int64_t begin, int64_t end), (x, begin, end))

FLASHNEOX_LOOP_BODY void gelu_tanh_body(float* x, int64_t begin, int64_t end) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  for (int64_t i = begin; i < end; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
  }
}
FLASHNEOX_PER_ISA(void, gelu_tanh, (float* x, int64_t begin, int64_t end), (x, begin, end))

}  // namespace

void layer_norm(const float* x, int64_t m, int64_t n, const float* gamma, const float* beta,
                float eps, float* y) {
  parallel_for_cost(m, 4 * n, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) layer_norm_row(x + r * n, n, gamma, beta, eps, y + r * n);
  });
}

void add_norms(float* x, const float* a, const float* b, int64_t m, int64_t n, float eps, const Backend::Norm& first,
               const Backend::Norm& second) {
  parallel_for_cost(m, (second.y ? 8 : 4) * n, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* row = x + r * n;
      if (a) add(row, a + r * n, b ? b + r * n : nullptr, n);
      layer_norm_row(row, n, first.gamma, first.beta, eps, first.y + r * n);
      if (second.y) layer_norm_row(row, n, second.gamma, second.beta, eps, second.y + r * n);
    }
  });
}

void Epilogue::operator()(float* y, int64_t ldy, int64_t m0, int64_t m1, int64_t c0, int64_t c1) const {
  if (!activate) return;
  for (int64_t r = m0; r < m1; ++r) {
    if (kind == Activation::GeluErf)
      gelu_erf(y + r * ldy, c0, c1);
    else
      gelu_tanh(y + r * ldy, c0, c1);
  }
}

void activation(float* x, int64_t count, Activation kind) {
  parallel_for_cost(count, 16, [&](int64_t begin, int64_t end) {
    if (kind == Activation::GeluErf)
      gelu_erf(x, begin, end);
    else
      gelu_tanh(x, begin, end);
  });
}

void add(float* x, const float* a, const float* b, int64_t count) {
  if (b) {
#pragma omp simd
    for (int64_t i = 0; i < count; ++i) x[i] += a[i] + b[i];
  } else {
#pragma omp simd
    for (int64_t i = 0; i < count; ++i) x[i] += a[i];
  }
}

}  // namespace flashneox::cpu
