#include "kernels/cpu/roofline.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "core/isa.h"
#include "core/large_buffer.h"
#include "kernels/cpu/cpu_kernels.h"
#if FLASHNEOX_X86
#include <immintrin.h>
#endif

namespace flashneox::cpu {

namespace {

using Clock = std::chrono::steady_clock;

#if FLASHNEOX_X86

__attribute__((target("avx512f"))) float sum_avx512(const float* p, size_t n) {
  __m512 a = _mm512_setzero_ps(), b = a, c = a, d = a;
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    a = _mm512_add_ps(a, _mm512_load_ps(p + i));
    b = _mm512_add_ps(b, _mm512_load_ps(p + i + 16));
    c = _mm512_add_ps(c, _mm512_load_ps(p + i + 32));
    d = _mm512_add_ps(d, _mm512_load_ps(p + i + 48));
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, _mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d)));
  float s = 0;
  for (float v : lanes) s += v;
  return s;
}

__attribute__((target("avx2"))) float sum_avx2(const float* p, size_t n) {
  __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
  for (size_t i = 0; i + 32 <= n; i += 32) {
    a = _mm256_add_ps(a, _mm256_load_ps(p + i));
    b = _mm256_add_ps(b, _mm256_load_ps(p + i + 8));
    c = _mm256_add_ps(c, _mm256_load_ps(p + i + 16));
    d = _mm256_add_ps(d, _mm256_load_ps(p + i + 24));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d)));
  float s = 0;
  for (float v : lanes) s += v;
  return s;
}

#endif

float sum_any(const float* p, size_t n) {
#if FLASHNEOX_X86
  if (active_isa() == Isa::Avx512) return sum_avx512(p, n);
  if (active_isa() == Isa::Avx2) return sum_avx2(p, n);
#endif
  float s = 0;
  for (size_t i = 0; i < n; ++i) s += p[i];
  return s;
}

#if FLASHNEOX_X86
// Ten independent FMA chains per thread hide the FMA latency.
__attribute__((target("avx512f"))) float fma_loop_avx512(long iterations) {
  __m512 acc[10];
  for (int i = 0; i < 10; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iterations; ++it)
    for (int i = 0; i < 10; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  alignas(64) float lanes[16];
  __m512 s = acc[0];  // every chain feeds the result, or the compiler drops nine of them
  for (int i = 1; i < 10; ++i) s = _mm512_add_ps(s, acc[i]);
  _mm512_store_ps(lanes, s);
  return lanes[0];
}

__attribute__((target("avx2,fma"))) float fma_loop_avx2(long iterations) {
  __m256 acc[10];
  for (int i = 0; i < 10; ++i) acc[i] = _mm256_set1_ps(0.001f * i);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iterations; ++it)
    for (int i = 0; i < 10; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  alignas(32) float lanes[8];
  __m256 s = acc[0];  // every chain feeds the result, or the compiler drops nine of them
  for (int i = 1; i < 10; ++i) s = _mm256_add_ps(s, acc[i]);
  _mm256_store_ps(lanes, s);
  return lanes[0];
}
#endif

}  // namespace

namespace {

// body(t) on `threads` threads of its own at once (the pool hands out work
// unevenly by design; a measurement wants every thread busy).
template <typename Body>
void on_every_thread(int threads, Body body) {
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(body, t);
  body(0);
  for (auto& t : pool) t.join();
}

}  // namespace

double measure_read_bandwidth(int threads, double seconds) {
  const size_t bytes = size_t{1} << 30;  // far beyond any cache
  const size_t n = bytes / sizeof(float);
  // Allocated as the weights and the KV cache are, so "% of bandwidth" compares like with like.
  const LargeBuffer buffer(bytes, "the bandwidth measurement");
  auto* data = static_cast<float*>(buffer.data());
  threads = std::max(threads, 1);
  const size_t chunk = n / static_cast<size_t>(threads) / 64 * 64;
  auto part = [&](int t) { return std::pair{data + t * chunk, t == threads - 1 ? n - t * chunk : chunk}; };
  on_every_thread(threads, [&](int t) { std::fill_n(part(t).first, part(t).second, 1.0f); });
  double best = 0.0;
  volatile float sink = 0;
  const auto until = Clock::now() + std::chrono::duration<double>(seconds);
  do {
    const auto start = Clock::now();
    std::vector<float> totals(static_cast<size_t>(threads));
    on_every_thread(threads, [&](int t) { totals[static_cast<size_t>(t)] = sum_any(part(t).first, part(t).second); });
    for (float v : totals) sink = sink + v;
    const double took = std::chrono::duration<double>(Clock::now() - start).count();
    best = std::max(best, bytes / took);
  } while (Clock::now() < until);
  return best;
}

double measure_fma_peak(int threads, double seconds) {
  const long iterations = 2000000;
  const int lanes = active_isa() == Isa::Avx512 ? 16 : 8;
  if (active_isa() == Isa::Scalar) return 0.0;
  double best = 0.0;
  volatile float sink = 0;
  const auto until = Clock::now() + std::chrono::duration<double>(seconds);
  do {
    const auto start = Clock::now();
    std::vector<float> totals(static_cast<size_t>(std::max(threads, 1)));
#if FLASHNEOX_X86
    on_every_thread(threads, [&](int t) {
      totals[static_cast<size_t>(t)] = active_isa() == Isa::Avx512 ? fma_loop_avx512(iterations) : fma_loop_avx2(iterations);
    });
#endif
    for (float v : totals) sink = sink + v;
    const double took = std::chrono::duration<double>(Clock::now() - start).count();
    best = std::max(best, 2.0 * lanes * 10.0 * iterations * threads / took);
  } while (Clock::now() < until);
  return best;
}

}  // namespace flashneox::cpu
