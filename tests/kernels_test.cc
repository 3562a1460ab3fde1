// Every SIMD kernel against its plain scalar twin, on every instruction set
// this CPU has, with per-dtype tolerances.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/cpu_kernels.h"
#include "test_support.h"

namespace flashneox {
namespace {

std::vector<float> random_vector(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<cpu::Isa> isas() {
  std::vector<cpu::Isa> out = {cpu::Isa::Scalar};
  if (static_cast<int>(cpu::supported_isa()) >= static_cast<int>(cpu::Isa::Avx2))
    out.push_back(cpu::Isa::Avx2);
  if (cpu::supported_isa() == cpu::Isa::Avx512) out.push_back(cpu::Isa::Avx512);
  return out;
}

struct IsaGuard {
  ~IsaGuard() { cpu::limit_isa(cpu::Isa::Avx512); }
};

// Packs `source` with the CPU backend (which owns the packed storage).
struct Packed {
  std::unique_ptr<Backend> backend = make_cpu_backend();
  WeightMatrix w;
  Packed(const WeightMatrix& source, DType dtype) : w(backend->prepare_weight(source, dtype)) {}
};

TEST(Kernels, PackedLinearMatchesReferenceOnEveryIsaAndDtype) {
  IsaGuard guard;
  const std::vector<std::array<int, 3>> shapes = {{1, 64, 192}, {5, 37, 19}, {13, 96, 70},
                                                 {3, 1, 1},     {40, 200, 33}, {1, 7, 65}};
  for (const auto& [m, k, n] : shapes) {
    const auto x = random_vector(static_cast<size_t>(m * k), 1);
    const auto wf = random_vector(static_cast<size_t>(n * k), 2, 0.2f);
    const auto bias = random_vector(static_cast<size_t>(n), 3);
    const WeightMatrix source{DType::F32, wf.data(), n, k};
    std::vector<float> exact(static_cast<size_t>(m * n));
    cpu::linear_reference(x.data(), m, source, bias.data(), exact.data());
    for (DType dtype : {DType::F32, DType::F16, DType::BF16, DType::I8, DType::Q4, DType::Q4G128}) {
      const Packed packed(source, dtype);
      std::vector<float> want(exact.size());
      cpu::linear_reference(x.data(), m, packed.w, bias.data(), want.data());
      // The packed dtype's rounding stays within its tolerance of the f32 weights
      // (int8 and q4 also quantize the activations, per row).
      const bool quantized = dtype == DType::I8 || dtype == DType::Q4 || dtype == DType::Q4G128;
      const float tolerance = dtype == DType::F32 ? 1e-5f
                              : dtype == DType::F16 ? 1e-2f
                              : dtype == DType::Q4  ? 0.1f
                              : dtype == DType::Q4G128 ? 0.1f
                                                    : 6e-2f;
      EXPECT_LT(testing::max_abs_diff(want, exact), tolerance * std::sqrt(static_cast<float>(k)))
          << dtype_name(dtype);
      std::vector<float> first;
      for (cpu::Isa isa : isas()) {
        cpu::limit_isa(isa);
        std::vector<float> got(want.size());
        cpu::linear(x.data(), m, packed.w, bias.data(), got.data());
        if (quantized) {  // integer sums: every path gives the same bits
          EXPECT_LT(testing::max_abs_diff(got, exact), 2 * tolerance * std::sqrt(static_cast<float>(k)))
              << cpu::isa_name(isa) << " " << dtype_name(dtype) << " m" << m << " k" << k << " n" << n;
          // Only the activations' rounding (half a step of absmax / 127 each) separates
          // the kernel from the dequantized weights.
          for (int r = 0; r < m; ++r) {
            float amax = 0.0f;
            for (int i = 0; i < k; ++i) amax = std::max(amax, std::fabs(x[r * k + i]));
            for (int c = 0; c < n; ++c) {
              double weight_sum = 0.0;
              for (int i = 0; i < k; ++i)
                weight_sum += std::fabs(dtype == DType::I8 ? cpu::packed_int8_weight(packed.w, c, i)
                                                           : cpu::packed_q4_weight(packed.w, c, i));
              const double bound = amax / 254.0 * weight_sum * 1.001 + 1e-5 * (1 + std::fabs(want[r * n + c]));
              EXPECT_LE(std::fabs(got[r * n + c] - want[r * n + c]), bound)
                  << cpu::isa_name(isa) << " " << dtype_name(dtype) << " row " << r << " output " << c;
            }
          }
          if (first.empty()) first = got;
          EXPECT_EQ(0, std::memcmp(first.data(), got.data(), got.size() * sizeof(float))) << cpu::isa_name(isa);
        } else {
          EXPECT_LT(testing::max_abs_diff(got, want), 1e-4f)
              << cpu::isa_name(isa) << " " << dtype_name(dtype) << " m" << m << " k" << k << " n" << n;
        }
      }
      cpu::limit_isa(cpu::Isa::Avx512);
    }
  }
}

TEST(Kernels, Q4IntegerSumsHoldAtTheExtremes) {
  // Every weight at nibble 15 or 0 and every activation at +-127: the largest
  // partial sums any kernel keeps in 16 bits. Exact integer sums make every
  // path's bits equal, and the result is the dequantized weights' sum.
  IsaGuard guard;
  const int k = 256, n = 40, m = 7;
  std::vector<float> wf(static_cast<size_t>(n * k));
  for (int c = 0; c < n; ++c)
    for (int i = 0; i < k; ++i)  // -1 sets the group's scale 1/8; 7/8 then takes level 15
      wf[c * k + i] = i % 32 == 0 ? -1.0f : (c % 2 ? 0.875f : -1.0f);
  std::vector<float> x(static_cast<size_t>(m * k));
  for (int r = 0; r < m; ++r)
    for (int i = 0; i < k; ++i) x[r * k + i] = r == 0 ? 1.0f : r == 1 ? -1.0f : (i + r) % 3 ? 2.0f : -2.0f;
  for (DType dtype : {DType::Q4, DType::Q4G128}) {
    const Packed packed({DType::F32, wf.data(), n, k}, dtype);
    std::vector<float> want(static_cast<size_t>(m * n));
    cpu::linear_reference(x.data(), m, packed.w, nullptr, want.data());
    std::vector<float> first;
    for (cpu::Isa isa : isas()) {
      cpu::limit_isa(isa);
      std::vector<float> got(want.size());
      cpu::linear(x.data(), m, packed.w, nullptr, got.data());
      for (size_t i = 0; i < got.size(); ++i)  // the activations are exact at +-127 steps of absmax / 127
        EXPECT_NEAR(got[i], want[i], 1e-4f * (1.0f + std::fabs(want[i]))) << cpu::isa_name(isa) << " " << i;
      if (first.empty()) first = got;
      EXPECT_EQ(0, std::memcmp(first.data(), got.data(), got.size() * sizeof(float))) << cpu::isa_name(isa);
    }
  }
}

TEST(Kernels, Q4KeepsEachWeightWithinHalfAStepOfItsGroupScale) {
  // Rows: random, all zero, and one outlier among small values; 70 inputs
  // leave a partial last group for both group sizes.
  const int k = 70, n = 3;
  auto wf = random_vector(static_cast<size_t>(n * k), 7, 0.3f);
  std::fill(wf.begin() + k, wf.begin() + 2 * k, 0.0f);
  for (int i = 0; i < k; ++i) wf[2 * k + i] = i == 5 ? -4.0f : 0.01f * static_cast<float>(i % 7);
  for (DType dtype : {DType::Q4, DType::Q4G128}) {
    const Packed packed({DType::F32, wf.data(), n, k}, dtype);
    const int group = cpu::q4_group_size(dtype);
    for (int r = 0; r < n; ++r)
      for (int g = 0; g * group < k; ++g) {
        float amax = 0.0f;
        for (int i = g * group; i < std::min(k, (g + 1) * group); ++i) amax = std::max(amax, std::fabs(wf[r * k + i]));
        const float step = amax / 8.0f;
        for (int i = g * group; i < std::min(k, (g + 1) * group); ++i)
          // Half a step, but the level -8 · d sits on the extreme's side only: the far end is clamped at 7 · d.
          EXPECT_LE(std::fabs(cpu::packed_q4_weight(packed.w, r, i) - wf[r * k + i]),
                    (std::fabs(wf[r * k + i]) > 7.5f * step ? 1.0f : 0.5f) * step * 1.002f + 1e-7f)
              << dtype_name(dtype) << " row " << r << " input " << i;
      }
    EXPECT_EQ(cpu::packed_q4_weight(packed.w, 2, 5), -4.0f);  // the group's extreme is exact
  }
}

TEST(Kernels, FloatGemmIsOneFmaChainInInputOrder) {
  // Long inputs are computed in slices with the raw sums parked in y between
  // them; every output must still be exactly one f32 FMA chain over the
  // inputs in order (the bits a decode of the same row gives). 1,300 inputs
  // make three slices; 40 outputs a full and a partial panel.
  IsaGuard guard;
  const int m = 7, k = 1300, n = 40;
  const auto x = random_vector(static_cast<size_t>(m * k), 18);
  const auto wf = random_vector(static_cast<size_t>(n * k), 19, 0.2f);
  const auto bias = random_vector(static_cast<size_t>(n), 20);
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    const Packed packed({DType::F32, wf.data(), n, k}, dtype);
    std::vector<float> want(static_cast<size_t>(m * n));
    for (int r = 0; r < m; ++r)
      for (int c = 0; c < n; ++c) {
        float acc = 0.0f;
        for (int i = 0; i < k; ++i) {
          const float v = wf[c * k + i];
          const float w = dtype == DType::F16 ? f16_to_f32(f32_to_f16(v)) : dtype == DType::BF16 ? bf16_to_f32(f32_to_bf16(v)) : v;
          acc = std::fma(x[r * k + i], w, acc);
        }
        want[r * n + c] = acc + bias[c];
      }
    for (cpu::Isa isa : isas()) {
      cpu::limit_isa(isa);
      std::vector<float> got(want.size());
      cpu::linear(x.data(), m, packed.w, bias.data(), got.data());
      EXPECT_EQ(0, std::memcmp(want.data(), got.data(), got.size() * sizeof(float)))
          << cpu::isa_name(isa) << " " << dtype_name(dtype) << " max diff " << testing::max_abs_diff(want, got);
    }
  }
}

TEST(Kernels, ActivationEpilogueEqualsTheSeparatePass) {
  // fc_in's GELU applied by the GEMM as it writes each block gives the bits
  // of a separate pass over the whole output, for every dtype, ISA and form;
  // 300 rows of 2,100 inputs make several row blocks and chunks.
  IsaGuard guard;
  for (const auto& [m, k, n] : std::vector<std::array<int, 3>>{{1, 64, 200}, {7, 96, 70}, {300, 2100, 97}}) {
    const auto x = random_vector(static_cast<size_t>(m * k), 8);
    const auto wf = random_vector(static_cast<size_t>(n * k), 9, 0.2f);
    const auto bias = random_vector(static_cast<size_t>(n), 10);
    for (DType dtype : {DType::F32, DType::F16, DType::BF16, DType::I8, DType::Q4, DType::Q4G128}) {
      const Packed packed({DType::F32, wf.data(), n, k}, dtype);
      for (cpu::Isa isa : isas()) {
        cpu::limit_isa(isa);
        for (Activation kind : {Activation::GeluErf, Activation::GeluTanh}) {
          std::vector<float> separate(static_cast<size_t>(m * n)), fused(separate.size());
          cpu::linear(x.data(), m, packed.w, bias.data(), separate.data());
          cpu::activation(separate.data(), m * n, kind);
          cpu::linear(x.data(), m, packed.w, bias.data(), fused.data(), {.activate = true, .kind = kind});
          EXPECT_EQ(0, std::memcmp(separate.data(), fused.data(), fused.size() * sizeof(float)))
              << cpu::isa_name(isa) << " " << dtype_name(dtype) << " m" << m;
        }
      }
    }
  }
}

TEST(Kernels, ResidualAddAndNormsEqualTheSeparateOps) {
  // The fused residual add + one or two layer norms gives the bits of add,
  // then layer_norm, then layer_norm; with no addend it only normalises.
  IsaGuard guard;
  const int m = 37, n = 200;
  const auto x0 = random_vector(m * n, 11, 3.0f), a = random_vector(m * n, 12), b = random_vector(m * n, 13);
  const auto g1 = random_vector(n, 14), b1 = random_vector(n, 15), g2 = random_vector(n, 16), b2 = random_vector(n, 17);
  for (cpu::Isa isa : isas()) {
    cpu::limit_isa(isa);
    for (int form = 0; form < 4; ++form) {  // a + b with two norms, a with one, a with two, none with two
      const float* addend = form == 3 ? nullptr : a.data();
      const float* second_addend = form == 0 ? b.data() : nullptr;
      const bool two = form != 1;
      std::vector<float> xs = x0, ys1(x0.size()), ys2(x0.size());
      if (addend) cpu::add(xs.data(), addend, second_addend, m * n);
      cpu::layer_norm(xs.data(), m, n, g1.data(), b1.data(), 1e-5f, ys1.data());
      if (two) cpu::layer_norm(xs.data(), m, n, g2.data(), b2.data(), 1e-5f, ys2.data());
      std::vector<float> xf = x0, yf1(x0.size()), yf2(x0.size());
      cpu::add_norms(xf.data(), addend, second_addend, m, n, 1e-5f, {g1.data(), b1.data(), yf1.data()},
                     {g2.data(), b2.data(), two ? yf2.data() : nullptr});
      EXPECT_EQ(0, std::memcmp(xs.data(), xf.data(), xs.size() * sizeof(float))) << cpu::isa_name(isa) << form;
      EXPECT_EQ(0, std::memcmp(ys1.data(), yf1.data(), ys1.size() * sizeof(float))) << cpu::isa_name(isa) << form;
      EXPECT_EQ(0, std::memcmp(ys2.data(), yf2.data(), ys2.size() * sizeof(float))) << cpu::isa_name(isa) << form;
    }
  }
}

TEST(Kernels, PackedLinearRowsDoNotDependOnTheBatch) {
  // A row's result is bit-identical whatever else is in the batch.
  const int k = 96, n = 50;
  const auto x = random_vector(static_cast<size_t>(17 * k), 4);
  const auto wf = random_vector(static_cast<size_t>(n * k), 5, 0.2f);
  for (DType dtype : {DType::F16, DType::I8, DType::Q4, DType::Q4G128}) {
    const Packed packed({DType::F32, wf.data(), n, k}, dtype);
    std::vector<float> all(static_cast<size_t>(17 * n)), one(static_cast<size_t>(n));
    cpu::linear(x.data(), 17, packed.w, nullptr, all.data());
    for (int r = 0; r < 17; ++r) {
      cpu::linear(x.data() + r * k, 1, packed.w, nullptr, one.data());
      EXPECT_EQ(0, std::memcmp(one.data(), all.data() + r * n, sizeof(float) * n)) << "row " << r;
    }
  }
}

// The per-instruction-set loops (layer norm, GELU) on every set this CPU has:
// FLASHNEOX_ISA reaches them as it does the GEMM and attention.
TEST(Kernels, LayerNormMatchesDefinition) {
  IsaGuard guard;
  for (cpu::Isa isa : isas()) {
    cpu::limit_isa(isa);
    const int m = 3, n = 100;
    const auto x = random_vector(m * n, 4, 3.0f);
    const auto g = random_vector(n, 5);
    const auto b = random_vector(n, 6);
    std::vector<float> y(x.size());
    cpu::layer_norm(x.data(), m, n, g.data(), b.data(), 1e-5f, y.data());
    for (int r = 0; r < m; ++r) {
      double mean = 0, var = 0;
      for (int i = 0; i < n; ++i) mean += x[r * n + i];
      mean /= n;
      for (int i = 0; i < n; ++i) var += (x[r * n + i] - mean) * (x[r * n + i] - mean);
      var /= n;
      for (int i = 0; i < n; ++i)
        EXPECT_NEAR(y[r * n + i], (x[r * n + i] - mean) / std::sqrt(var + 1e-5) * g[i] + b[i], 1e-5) << cpu::isa_name(isa);
    }
  }
}

TEST(Kernels, GeluForms) {
  IsaGuard guard;
  for (cpu::Isa isa : isas()) {
    cpu::limit_isa(isa);
    std::vector<float> x = {-3.0f, -0.5f, 0.0f, 0.7f, 2.5f};
    std::vector<float> erf_form = x, tanh_form = x;
    cpu::activation(erf_form.data(), 5, Activation::GeluErf);
    cpu::activation(tanh_form.data(), 5, Activation::GeluTanh);
    for (size_t i = 0; i < x.size(); ++i) {
      const double v = x[i];
      EXPECT_NEAR(erf_form[i], 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))), 1e-6);
      EXPECT_NEAR(tanh_form[i], 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))), 1e-6);
    }
  }
}

