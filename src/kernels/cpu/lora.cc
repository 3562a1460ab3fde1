// Segmented LoRA on the CPU. The shrink x · Aᵀ gives `rank` numbers per row
// (a few dozen), so the work is two thin matrix products per segment: rows in
// parallel when there are many, otherwise the expand's output columns. Each
// row's sums run in one fixed order whatever the batch, so a sequence gets the
// same bits alone or beside others.
#include <omp.h>

#include <vector>

#include "kernels/cpu/cpu_kernels.h"

namespace flashneox::cpu {

namespace {

// s[j] = x · A[j]   (A: [rank, in])
void shrink(const float* x, int64_t in, const float* a, int rank, float* s) {
  for (int j = 0; j < rank; ++j) {
    const float* row = a + j * in;
    float sum = 0.0f;
    for (int64_t k = 0; k < in; ++k) sum += x[k] * row[k];
    s[j] = sum;
  }
}

// y[o] += scale · Σ_j s[j] · B[o, j]   for o in [from, to)   (B: [out, rank])
void expand(const float* s, const float* b, int rank, float scale, float* y, int64_t from, int64_t to) {
  for (int64_t o = from; o < to; ++o) {
    const float* row = b + o * rank;
    float sum = 0.0f;
    for (int j = 0; j < rank; ++j) sum += s[j] * row[j];
    y[o] += scale * sum;
  }
}

}  // namespace

void lora_add(const float* x, int64_t in, const LoraSegment* segments, int count, float* y, int64_t out) {
  int64_t rows = 0;
  for (int i = 0; i < count; ++i) rows += segments[i].end - segments[i].begin;
  if (rows == 0) return;
  const int threads = omp_get_max_threads();
  if (rows >= threads) {
    // Rows in parallel: flatten (segment, row) pairs.
    std::vector<std::pair<int, int64_t>> work;
    work.reserve(static_cast<size_t>(rows));
    for (int i = 0; i < count; ++i)
      for (int64_t r = segments[i].begin; r < segments[i].end; ++r) work.emplace_back(i, r);
#pragma omp parallel
    {
      std::vector<float> s(256);
#pragma omp for schedule(static)
      for (int64_t w = 0; w < static_cast<int64_t>(work.size()); ++w) {
        const LoraSegment& seg = segments[work[w].first];
        const int64_t r = work[w].second;
        if (static_cast<int>(s.size()) < seg.rank) s.resize(static_cast<size_t>(seg.rank));
        shrink(x + r * in, in, seg.a, seg.rank, s.data());
        expand(s.data(), seg.b, seg.rank, seg.scale, y + r * out, 0, out);
      }
    }
    return;
  }
  // Few rows (decode): the shrink per row, then its output columns in parallel.
  for (int i = 0; i < count; ++i) {
    const LoraSegment& seg = segments[i];
    std::vector<float> s(static_cast<size_t>(seg.rank));
    for (int64_t r = seg.begin; r < seg.end; ++r) {
      shrink(x + r * in, in, seg.a, seg.rank, s.data());
      float* yr = y + r * out;
#pragma omp parallel
      {
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
        expand(s.data(), seg.b, seg.rank, seg.scale, yr, out * t / n, out * (t + 1) / n);
      }
    }
  }
}

}  // namespace flashneox::cpu
