// Google Benchmark of the CPU kernels on Pythia-410M-sized matrices: the
// packed GEMM as a decode GEMV (memory-bound: bytes/s counter) and as a
// prefill GEMM (compute-bound: FLOP/s counter), per weight dtype; and paged
// decode attention. Compare the counters with `flashneox bench`'s measured
// bandwidth and FMA peak on the same machine.
//   build/bench/kernels_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "core/large_buffer.h"
#include "core/parallel.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/roofline.h"

namespace flashneox {
namespace {

std::vector<float> random_vector(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-0.05f, 0.05f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

struct PackedWeight {  // packed by the CPU backend, which owns the storage
  std::unique_ptr<Backend> backend = make_cpu_backend();
  WeightMatrix w;
  size_t bytes;
  PackedWeight(int64_t n, int64_t k, DType dtype) {
    const auto source = random_vector(static_cast<size_t>(n * k), 1);
    w = backend->prepare_weight({DType::F32, source.data(), n, k}, dtype);
    bytes = static_cast<size_t>(w.bytes);  // scales included
  }
};

// y = x W^T for m rows, k inputs, n outputs; the FLOP/s counter (and the
// weight bytes/s, for the memory-bound GEMV) over the timed loop.
void time_linear(benchmark::State& state, int64_t m, int64_t k, int64_t n, DType dtype, bool weight_bytes) {
  PackedWeight pw(n, k, dtype);
  const auto x = random_vector(static_cast<size_t>(m * k), 2);
  std::vector<float> y(static_cast<size_t>(m * n));
  for (auto _ : state) {
    cpu::linear(x.data(), m, pw.w, nullptr, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  if (weight_bytes)
    state.counters["weight_bytes/s"] = benchmark::Counter(static_cast<double>(pw.bytes), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(dtype_name(dtype));
}

void BM_Linear(benchmark::State& state) {  // Pythia-410M dense_h_to_4h
  time_linear(state, state.range(0), 1024, 4096, static_cast<DType>(state.range(1)), true);
}
BENCHMARK(BM_Linear)
    ->ArgsProduct({{1, 8, 32, 128}, {static_cast<int>(DType::F32), static_cast<int>(DType::F16),
                                     static_cast<int>(DType::BF16), static_cast<int>(DType::I8),
                                     static_cast<int>(DType::Q4), static_cast<int>(DType::Q4G128)}})
    ->UseRealTime();

// A prefill through Pythia-1B's dense_4h_to_h: 8,192 inputs, where the rows
// of a block share input slices in L2 and the weights stream past them.
void BM_LinearLongInputs(benchmark::State& state) {
  time_linear(state, state.range(0), 8192, 2048, DType::F16, false);
}
BENCHMARK(BM_LinearLongInputs)->Arg(128)->Arg(512)->UseRealTime();

// The machine's fp32 FMA peak on the pool's threads, in the same run: the
// GEMM counters above and below read as fractions of it.
void BM_FmaPeak(benchmark::State& state) {
  double peak = 0.0;
  for (auto _ : state) peak = std::max(peak, cpu::measure_fma_peak(num_threads(), 0.2));
  state.counters["FLOP/s"] = peak;
}
BENCHMARK(BM_FmaPeak)->Iterations(3)->UseRealTime();

// The GEMM's rate against its inner size, 96 rows and 4,096 outputs: with 128
// or 256 inputs a weight panel (8-16 KB in f16) stays in L1 for every row
// block, so the FLOP/s are the microkernel's own; with more, the panel comes
// from L2 for each block of rows. The gap is what the cache hierarchy costs.
void BM_LinearInnerSize(benchmark::State& state) {
  time_linear(state, 96, state.range(0), 4096, static_cast<DType>(state.range(1)), false);
}
BENCHMARK(BM_LinearInnerSize)
    ->ArgsProduct({{128, 256, 1024, 4096},
                   {static_cast<int>(DType::F32), static_cast<int>(DType::F16), static_cast<int>(DType::I8)}})
    ->UseRealTime();

// One decode step's attention: `seqs` sequences of `context` cached tokens,
// Pythia-410M's heads, an f32 or f16 cache.
void BM_DecodeAttention(benchmark::State& state) {
  const int seqs = static_cast<int>(state.range(0)), context = static_cast<int>(state.range(1));
  const bool half = state.range(2) != 0;
  const int heads = 16, d = 64, bs = 16;
  const int blocks_per_seq = (context + bs - 1) / bs;
  std::vector<int32_t> tables(static_cast<size_t>(seqs * blocks_per_seq));
  std::iota(tables.begin(), tables.end(), 0);
  // The cache in LargeBuffers (huge pages), as the engine keeps it.
  const auto k = random_vector(tables.size() * bs * heads * d, 3);
  const auto v = random_vector(k.size(), 4);
  const size_t elem = half ? 2 : 4;
  LargeBuffer k_cache(k.size() * elem, "keys"), v_cache(v.size() * elem, "values");
  if (half) {
    cpu::narrow_f16(k.data(), static_cast<uint16_t*>(k_cache.data()), static_cast<int64_t>(k.size()));
    cpu::narrow_f16(v.data(), static_cast<uint16_t*>(v_cache.data()), static_cast<int64_t>(v.size()));
  } else {
    std::copy(k.begin(), k.end(), static_cast<float*>(k_cache.data()));
    std::copy(v.begin(), v.end(), static_cast<float*>(v_cache.data()));
  }
  const auto q = random_vector(static_cast<size_t>(seqs * heads * d), 5);
  std::vector<float> out(q.size());
  std::vector<int32_t> cu(static_cast<size_t>(seqs + 1)), lens(static_cast<size_t>(seqs), context);
  std::iota(cu.begin(), cu.end(), 0);
  AttentionParams p;
  p.q = q.data();
  p.out = out.data();
  p.k_cache = k_cache.data();
  p.v_cache = v_cache.data();
  p.kv_dtype = half ? DType::F16 : DType::F32;
  p.heads = heads;
  p.head_size = d;
  p.block_size = bs;
  p.scale = 0.125f;
  p.num_seqs = seqs;
  p.cu_q = cu.data();
  p.context_lens = lens.data();
  p.block_tables = tables.data();
  p.max_blocks_per_seq = blocks_per_seq;
  for (auto _ : state) {
    cpu::decode_attention(p);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["kv_bytes/s"] = benchmark::Counter(2.0 * seqs * context * heads * d * (half ? 2 : 4),
                                                    benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_DecodeAttention)->ArgsProduct({{1, 32}, {256, 2048}, {0, 1}})->UseRealTime();

}  // namespace
}  // namespace flashneox

BENCHMARK_MAIN();