// A random paged cache with scattered blocks and three sequences of
// different cached and new lengths.
struct AttentionSetup {
  int heads = 3, d = 40, bs = 5;
  std::vector<int32_t> cu_q, context, tables;
  std::vector<float> q, k, v;
  int max_blocks = 0;

  AttentionSetup(const std::vector<int>& new_lens, const std::vector<int>& cached, int heads_ = 3, int d_ = 40,
                 int bs_ = 5)
      : heads(heads_), d(d_), bs(bs_) {
    const int seqs = static_cast<int>(new_lens.size());
    cu_q.push_back(0);
    for (int s = 0; s < seqs; ++s) {
      cu_q.push_back(cu_q.back() + new_lens[s]);
      context.push_back(new_lens[s] + cached[s]);
      max_blocks = std::max(max_blocks, (context.back() + bs - 1) / bs);
    }
    const int blocks = max_blocks * seqs;
    std::vector<int32_t> pool(static_cast<size_t>(blocks));
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), std::mt19937(7));
    tables = pool;  // [seqs, max_blocks]
    q = random_vector(static_cast<size_t>(cu_q.back()) * heads * d, 8);
    k = random_vector(static_cast<size_t>(blocks) * bs * heads * d, 9);
    v = random_vector(k.size(), 10);
  }
  AttentionParams params(float* out) const {
    AttentionParams p;
    p.q = q.data();
    p.out = out;
    p.k_cache = k.data();
    p.v_cache = v.data();
    p.heads = heads;
    p.head_size = d;
    p.block_size = bs;
    p.scale = 1.0f / std::sqrt(static_cast<float>(d));
    p.num_seqs = static_cast<int>(context.size());
    p.cu_q = cu_q.data();
    p.context_lens = context.data();
    p.block_tables = tables.data();
    p.max_blocks_per_seq = max_blocks;
    return p;
  }
};

