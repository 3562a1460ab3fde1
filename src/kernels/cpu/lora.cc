// Segmented LoRA on the CPU. The shrink x · Aᵀ gives `rank` numbers per row
// (a few dozen), so the work is two thin products per row: `rank` dot
// products over the input, then `rank` scaled rows of Bᵀ added into the
// output (B is kept transposed, [rank, out], so that is a contiguous axpy).
// Rows run in parallel when there are enough of them, otherwise the output
// columns do. Every row takes one fixed code path, so a sequence gets the same
// bits alone or beside others.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "core/isa_clones.h"
#include "kernels/cpu/cpu_kernels.h"

namespace flashneox::cpu {

namespace {

// s[j] = x · A[j]   (A: [rank, in])
FLASHNEOX_ISA_CLONES void shrink(const float* x, int64_t in, const float* a, int rank, float* s) {
  for (int j = 0; j < rank; ++j) {
    const float* row = a + j * in;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t k = 0; k < in; ++k) sum += x[k] * row[k];
    s[j] = sum;
  }
}

// y[o] += Σ_j (scale · s[j]) · Bt[j, o]   for o in [from, to)   (Bt: [rank, out])
FLASHNEOX_ISA_CLONES void expand(const float* s, const float* bt, int rank, float scale, float* y, int64_t out,
                                 int64_t from, int64_t to) {
  for (int j = 0; j < rank; ++j) {
    const float c = scale * s[j];
    const float* row = bt + j * out;
#pragma omp simd
    for (int64_t o = from; o < to; ++o) y[o] += c * row[o];
  }
}

}  // namespace

void lora_add(const float* x, int64_t in, const LoraSegment* segments, int count, float* y, int64_t out) {
  int64_t rows = 0;
  int max_rank = 0;
  for (int i = 0; i < count; ++i) {
    rows += segments[i].end - segments[i].begin;
    max_rank = std::max(max_rank, segments[i].rank);
  }
  if (rows == 0) return;
  const int threads = omp_get_max_threads();
  if (rows >= threads) {
    std::vector<std::pair<int, int64_t>> work;  // (segment, row)
    work.reserve(static_cast<size_t>(rows));
    for (int i = 0; i < count; ++i)
      for (int64_t r = segments[i].begin; r < segments[i].end; ++r) work.emplace_back(i, r);
#pragma omp parallel
    {
      std::vector<float> s(static_cast<size_t>(max_rank));
#pragma omp for schedule(static)
      for (int64_t w = 0; w < static_cast<int64_t>(work.size()); ++w) {
        const LoraSegment& seg = segments[work[w].first];
        const int64_t r = work[w].second;
        shrink(x + r * in, in, seg.a, seg.rank, s.data());
        expand(s.data(), seg.b, seg.rank, seg.scale, y + r * out, out, 0, out);
      }
    }
    return;
  }
  // Few rows (decode): each row's shrink, then its output columns in parallel.
  std::vector<float> s(static_cast<size_t>(max_rank));
  for (int i = 0; i < count; ++i) {
    const LoraSegment& seg = segments[i];
    for (int64_t r = seg.begin; r < seg.end; ++r) {
      shrink(x + r * in, in, seg.a, seg.rank, s.data());
      float* yr = y + r * out;
#pragma omp parallel
      {
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
        // Column ranges on 16-float boundaries, so the vector code is the same for any split.
        const int64_t chunks = (out + 15) / 16;
        expand(s.data(), seg.b, seg.rank, seg.scale, yr, out, std::min(out, chunks * t / n * 16),
               std::min(out, chunks * (t + 1) / n * 16));
      }
    }
  }
}

}  // namespace flashneox::cpu