TEST(Kernels, FlashPrefillMatchesReference) {
  AttentionSetup s({1, 37, 70}, {0, 11, 50});
  std::vector<float> got(s.q.size()), want(s.q.size());
  cpu::prefill_attention(s.params(got.data()));
  cpu::attention_reference(s.params(want.data()));
  EXPECT_LT(testing::max_abs_diff(got, want), 1e-5f);
}

TEST(Kernels, F16CacheAttentionMatchesReference) {
  for (bool decode : {false, true}) {
    AttentionSetup s(decode ? std::vector<int>{1, 1, 1} : std::vector<int>{1, 37, 70},
                     decode ? std::vector<int>{0, 40, 99} : std::vector<int>{0, 11, 50});
    std::vector<uint16_t> kh(s.k.size()), vh(s.v.size());
    cpu::narrow_f16(s.k.data(), kh.data(), static_cast<int64_t>(kh.size()));
    cpu::narrow_f16(s.v.data(), vh.data(), static_cast<int64_t>(vh.size()));
    std::vector<float> got(s.q.size()), want(s.q.size());
    AttentionParams p = s.params(got.data());
    p.k_cache = kh.data();
    p.v_cache = vh.data();
    p.kv_dtype = DType::F16;
    if (decode)
      cpu::decode_attention(p);
    else
      cpu::prefill_attention(p);
    p.out = want.data();
    cpu::attention_reference(p);
    EXPECT_LT(testing::max_abs_diff(got, want), 1e-5f) << (decode ? "decode" : "prefill");
  }
}

// f16 copies of a setup's cache, with params pointing at them.
struct HalfCache {
  std::vector<uint16_t> k, v;
  explicit HalfCache(const AttentionSetup& s) : k(s.k.size()), v(s.v.size()) {
    cpu::narrow_f16(s.k.data(), k.data(), static_cast<int64_t>(k.size()));
    cpu::narrow_f16(s.v.data(), v.data(), static_cast<int64_t>(v.size()));
  }
  AttentionParams params(const AttentionSetup& s, float* out) const {
    AttentionParams p = s.params(out);
    p.k_cache = k.data();
    p.v_cache = v.data();
    p.kv_dtype = DType::F16;
    return p;
  }
};

// Head sizes that are and are not multiples of 16, blocks smaller, equal to
// and larger than 16 keys, and contexts over several 256-key partitions.
TEST(Kernels, AttentionIsExactAndIdenticalOnEveryIsa) {
  IsaGuard guard;
  struct Shape {
    int heads, d, bs;
  };
  for (const Shape shape : {Shape{3, 40, 5}, Shape{2, 64, 16}, Shape{2, 80, 32}, Shape{1, 19, 7}})
    for (bool half : {false, true})
      for (bool decode : {false, true}) {
        const std::vector<int> lens = decode ? std::vector<int>{1, 1, 1, 1} : std::vector<int>{1, 37, 70, 20};
        const std::vector<int> cached = {0, 40, 600, 300};
        AttentionSetup s(lens, cached, shape.heads, shape.d, shape.bs);
        HalfCache h(s);
        std::vector<float> want(s.q.size());
        const AttentionParams reference = half ? h.params(s, want.data()) : s.params(want.data());
        cpu::attention_reference(reference);
        std::vector<float> first;
        for (cpu::Isa isa : isas()) {
          cpu::limit_isa(isa);
          std::vector<float> got(s.q.size());
          const AttentionParams p = half ? h.params(s, got.data()) : s.params(got.data());
          decode ? cpu::decode_attention(p) : cpu::prefill_attention(p);
          const std::string where = std::string(cpu::isa_name(isa)) + (half ? " f16" : " f32") +
                                    (decode ? " decode" : " prefill") + " d=" + std::to_string(shape.d) +
                                    " bs=" + std::to_string(shape.bs);
          EXPECT_LT(testing::max_abs_diff(got, want), 2e-6f) << where;
          if (first.empty())
            first = got;
          else
            EXPECT_EQ(0, std::memcmp(first.data(), got.data(), got.size() * sizeof(float))) << where << " vs scalar";
        }
      }
}

// The last row of a prefill, decoded on its own over the same cache, gives
// the same bits: preemption's recompute and chunked prefill stay exact.
TEST(Kernels, DecodeGivesThePrefillRowsBits) {
  IsaGuard guard;
  for (cpu::Isa isa : isas()) {
    cpu::limit_isa(isa);
    struct Case {
      int heads, d, bs, cached;
    };
    for (const Case c : {Case{4, 64, 5, 560}, Case{4, 64, 16, 560}, Case{6, 32, 4, 3}, Case{2, 19, 7, 250}}) {
      AttentionSetup s({45, 1}, {c.cached, 300}, c.heads, c.d, c.bs);
      HalfCache h(s);
      for (bool half : {false, true}) {
        std::vector<float> prefilled(s.q.size());
        cpu::prefill_attention(half ? h.params(s, prefilled.data()) : s.params(prefilled.data()));
        // Each query row of sequence 0 as a one-token step over its keys.
        const int64_t row = static_cast<int64_t>(s.heads) * s.d;
        for (int j = 0; j < 45; ++j) {
          AttentionSetup one = s;
          one.cu_q = {0, 1};
          one.context = {c.cached + j + 1};
          one.q.assign(s.q.begin() + j * row, s.q.begin() + (j + 1) * row);
          std::vector<float> decoded(static_cast<size_t>(row));
          AttentionParams p = half ? h.params(one, decoded.data()) : one.params(decoded.data());
          p.num_seqs = 1;
          cpu::decode_attention(p);
          EXPECT_EQ(0, std::memcmp(decoded.data(), prefilled.data() + j * row, row * sizeof(float)))
              << cpu::isa_name(isa) << " d " << c.d << " bs " << c.bs << (half ? " f16" : " f32") << " row " << j;
        }
      }
    }
  }
}

// The same keys and values paged in blocks of 4, 7, 16 or 48 tokens give the
// same bits: a server's cache settings never change what a model says.
TEST(Kernels, AttentionBitsDoNotDependOnTheBlockSize) {
  IsaGuard guard;
  const int heads = 3, d = 32;
  const std::vector<int> lens = {1, 30, 1}, cached = {300, 20, 0};
  const AttentionSetup logical(lens, cached, heads, d, 1);  // one token per block: tokens in table order
  for (cpu::Isa isa : isas()) {
    cpu::limit_isa(isa);
    std::vector<float> first;
    for (int bs : {4, 7, 16, 48}) {
      AttentionSetup s(lens, cached, heads, d, bs);
      s.q = logical.q;
      for (size_t seq = 0; seq < lens.size(); ++seq)
        for (int pos = 0; pos < s.context[seq]; ++pos) {
          const int32_t from = logical.tables[seq * logical.max_blocks + pos];
          const int32_t to = s.tables[seq * s.max_blocks + pos / bs];
          for (int h = 0; h < heads; ++h)
            for (int i = 0; i < d; ++i) {
              s.k[cpu::key_cache_index(to, pos % bs, h, i, heads, d, bs)] =
                  logical.k[cpu::key_cache_index(from, 0, h, i, heads, d, 1)];
              s.v[cpu::value_cache_index(to, pos % bs, h, i, heads, d, bs)] =
                  logical.v[cpu::value_cache_index(from, 0, h, i, heads, d, 1)];
            }
        }
      std::vector<float> got(s.q.size());
      cpu::prefill_attention(s.params(got.data()));
      if (first.empty())
        first = got;
      else
        EXPECT_EQ(0, std::memcmp(first.data(), got.data(), got.size() * sizeof(float)))
            << cpu::isa_name(isa) << " block size " << bs;
    }
  }
}

TEST(Kernels, PagedDecodeMatchesReference) {
  AttentionSetup s({1, 1, 1, 1}, {0, 4, 33, 120});
  std::vector<float> got(s.q.size()), want(s.q.size());
  cpu::decode_attention(s.params(got.data()));
  cpu::attention_reference(s.params(want.data()));
  EXPECT_LT(testing::max_abs_diff(got, want), 1e-5f);
}

TEST(Kernels, RotaryRotatesHalvesAndWritesCache) {
  const int heads = 2, d = 8, r = 4;
  std::vector<float> qkv = random_vector(static_cast<size_t>(heads) * 3 * d, 11);
  const float angle[2] = {0.3f, 1.1f};
  const float cos[2] = {std::cos(angle[0]), std::cos(angle[1])};
  const float sin[2] = {std::sin(angle[0]), std::sin(angle[1])};
  const int64_t slot = 3;  // block 1, offset 1 of blocks of 2
  const int bs = 2;
  std::vector<float> q(heads * d), kc(4 * heads * d, 0.0f), vc(kc.size(), 0.0f);
  cpu::rotary_and_cache(qkv.data(), 1, heads, d, r, cos, sin, &slot, q.data(), kc.data(), vc.data(), DType::F32, bs);
  std::vector<uint16_t> kh(kc.size()), vh(vc.size());  // the same into an f16 cache
  std::vector<float> q2(q.size());
  cpu::rotary_and_cache(qkv.data(), 1, heads, d, r, cos, sin, &slot, q2.data(), kh.data(), vh.data(), DType::F16, bs);
  auto key = [&](int h, int i) { return cpu::key_cache_index(1, 1, h, i, heads, d, bs); };
  auto value = [&](int h, int i) { return cpu::value_cache_index(1, 1, h, i, heads, d, bs); };
  int written = 0;
  for (size_t i = 0; i < kc.size(); ++i) written += (kc[i] != 0.0f) + (vc[i] != 0.0f);
  for (size_t i = 0; i < kc.size(); ++i) {
    EXPECT_EQ(kh[i], f32_to_f16(kc[i]));
    EXPECT_EQ(vh[i], f32_to_f16(vc[i]));
  }
  for (int h = 0; h < heads; ++h) {
    const float* src = qkv.data() + h * 3 * d;
    for (int i = 0; i < 2; ++i) {
      EXPECT_NEAR(q[h * d + i], src[i] * cos[i] - src[i + 2] * sin[i], 1e-6);
      EXPECT_NEAR(q[h * d + i + 2], src[i + 2] * cos[i] + src[i] * sin[i], 1e-6);
      EXPECT_NEAR(kc[key(h, i)], src[d + i] * cos[i] - src[d + i + 2] * sin[i], 1e-6);
    }
    for (int i = r; i < d; ++i) {  // pass-through dims
      EXPECT_EQ(q[h * d + i], src[i]);
      EXPECT_EQ(kc[key(h, i)], src[d + i]);
    }
    for (int i = 0; i < d; ++i) EXPECT_EQ(vc[value(h, i)], src[2 * d + i]);
  }
  EXPECT_EQ(written, 2 * heads * d);  // nothing outside the slot
}

}  // namespace
}  // namespace flashneox
